//! The delivery worker: claims due deliveries with a lease, sends them
//! concurrently, and hands results to the completer, which records them in
//! batches (one transaction for many attempts).
//!
//! Shutdown: stop claiming, let in-flight sends finish within the grace
//! period, release the leases of any still running (due now, no attempt
//! counted), and flush the recorded results before returning.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use herald_store::queue::Completion;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::task::TaskTracker;

use super::attempt::{self, TargetCache};
use crate::state::{AppState, now_ms};

/// Deliveries claimed per query.
const CLAIM_BATCH: usize = 256;
/// Results recorded per transaction.
const COMPLETE_BATCH: usize = 1024;
/// Tries to record a batch of results before leaving them to lease expiry.
const RECORD_TRIES: u32 = 8;
/// The longest a worker sleeps without looking at the queue (PostgreSQL
/// nodes also wake each other with NOTIFY; this bounds any missed wake-up).
const MAX_IDLE: Duration = Duration::from_secs(1);

/// Runs the worker until shutdown is requested and in-flight work is settled.
pub async fn run(state: AppState) {
    let (done_tx, done_rx) = mpsc::unbounded_channel::<Completion>();
    let completer = tokio::spawn(complete_loop(state.clone(), done_rx));
    let targets = Arc::new(TargetCache::default());
    let permits = Arc::new(Semaphore::new(state.config.delivery_concurrency));
    let in_flight: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let tracker = TaskTracker::new();
    let shutdown = state.shutdown.clone();

    while !shutdown.is_cancelled() {
        let available = permits.available_permits();
        if available == 0 {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = permits.acquire() => drop(permit),
            }
            continue;
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let now = now_ms();
        let lease_until = now + state.config.lease.as_millis() as i64;
        let jobs = match state.db.claim_due(&token, now, lease_until, available.min(CLAIM_BATCH) as i64).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::error!(error = ?e, "claiming deliveries failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
        };
        if jobs.is_empty() {
            let idle = idle_time(&state).await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = state.wake.deliveries.notified() => {}
                _ = tokio::time::sleep(idle) => {}
            }
            continue;
        }
        for job in jobs {
            let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
            in_flight.lock().expect("in-flight lock").insert(job.delivery_id.clone(), job.lease_token.clone());
            let (state, targets, done_tx, in_flight) =
                (state.clone(), targets.clone(), done_tx.clone(), in_flight.clone());
            tracker.spawn(async move {
                let completion = attempt::run(&state, &targets, &job, None).await;
                // Record first, then forget the lease: a release at shutdown
                // must never undo an attempt that was made.
                let _ = done_tx.send(completion);
                in_flight.lock().expect("in-flight lock").remove(&job.delivery_id);
                drop(permit);
            });
        }
    }

    tracker.close();
    let grace = state.config.shutdown_grace;
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        let leases: Vec<(String, String)> = in_flight.lock().expect("in-flight lock").drain().collect();
        tracing::warn!(
            count = leases.len(),
            "in-flight deliveries did not finish within the grace period; releasing them"
        );
        if let Err(e) = state.db.release(&leases, now_ms()).await {
            tracing::error!(error = ?e, "releasing leases failed; they become due when the lease runs out");
        }
    }
    drop(done_tx);
    let _ = completer.await;
}

/// How long to sleep with nothing due: until the next due delivery, at most `MAX_IDLE`.
async fn idle_time(state: &AppState) -> Duration {
    match state.db.next_due_at().await {
        Ok(Some(due)) => Duration::from_millis((due - now_ms()).clamp(1, MAX_IDLE.as_millis() as i64) as u64),
        _ => MAX_IDLE,
    }
}

/// Records results in batches until every sender is gone.
async fn complete_loop(state: AppState, mut rx: mpsc::UnboundedReceiver<Completion>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < COMPLETE_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let mut wait = Duration::from_millis(100);
        for attempt in 1.. {
            match state.db.complete(&batch).await {
                Ok(applied) => {
                    if applied < batch.len() {
                        tracing::warn!(
                            late = batch.len() - applied,
                            "some results arrived after their lease ran out; those deliveries were left as others had set them"
                        );
                    }
                    break;
                }
                Err(e) if attempt < RECORD_TRIES => {
                    // Keep the results: the leases stay ours until they run out.
                    tracing::error!(error = ?e, count = batch.len(), "recording attempts failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    // Nothing is lost: unrecorded deliveries are still leased,
                    // become due when the lease runs out, and are sent again
                    // under the same webhook-id.
                    tracing::error!(error = ?e, count = batch.len(), "giving up recording these attempts; their deliveries will be retried");
                    break;
                }
            }
        }
    }
}
