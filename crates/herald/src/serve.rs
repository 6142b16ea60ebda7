//! `herald serve`: open the database, start the pipeline tasks and the HTTP
//! API, and stop them in order on SIGTERM or Ctrl-C.

use std::{
    collections::HashSet,
    fs::File,
    sync::{Arc, Mutex, RwLock},
};

use anyhow::Context as _;
use herald_channels::{AddressPolicy, Context, Registry, outbound::build_http_client};
use herald_store::{Backend, Db};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tokio_util::sync::CancellationToken;

use crate::{
    api,
    config::Config,
    pipeline::{ingest, wake::Wake, worker},
    secrets::{self, MasterKey},
    state::{AdminToken, AppState, Inner, now_ms},
};

/// How long start-up waits for this node to hear the others (PostgreSQL)
/// before it takes clients.
const LISTEN_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the database named by the config and applies migrations. On SQLite
/// it also takes the data dir's lock: one process owns an SQLite queue.
pub async fn open_db(config: &Config) -> anyhow::Result<(Db, Option<File>)> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data dir {}", config.data_dir.display()))?;
    let lock = if config.database_url.starts_with("sqlite:") {
        let path = config.data_dir.join("herald.lock");
        let file = File::create(&path).with_context(|| format!("cannot open {}", path.display()))?;
        file.try_lock().map_err(|_| {
            anyhow::anyhow!(
                "another Herald process is using {} (SQLite allows one process per data dir; \
                 use PostgreSQL to run several nodes)",
                config.data_dir.display()
            )
        })?;
        Some(file)
    } else {
        None
    };
    let db = Db::connect(&config.database_url).await.context("cannot connect to the database")?;
    db.migrate().await.context("cannot apply database migrations")?;
    Ok((db, lock))
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let (db, _lock) = open_db(&config).await?;
    let key = MasterKey::load(config.master_key.as_ref().map(|s| s.0.as_str()), &config.data_dir)?;
    let canary = db.init_setting("master_key_canary", &key.canary()).await?;
    key.check_canary(&canary)?;
    let admin = admin_token(&config, &db).await?;

    let metrics = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("herald_attempt_duration_seconds".into()),
            &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
        )?
        .install_recorder()
        .context("cannot install the metrics recorder")?;

    let policy = AddressPolicy { allow_private: config.outbound_allow_private };
    let channel_ctx = Context { http: build_http_client(policy), policy };
    let wake = Wake::new(db.clone());
    let writers = if db.backend() == Backend::Postgres { 4 } else { 1 };
    let channels = Registry::builtin();
    let reaches_people = channels.iter().filter(|c| c.reaches_people()).map(|c| c.kind().to_owned()).collect();
    let router = crate::pipeline::router::Router::new(config.public_url.clone(), reaches_people);
    let live = crate::live::Live::new(db.clone());
    let ingest = ingest::spawn(db.clone(), wake.clone(), live.clone(), router, writers);
    let shutdown = CancellationToken::new();

    if db.backend() == Backend::Sqlite {
        // This process holds the data dir lock, so leases left in the
        // database belong to a previous run that died: due now.
        let released = db.release_all_leases(now_ms()).await?;
        if released > 0 {
            tracing::info!(released, "released leases left by a previous run");
        }
    }
    let tenants = db.list_tenants().await?.into_iter().map(|t| t.id).collect::<HashSet<_>>();
    let state = AppState::new(Inner {
        config: Arc::new(config),
        db: db.clone(),
        key,
        admin,
        channels,
        channel_ctx,
        ingest,
        wake: wake.clone(),
        live,
        recipient_keys: Default::default(),
        templates: Default::default(),
        metrics,
        tenants: RwLock::new(tenants),
        key_cache: Mutex::default(),
        test_limiter: Default::default(),
        shutdown: shutdown.clone(),
    });

    wake.spawn_listener(shutdown.clone());
    let listening = state.live.spawn(shutdown.clone(), state.config.live_ping);
    // Live clients taken before this node hears the others would miss what
    // is announced meanwhile (they would catch up once it listens, but a
    // node should start whole). Not forever: the database may be slow.
    if tokio::time::timeout(LISTEN_WITHIN, listening).await.is_err() {
        tracing::warn!(
            "not yet listening for other nodes' inbox changes after {LISTEN_WITHIN:?}; serving anyway (live clients catch up once it does)"
        );
    }
    let worker_task = tokio::spawn(worker::run(state.clone()));

    let listener = tokio::net::TcpListener::bind(state.config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", state.config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        address = %addr,
        database = ?db.backend(),
        public_url = state.config.public_url.as_deref().unwrap_or("(not set)"),
        master_key_id = state.key.key_id(),
        "Herald listening on http://{addr}"
    );

    let signal = shutdown.clone();
    // As a make-service, each connection gets a clone of the router (one
    // `Arc`); given the router itself, axum re-applies the state to every
    // route per connection: ~50 allocations each, for nothing.
    axum::serve(listener, api::router(state.clone()).into_make_service())
        .with_graceful_shutdown(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: no new requests or claims; finishing in-flight work");
            signal.cancel();
        })
        .await?;
    shutdown.cancel();
    let _ = worker_task.await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The configured admin token, or the hash of one generated (and printed)
/// on the first start.
async fn admin_token(config: &Config, db: &Db) -> anyhow::Result<AdminToken> {
    if let Some(token) = &config.admin_token {
        return Ok(AdminToken::Configured(token.0.clone()));
    }
    if let Some(hash) = db.get_setting("admin_token_hash").await? {
        return Ok(AdminToken::Hashed(hash));
    }
    let token = secrets::random_token("hadm_");
    let mine = secrets::token_hash(&token);
    let stored = db.init_setting("admin_token_hash", &mine).await?;
    if stored == mine {
        // Printed once, to stdout and not the log: it is never shown again.
        println!("\nHerald admin token (shown once; store it now, or set HERALD_ADMIN_TOKEN):\n\n    {token}\n");
    }
    Ok(AdminToken::Hashed(stored))
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler works on unix");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
