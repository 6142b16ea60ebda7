//! Group commit: concurrent `POST /v1/events` requests share one transaction
//! and one fsync. Each request hands its events to a writer task and waits
//! for the commit; a writer takes everything queued while the previous
//! commit was on disk, so batches grow with load and latency stays one
//! commit deep. The same transaction routes the new events and inserts
//! their deliveries (see [`super::router`]).

use std::sync::Arc;

use herald_store::{
    Db,
    events::{Inserted, NewEvent},
    inbox::InboxItemRow,
};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{router::Router, wake::Wake};
use crate::live::Live;

/// The most events one commit carries.
const MAX_BATCH: usize = 2048;

struct Job {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Vec<Inserted>, Arc<anyhow::Error>>>,
}

/// Submits events to the writers.
#[derive(Clone)]
pub struct IngestHandle {
    tx: mpsc::Sender<Job>,
}

/// Why a submission was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the event store failed")]
    Store(#[source] Arc<anyhow::Error>),
    #[error("the server is shutting down")]
    Closed,
}

impl IngestHandle {
    /// Stores `events` atomically (all or none) and returns their results
    /// once they are committed.
    pub async fn submit(&self, events: Vec<NewEvent>) -> Result<Vec<Inserted>, IngestError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job { events, reply }).await.map_err(|_| IngestError::Closed)?;
        rx.await.map_err(|_| IngestError::Closed)?.map_err(IngestError::Store)
    }
}

/// Starts `writers` writer tasks (one on SQLite, which has one writer anyway).
pub fn spawn(db: Db, wake: Wake, live: Live, router: Router, writers: usize) -> IngestHandle {
    let (tx, rx) = mpsc::channel::<Job>(16_384);
    let rx = Arc::new(Mutex::new(rx));
    let router = Arc::new(router);
    for _ in 0..writers.max(1) {
        let (db, wake, live, rx, router) = (db.clone(), wake.clone(), live.clone(), rx.clone(), router.clone());
        tokio::spawn(async move {
            while let Some(jobs) = next_batch(&rx).await {
                write(&db, &wake, &live, &router, jobs).await;
            }
        });
    }
    IngestHandle { tx }
}

/// Waits for one job, then takes whatever else is already queued.
async fn next_batch(rx: &Mutex<mpsc::Receiver<Job>>) -> Option<Vec<Job>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    let mut count = first.events.len();
    let mut jobs = vec![first];
    while count < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => {
                count += job.events.len();
                jobs.push(job);
            }
            Err(_) => break,
        }
    }
    Some(jobs)
}

async fn write(db: &Db, wake: &Wake, live: &Live, router: &Router, mut jobs: Vec<Job>) {
    match store_and_route(db, router, &mut jobs).await {
        Ok((results, pending, inbox)) => {
            let created = results.iter().filter(|r| matches!(r, Inserted::Created(_))).count();
            metrics::counter!("herald_events_received_total").increment(created as u64);
            if pending {
                wake.deliveries_committed();
            }
            if !inbox.is_empty() {
                live.published(&inbox);
            }
            let mut results = results.into_iter();
            for job in jobs {
                let mine: Vec<Inserted> = results.by_ref().take(job.events.len()).collect();
                let _ = job.reply.send(Ok(mine));
            }
        }
        Err(e) => {
            let events: usize = jobs.iter().map(|j| j.events.len()).sum();
            tracing::error!(error = ?e, events, "storing events failed; nothing of this batch was committed");
            let e = Arc::new(e);
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

/// One transaction: the events (those without a severity take their
/// type's), then the deliveries of those that are new and the inbox items
/// of people reached in the inbox now. Returns the results, whether any
/// delivery is pending, and the items written.
async fn store_and_route(
    db: &Db,
    router: &Router,
    jobs: &mut [Job],
) -> anyhow::Result<(Vec<Inserted>, bool, Vec<InboxItemRow>)> {
    let mut tx = db.begin().await?;
    let configs = router.configs(&mut tx, jobs.iter().flat_map(|j| j.events.iter())).await?;
    for event in jobs.iter_mut().flat_map(|j| j.events.iter_mut()) {
        configs.apply_type_severity(event);
    }
    let events: Vec<&NewEvent> = jobs.iter().flat_map(|j| j.events.iter()).collect();
    let results = tx.insert_events(&events).await?;
    let created: Vec<&NewEvent> =
        events.iter().zip(&results).filter(|(_, r)| matches!(r, Inserted::Created(_))).map(|(e, _)| *e).collect();
    let routed = router.route(&mut tx, &configs, &created).await?;
    tx.insert_deliveries(&routed.deliveries).await?;
    for item in &routed.inbox {
        tx.insert_inbox_item(item).await?;
    }
    tx.commit().await?;
    Ok((results, routed.deliveries.iter().any(|d| d.status == "pending"), routed.inbox))
}
