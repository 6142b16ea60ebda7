//! Wake-ups: workers wake the moment deliveries are committed, instead of
//! polling. In one process a `Notify`; across PostgreSQL nodes, `NOTIFY`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use herald_store::Db;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The PostgreSQL channel on which routers announce new deliveries.
const CHANNEL: &str = "herald_deliveries";

#[derive(Clone)]
pub struct Wake {
    /// New due deliveries were committed: workers have work.
    pub deliveries: Arc<Notify>,
    db: Db,
    /// Whether a NOTIFY to other nodes is already on its way.
    announcing: Arc<AtomicBool>,
}

/// Other nodes hear about new deliveries at most this often: PostgreSQL
/// serialises committing NOTIFYs, so one per ingest batch would throttle
/// ingest. This node's own workers are woken at once.
const ANNOUNCE_EVERY: Duration = Duration::from_millis(20);

impl Wake {
    pub fn new(db: Db) -> Self {
        Self { deliveries: Arc::default(), db, announcing: Arc::default() }
    }

    /// Wakes this node's workers now and, on PostgreSQL, every other node's
    /// within [`ANNOUNCE_EVERY`].
    pub fn deliveries_committed(&self) {
        self.deliveries.notify_one();
        let Db::Postgres(pool) = &self.db else { return };
        if self.announcing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pool, announcing) = (pool.clone(), self.announcing.clone());
        tokio::spawn(async move {
            tokio::time::sleep(ANNOUNCE_EVERY).await;
            // Cleared before sending: a commit during the send schedules the next one.
            announcing.store(false, Ordering::Release);
            if let Err(e) = sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&pool).await {
                tracing::warn!(error = %e, "could not notify other nodes of new deliveries");
            }
        });
    }

    /// On PostgreSQL, listens for other nodes' announcements until shutdown.
    pub fn spawn_listener(&self, shutdown: CancellationToken) {
        let Db::Postgres(pool) = self.db.clone() else { return };
        let deliveries = self.deliveries.clone();
        tokio::spawn(async move {
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for other nodes; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        }
                    }
                };
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "LISTEN failed; retrying");
                    continue;
                }
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        msg = listener.recv() => match msg {
                            Ok(_) => deliveries.notify_one(),
                            Err(e) => {
                                tracing::warn!(error = %e, "lost the notification connection; reconnecting");
                                break;
                            }
                        }
                    }
                }
            }
        });
    }
}
