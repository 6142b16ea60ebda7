//! The baseline: the least an HTTP ingest endpoint can do (axum, parse the
//! event JSON, answer 202 with an id), run as its own process like Herald so
//! the two share the machine with the load generator in the same way.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::{Context, Result};
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::{
    load::{Load, LoadSummary, Plan, Target},
    phases::Settings,
    process::{self, ServerProcess},
    procfs::{self, Memory, Usage},
};

/// What the baseline measured.
#[derive(Clone, Debug, Serialize)]
pub struct BaselineResult {
    pub load: LoadSummary,
    pub idle_memory: Memory,
    pub loaded: Usage,
}

/// Starts the baseline process, loads it and stops it.
pub async fn measure(settings: &Settings) -> Result<BaselineResult> {
    let addr = process::free_addr()?;
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let mut command = Command::new(exe);
    command.arg("baseline-server").arg("--listen").arg(addr.to_string());
    let log = settings.work_dir.join("logs").join("baseline.log");
    let mut server = ServerProcess::start("the baseline server", command, addr, log).await?;
    let idle_memory = procfs::memory(server.pid()).unwrap_or_default();
    let sampler = procfs::Sampler::start(server.pid());
    let load = Load {
        target: Target { addr, path: "/v1/events", bearer: None },
        client: settings.client,
        clients: settings.clients,
        event_type: "bench.ingest",
        plan: Plan::Timed { warmup: settings.warmup, duration: settings.duration },
    }
    .run()
    .await;
    let loaded = sampler.finish().await;
    let still_running = server.ensure_running();
    server.stop().await?;
    still_running?;
    Ok(BaselineResult { load: load?, idle_memory, loaded })
}

#[derive(Deserialize)]
struct EventIn {
    #[serde(rename = "type")]
    event_type: String,
    data: serde_json::Value,
}

#[derive(Serialize)]
struct EventAccepted {
    id: String,
}

/// Runs the baseline server until SIGTERM or Ctrl-C (the hidden `baseline-server` command).
pub async fn serve(listen: SocketAddr) -> Result<()> {
    let next_id = Arc::new(AtomicU64::new(1));
    let app = Router::new()
        .route("/ready", get(|| async { StatusCode::OK }))
        .route("/v1/events", post(accept_event))
        .with_state(next_id);
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

/// Validates like an ingest endpoint would (a type, an object), nothing more.
async fn accept_event(
    State(next_id): State<Arc<AtomicU64>>,
    Json(event): Json<EventIn>,
) -> Result<(StatusCode, Json<EventAccepted>), StatusCode> {
    if event.event_type.is_empty() || !event.data.is_object() {
        return Err(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let n = next_id.fetch_add(1, Ordering::Relaxed);
    Ok((StatusCode::ACCEPTED, Json(EventAccepted { id: format!("evt_{n:026}") })))
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
