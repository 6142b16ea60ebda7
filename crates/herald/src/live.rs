//! The live hub: pushes inbox changes to the recipient's open WebSocket and
//! SSE connections on this node, and (on PostgreSQL) tells the other nodes
//! through `NOTIFY herald_inbox` so their connections hear it too.
//!
//! Memory is per connection, so a connection is small: an `Arc<Conn>` with
//! a mutex-guarded outbox and the waker of the one task that reads it (no
//! channel, no per-connection timer). The outbox's queue is taken whole by
//! the connection (an idle one holds no queue allocation), the unread count
//! is one slot (the newest wins), and publishing never waits: a connection
//! that lets [`QUEUE_CAP`] notifications pile up is marked lagged and its
//! queue dropped; it catches up from the database.

use std::{
    collections::HashMap,
    future::poll_fn,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::Poll,
    time::Duration,
};

use futures::task::AtomicWaker;
use herald_store::{Db, inbox::InboxItemRow};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use self::nodes::{ANNOUNCE_QUEUE, Announcement};
use crate::api::inbox::ItemOut;

mod nodes;

/// Notifications a connection may have waiting before it is marked lagged.
const QUEUE_CAP: usize = 64;

/// Cheap to clone.
#[derive(Clone)]
pub struct Live(Arc<Hub>);

struct Hub {
    db: Db,
    /// Names this node in cross-node messages, so it ignores its own.
    node: String,
    /// `tenant \n recipient` → that recipient's connections on this node.
    recipients: Mutex<HashMap<Arc<str>, Recipient>>,
    /// Numbers `Recipient` entries, so a refresh of a removed entry does
    /// not touch a new one under the same key.
    generation: AtomicU64,
    closed: AtomicBool,
    announce: Option<mpsc::Sender<Announcement>>,
    announce_rx: Mutex<Option<mpsc::Receiver<Announcement>>>,
}

struct Recipient {
    conns: Vec<Arc<Conn>>,
    generation: u64,
    /// An unread-count read is under way for them...
    refreshing: bool,
    /// ...and the count changed again since it started: read once more.
    /// So counts are read one at a time per recipient, pushed in order, and
    /// the last one pushed is never older than the last change.
    dirty: bool,
}

impl Recipient {
    /// Asks for a count refresh; `Some(generation)` when the caller is to
    /// run it (none is under way).
    fn ask_refresh(&mut self) -> Option<u64> {
        if self.refreshing {
            self.dirty = true;
            None
        } else {
            self.refreshing = true;
            Some(self.generation)
        }
    }
}

/// A notification ready to send: the item id and the whole message
/// (`{"type": "notification", "data": item}`), shared by every connection.
pub struct Note {
    pub id: String,
    pub message: Utf8Bytes,
}

impl Note {
    pub fn new(item: InboxItemRow) -> Arc<Note> {
        #[derive(Serialize)]
        struct Message {
            #[serde(rename = "type")]
            kind: &'static str,
            data: ItemOut,
        }
        let id = item.id.clone();
        let message = serde_json::to_string(&Message { kind: "notification", data: ItemOut::from(item) })
            .expect("an inbox item serialises");
        Arc::new(Note { id, message: message.into() })
    }
}

/// `{"type": "unread_count", "data": {"count": n}}`.
pub fn count_message(count: u32) -> Utf8Bytes {
    format!(r#"{{"type":"unread_count","data":{{"count":{count}}}}}"#).into()
}

/// What waits for one connection; taken whole by the connection.
#[derive(Default)]
pub struct Batch {
    pub notes: Vec<Arc<Note>>,
    /// The newest unread count, when it changed (32 bits keep every
    /// connection's outbox small; no inbox holds 4 billion items).
    pub count: Option<u32>,
    /// Notifications were dropped: catch up from the database.
    pub lagged: bool,
    /// Time for a WebSocket ping.
    pub ping: bool,
    /// The node is shutting down: end the connection.
    pub closed: bool,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.notes.is_empty() && self.count.is_none() && !self.lagged && !self.ping && !self.closed
    }
}

struct Conn {
    outbox: Mutex<Batch>,
    /// The connection's task, waiting for its outbox.
    waker: AtomicWaker,
    /// A WebSocket: the hub's timer asks it to ping.
    pings: bool,
}

impl Conn {
    fn update(&self, f: impl FnOnce(&mut Batch)) {
        f(&mut self.outbox.lock().expect("outbox lock"));
        self.waker.wake();
    }

    fn push(&self, note: &Arc<Note>) {
        self.update(|b| {
            if b.lagged {
                return;
            }
            if b.notes.len() >= QUEUE_CAP {
                b.notes = Vec::new();
                b.lagged = true;
                metrics::counter!("herald_live_lagged_total").increment(1);
            } else {
                b.notes.push(note.clone());
            }
        });
    }
}

/// One open connection's place in the hub; leaving it (drop) unsubscribes.
pub struct Subscription {
    hub: Arc<Hub>,
    key: Arc<str>,
    conn: Arc<Conn>,
}

impl Subscription {
    /// Waits until something is there for this connection and takes it.
    /// Cancel-safe: nothing is taken unless it is returned.
    pub fn recv(&self) -> impl Future<Output = Batch> + '_ {
        poll_fn(|cx| {
            // Registered before looking: a push after the look wakes us.
            self.conn.waker.register(cx.waker());
            let batch = std::mem::take(&mut *self.conn.outbox.lock().expect("outbox lock"));
            if batch.is_empty() { Poll::Pending } else { Poll::Ready(batch) }
        })
    }

    pub fn tenant(&self) -> &str {
        self.key.split_once('\n').map_or("", |(tenant, _)| tenant)
    }

    pub fn recipient(&self) -> &str {
        self.key.split_once('\n').map_or("", |(_, recipient)| recipient)
    }

    pub fn db(&self) -> &Db {
        &self.hub.db
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut map = self.hub.recipients.lock().expect("live hub lock");
        if let Some(r) = map.get_mut(&*self.key) {
            r.conns.retain(|c| !Arc::ptr_eq(c, &self.conn));
            if r.conns.is_empty() {
                map.remove(&*self.key);
            }
        }
        metrics::gauge!("herald_live_connections").decrement(1.0);
    }
}

fn key(tenant: &str, recipient: &str) -> String {
    // Tenant ids are slugs and recipient ids have no control characters.
    format!("{tenant}\n{recipient}")
}

/// A recipient whose unread count is to be read and pushed.
struct Refresh {
    tenant: String,
    recipient: String,
    generation: u64,
}

impl Live {
    pub fn new(db: Db) -> Self {
        let (announce, rx) = match db {
            Db::Postgres(_) => {
                let (tx, rx) = mpsc::channel(ANNOUNCE_QUEUE);
                (Some(tx), Some(rx))
            }
            _ => (None, None),
        };
        Live(Arc::new(Hub {
            db,
            node: uuid::Uuid::new_v4().simple().to_string(),
            recipients: Mutex::default(),
            generation: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            announce,
            announce_rx: Mutex::new(rx),
        }))
    }

    /// Registers a connection of `recipient`. `pings`: a WebSocket, pinged
    /// at the hub's interval (see [`Live::spawn`]).
    pub fn subscribe(&self, tenant: &str, recipient: &str, pings: bool) -> Subscription {
        let conn = Arc::new(Conn { outbox: Mutex::default(), waker: AtomicWaker::new(), pings });
        let key = key(tenant, recipient);
        let key = {
            let mut map = self.0.recipients.lock().expect("live hub lock");
            // The map's key is shared with the subscription: one allocation.
            let key: Arc<str> = match map.get_key_value(key.as_str()) {
                Some((k, _)) => k.clone(),
                None => key.into(),
            };
            map.entry(key.clone())
                .or_insert_with(|| Recipient {
                    // Most people have one connection open: room for one.
                    conns: Vec::with_capacity(1),
                    generation: self.0.generation.fetch_add(1, Ordering::Relaxed),
                    refreshing: false,
                    dirty: false,
                })
                .conns
                .push(conn.clone());
            key
        };
        metrics::gauge!("herald_live_connections").increment(1.0);
        if self.0.closed.load(Ordering::Acquire) {
            conn.update(|b| b.closed = true);
        }
        Subscription { hub: self.0.clone(), key, conn }
    }

    /// New inbox items, committed: each reaches its recipient's connections,
    /// followed by their new unread count.
    pub fn published(&self, items: &[InboxItemRow]) {
        if items.is_empty() {
            return;
        }
        let mut deliveries = Vec::new();
        {
            let map = self.0.recipients.lock().expect("live hub lock");
            for item in items {
                if let Some(r) = map.get(key(&item.tenant_id, &item.recipient_id).as_str()) {
                    deliveries.push((r.conns.clone(), item));
                }
            }
        }
        let mut who: Vec<(&str, &str)> = Vec::with_capacity(deliveries.len());
        for (conns, item) in deliveries {
            let note = Note::new(item.clone());
            conns.iter().for_each(|c| c.push(&note));
            who.push((&item.tenant_id, &item.recipient_id));
        }
        who.sort_unstable();
        who.dedup();
        self.0.spawn_refresh(self.0.mark(&who));
        for item in items {
            self.0.announce(Announcement::Item {
                tenant: item.tenant_id.clone(),
                recipient: item.recipient_id.clone(),
                id: item.id.clone(),
            });
        }
    }

    /// A recipient's items changed (read, unread, archived, deleted): their
    /// connections get the new unread count.
    pub fn changed(&self, tenant: &str, recipient: &str) {
        self.0.spawn_refresh(self.0.mark(&[(tenant, recipient)]));
        self.0.announce(Announcement::Changed { tenant: tenant.to_owned(), recipient: recipient.to_owned() });
    }

    /// Starts the hub's tasks until `shutdown`: the WebSocket ping timer
    /// (every `ping_every`, one timer for all connections), closing every
    /// connection at shutdown, and on PostgreSQL the announcer and the
    /// listener for other nodes. The answer completes once this node hears
    /// other nodes (at once on SQLite): the server waits for it before
    /// taking clients, who would otherwise miss what is announced meanwhile.
    pub fn spawn(&self, shutdown: CancellationToken, ping_every: Duration) -> impl Future<Output = ()> + use<> {
        let hub = self.0.clone();
        let token = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
            // After a stall, one ping, not a burst (a second one at once
            // would find the first unanswered and close the connection).
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tick.tick() => hub.ping_websockets(),
                }
            }
            hub.closed.store(true, Ordering::Release);
            hub.each_conn(|c| c.update(|b| b.closed = true));
        });
        let (listening, heard) = tokio::sync::oneshot::channel();
        let rx = self.0.announce_rx.lock().expect("announce lock").take();
        if let (Db::Postgres(pool), Some(rx)) = (&self.0.db, rx) {
            tokio::spawn(nodes::announcer(pool.clone(), self.0.node.clone(), rx, shutdown.clone()));
            tokio::spawn(nodes::listener(self.0.clone(), pool.clone(), shutdown, listening));
        } else {
            let _ = listening.send(());
        }
        async move {
            let _ = heard.await;
        }
    }
}

impl Hub {
    fn ping_websockets(&self) {
        self.each_conn(|c| {
            if c.pings {
                c.update(|b| b.ping = true);
            }
        });
    }

    /// After announcements may have been missed: every connection catches
    /// up from the database (marked lagged) and gets its count again.
    fn resync(self: &Arc<Self>) {
        self.each_conn(|c| {
            c.update(|b| {
                b.notes = Vec::new();
                b.lagged = true;
            });
        });
        metrics::counter!("herald_live_resyncs_total").increment(1);
        let keys: Vec<Arc<str>> = self.recipients.lock().expect("live hub lock").keys().cloned().collect();
        let who: Vec<(&str, &str)> = keys.iter().filter_map(|k| k.split_once('\n')).collect();
        self.spawn_refresh(self.mark(&who));
    }

    fn each_conn(&self, f: impl Fn(&Conn)) {
        let map = self.recipients.lock().expect("live hub lock");
        map.values().flat_map(|r| r.conns.iter()).for_each(|c| f(c));
    }

    fn conns(&self, key: &str) -> Option<Vec<Arc<Conn>>> {
        self.recipients.lock().expect("live hub lock").get(key).map(|r| r.conns.clone())
    }

    /// Asks for a count refresh of those recipients (each once) that have
    /// connections here; returns those whose refresh the caller runs.
    fn mark(&self, who: &[(&str, &str)]) -> Vec<Refresh> {
        let mut map = self.recipients.lock().expect("live hub lock");
        who.iter()
            .filter_map(|&(tenant, recipient)| {
                let generation = map.get_mut(key(tenant, recipient).as_str())?.ask_refresh()?;
                Some(Refresh { tenant: tenant.to_owned(), recipient: recipient.to_owned(), generation })
            })
            .collect()
    }

    /// Reads each recipient's unread count and pushes it, again while it
    /// changed meanwhile.
    fn spawn_refresh(self: &Arc<Self>, refresh: Vec<Refresh>) {
        if refresh.is_empty() {
            return;
        }
        let hub = self.clone();
        tokio::spawn(async move {
            for f in refresh {
                let key = key(&f.tenant, &f.recipient);
                loop {
                    let count = hub.db.unread_count(&f.tenant, &f.recipient).await;
                    let mut map = hub.recipients.lock().expect("live hub lock");
                    let Some(r) = map.get_mut(key.as_str()).filter(|r| r.generation == f.generation) else { break };
                    match count {
                        Ok(n) => {
                            let count = u32::try_from(n).unwrap_or(u32::MAX);
                            r.conns.iter().for_each(|c| c.update(|b| b.count = Some(count)));
                        }
                        Err(ref e) => {
                            tracing::warn!(error = %e, tenant = f.tenant, "cannot read an unread count for live connections");
                        }
                    }
                    if !std::mem::take(&mut r.dirty) || count.is_err() {
                        r.refreshing = false;
                        break;
                    }
                }
            }
        });
    }

    fn announce(&self, a: Announcement) {
        if let Some(tx) = &self.announce
            && tx.try_send(a).is_err()
        {
            metrics::counter!("herald_live_announcements_dropped_total").increment(1);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use herald_core::id::{DeliveryId, EventId, NotificationId};

    use super::*;

    /// A hub on a fresh SQLite database, its database and its directory.
    pub(crate) async fn hub() -> (Live, Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("herald-live-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Db::connect(&Db::sqlite_url_in(&dir)).await.unwrap();
        db.migrate().await.unwrap();
        (Live::new(db.clone()), db, dir)
    }

    /// Writes an unread item for `recipient`, as routing does.
    pub(crate) async fn item(db: &Db, recipient: &str) -> InboxItemRow {
        let row = InboxItemRow {
            id: NotificationId::new().into_string(),
            tenant_id: "default".into(),
            recipient_id: recipient.into(),
            delivery_id: DeliveryId::new().into_string(),
            event_id: EventId::new().into_string(),
            kind: "task_due".into(),
            severity: "info".into(),
            title: "Task due".into(),
            body: String::new(),
            link: None,
            data: r#"{"n":1}"#.into(),
            created_at: 1,
            read_at: None,
            archived_at: None,
        };
        assert!(db.insert_inbox_item(&row).await.unwrap());
        row
    }

    async fn next(sub: &Subscription) -> Batch {
        tokio::time::timeout(Duration::from_secs(5), sub.recv()).await.expect("a batch within 5 s")
    }

    #[tokio::test]
    async fn items_reach_their_recipient_then_the_count() {
        let (live, db, dir) = hub().await;
        let (ada, bob) = (live.subscribe("default", "ada", true), live.subscribe("default", "bob", false));
        let a = item(&db, "ada").await;
        live.published(std::slice::from_ref(&a));
        let mut batch = next(&ada).await;
        assert_eq!(batch.notes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), [a.id.as_str()]);
        let message: serde_json::Value = serde_json::from_str(&batch.notes[0].message).unwrap();
        assert_eq!(
            (&message["type"], &message["data"]["data"]),
            (&"notification".into(), &serde_json::json!({"n": 1}))
        );
        while batch.count.is_none() {
            batch = next(&ada).await;
        }
        assert_eq!(batch.count, Some(1));
        assert!(tokio::time::timeout(Duration::from_millis(200), bob.recv()).await.is_err(), "bob hears nothing");

        // A change is a new count; the second of two connections hears it too.
        let ada2 = live.subscribe("default", "ada", false);
        db.change_inbox_item("default", "ada", &a.id, herald_store::inbox::ItemChange::Read, 2).await.unwrap();
        live.changed("default", "ada");
        assert_eq!(next(&ada).await.count, Some(0));
        assert_eq!(next(&ada2).await.count, Some(0));
        drop((ada, ada2, bob));
        assert!(live.0.recipients.lock().unwrap().is_empty(), "dropping a subscription unsubscribes");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_connection_that_falls_behind_is_marked_lagged_not_waited_for() {
        let (live, db, dir) = hub().await;
        let ada = live.subscribe("default", "ada", false);
        let mut items = Vec::new();
        for _ in 0..QUEUE_CAP + 10 {
            items.push(item(&db, "ada").await);
        }
        live.published(&items);
        let batch = next(&ada).await;
        assert!(batch.lagged && batch.notes.is_empty(), "the queue is dropped, not grown");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn shutdown_closes_every_connection_and_pings_are_for_websockets() {
        let (live, _db, dir) = hub().await;
        let (ws, sse) = (live.subscribe("default", "ada", true), live.subscribe("default", "bob", false));
        live.0.ping_websockets();
        assert!(next(&ws).await.ping);
        let shutdown = CancellationToken::new();
        live.spawn(shutdown.clone(), Duration::from_secs(30)).await;
        shutdown.cancel();
        let batch = next(&sse).await;
        assert!(batch.closed && !batch.ping, "SSE has its own keep-alive");
        assert!(next(&ws).await.closed);
        assert!(next(&live.subscribe("default", "cy", true)).await.closed, "no new connection after shutdown");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
