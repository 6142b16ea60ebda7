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
    collections::{HashMap, VecDeque},
    future::poll_fn,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::Poll,
    time::Duration,
};

use axum::extract::ws::Utf8Bytes;
use herald_store::{Db, inbox::InboxItemRow};
use futures::task::AtomicWaker;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::inbox::ItemOut;

/// Notifications a connection may have waiting before it is marked lagged.
const QUEUE_CAP: usize = 64;
/// WebSocket connections are pinged this often (one timer for all of them).
pub const PING_EVERY: Duration = Duration::from_secs(30);
/// The PostgreSQL channel on which nodes tell each other about inbox changes.
const CHANNEL: &str = "herald_inbox";
/// NOTIFY payloads stay under PostgreSQL's 8000-byte limit.
const MAX_PAYLOAD: usize = 7_000;
/// Announcements waiting to be sent to other nodes; past this they are
/// dropped (clients catch up when they reconnect).
const ANNOUNCE_QUEUE: usize = 8_192;
/// At most one announcing commit this often: what arrives meanwhile shares
/// the next one (each NOTIFY commit is a WAL flush, serialised with every
/// other NOTIFY).
const ANNOUNCE_EVERY: Duration = Duration::from_millis(10);

/// Cheap to clone.
#[derive(Clone)]
pub struct Live(Arc<Hub>);

struct Hub {
    db: Db,
    /// Names this node in cross-node messages, so it ignores its own.
    node: String,
    /// `tenant \n recipient` → that recipient's connections on this node.
    recipients: Mutex<HashMap<Arc<str>, Recipient>>,
    /// Orders unread-count refreshes: only the newest requested one is pushed.
    seq: AtomicU64,
    closed: AtomicBool,
    announce: Option<mpsc::Sender<Announcement>>,
    announce_rx: Mutex<Option<mpsc::Receiver<Announcement>>>,
}

struct Recipient {
    conns: Vec<Arc<Conn>>,
    /// The newest unread-count refresh asked for.
    count_seq: u64,
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
pub fn count_message(count: i64) -> Utf8Bytes {
    format!(r#"{{"type":"unread_count","data":{{"count":{count}}}}}"#).into()
}

/// What waits for one connection; taken whole by the connection.
#[derive(Default)]
pub struct Batch {
    pub notes: VecDeque<Arc<Note>>,
    /// The newest unread count, when it changed.
    pub count: Option<i64>,
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
                b.notes = VecDeque::new();
                b.lagged = true;
                metrics::counter!("herald_live_lagged_total").increment(1);
            } else {
                b.notes.push_back(note.clone());
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
    key: String,
    tenant: String,
    recipient: String,
    seq: u64,
}

/// What other nodes are told.
enum Announcement {
    Item { tenant: String, recipient: String, id: String },
    Changed { tenant: String, recipient: String },
}

/// A NOTIFY payload: `items` are `[tenant, recipient, item id]`, `changed`
/// are `[tenant, recipient]`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Wire {
    node: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    items: Vec<(String, String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    changed: Vec<(String, String)>,
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
            seq: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            announce,
            announce_rx: Mutex::new(rx),
        }))
    }

    /// Registers a connection of `recipient`. `pings`: a WebSocket, pinged
    /// every [`PING_EVERY`].
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
            map.entry(key.clone()).or_insert_with(|| Recipient { conns: Vec::new(), count_seq: 0 }).conns.push(conn.clone());
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
        let mut refresh = Vec::new();
        let seq = self.0.seq.fetch_add(1, Ordering::Relaxed);
        {
            let mut map = self.0.recipients.lock().expect("live hub lock");
            for item in items {
                let key = key(&item.tenant_id, &item.recipient_id);
                let Some(r) = map.get_mut(key.as_str()) else { continue };
                deliveries.push((r.conns.clone(), item));
                if r.count_seq != seq {
                    r.count_seq = seq;
                    let (tenant, recipient) = (item.tenant_id.clone(), item.recipient_id.clone());
                    refresh.push(Refresh { key, tenant, recipient, seq });
                }
            }
        }
        for (conns, item) in deliveries {
            let note = Note::new(item.clone());
            conns.iter().for_each(|c| c.push(&note));
        }
        self.0.spawn_refresh(refresh);
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

    /// Starts the hub's tasks until `shutdown`: the WebSocket ping timer,
    /// closing every connection at shutdown, and on PostgreSQL the
    /// announcer and the listener for other nodes.
    pub fn spawn(&self, shutdown: CancellationToken) {
        let hub = self.0.clone();
        let token = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tick.tick() => hub.each_conn(|c| if c.pings { c.update(|b| b.ping = true) }),
                }
            }
            hub.closed.store(true, Ordering::Release);
            hub.each_conn(|c| c.update(|b| b.closed = true));
        });
        let rx = self.0.announce_rx.lock().expect("announce lock").take();
        if let (Db::Postgres(pool), Some(rx)) = (&self.0.db, rx) {
            tokio::spawn(announcer(pool.clone(), self.0.node.clone(), rx, shutdown.clone()));
            tokio::spawn(listener(self.0.clone(), pool.clone(), shutdown));
        }
    }
}

impl Hub {
    fn each_conn(&self, f: impl Fn(&Conn)) {
        let map = self.recipients.lock().expect("live hub lock");
        map.values().flat_map(|r| r.conns.iter()).for_each(|c| f(c));
    }

    fn conns(&self, key: &str) -> Option<Vec<Arc<Conn>>> {
        self.recipients.lock().expect("live hub lock").get(key).map(|r| r.conns.clone())
    }

    /// Asks for a count refresh of those recipients that have connections here.
    fn mark(&self, who: &[(&str, &str)]) -> Vec<Refresh> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut map = self.recipients.lock().expect("live hub lock");
        who.iter()
            .filter_map(|(tenant, recipient)| {
                let key = key(tenant, recipient);
                let r = map.get_mut(key.as_str())?;
                r.count_seq = seq;
                Some(Refresh { key, tenant: (*tenant).to_owned(), recipient: (*recipient).to_owned(), seq })
            })
            .collect()
    }

    /// Reads the unread counts and pushes each unless a newer refresh of
    /// the same recipient was asked for meanwhile (that one will push).
    fn spawn_refresh(self: &Arc<Self>, refresh: Vec<Refresh>) {
        if refresh.is_empty() {
            return;
        }
        let hub = self.clone();
        tokio::spawn(async move {
            for f in refresh {
                let count = match hub.db.unread_count(&f.tenant, &f.recipient).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, tenant = f.tenant, "cannot read an unread count for live connections");
                        continue;
                    }
                };
                let conns = {
                    let map = hub.recipients.lock().expect("live hub lock");
                    map.get(f.key.as_str()).filter(|r| r.count_seq == f.seq).map(|r| r.conns.clone())
                };
                for c in conns.unwrap_or_default() {
                    c.update(|b| b.count = Some(count));
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

    /// Another node's announcement: items and counts for our connections.
    async fn heard(self: &Arc<Self>, wire: Wire) {
        if wire.node == self.node {
            return;
        }
        let mut who: Vec<(&str, &str)> = Vec::new();
        for (tenant, recipient, id) in &wire.items {
            let Some(conns) = self.conns(&key(tenant, recipient)) else { continue };
            match self.db.get_inbox_item(tenant, recipient, id).await {
                Ok(Some(item)) => {
                    let note = Note::new(item);
                    conns.iter().for_each(|c| c.push(&note));
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read an inbox item announced by another node"),
            }
            who.push((tenant, recipient));
        }
        who.extend(wire.changed.iter().map(|(t, r)| (t.as_str(), r.as_str())));
        who.sort_unstable();
        who.dedup();
        self.spawn_refresh(self.mark(&who));
    }
}

/// Sends queued announcements as few NOTIFYs as fit, in one transaction
/// at most every [`ANNOUNCE_EVERY`].
async fn announcer(
    pool: sqlx::PgPool,
    node: String,
    mut rx: mpsc::Receiver<Announcement>,
    shutdown: CancellationToken,
) {
    let mut pending = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            n = rx.recv_many(&mut pending, 4096) => if n == 0 { return },
        }
        let next = tokio::time::Instant::now() + ANNOUNCE_EVERY;
        let payloads = payloads(&node, pending.drain(..));
        let sent = async {
            let mut tx = pool.begin().await?;
            for p in &payloads {
                sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(p).execute(&mut *tx).await?;
            }
            tx.commit().await
        };
        if let Err(e) = sent.await {
            tracing::warn!(error = %e, "could not tell other nodes about inbox changes");
        }
        tokio::time::sleep_until(next).await;
    }
}

/// Packs announcements into payloads under [`MAX_PAYLOAD`] bytes.
fn payloads(node: &str, announcements: impl Iterator<Item = Announcement>) -> Vec<String> {
    let mut out = Vec::new();
    let mut wire = Wire { node: node.to_owned(), ..Wire::default() };
    let mut size = 0;
    for a in announcements {
        // Quotes and backslashes in ids double when escaped.
        let len = match &a {
            Announcement::Item { tenant, recipient, id } => 2 * (tenant.len() + recipient.len() + id.len()) + 16,
            Announcement::Changed { tenant, recipient } => 2 * (tenant.len() + recipient.len()) + 12,
        };
        if size + len > MAX_PAYLOAD && size > 0 {
            out.push(serde_json::to_string(&wire).expect("a wire message serialises"));
            wire = Wire { node: node.to_owned(), ..Wire::default() };
            size = 0;
        }
        size += len;
        match a {
            Announcement::Item { tenant, recipient, id } => wire.items.push((tenant, recipient, id)),
            Announcement::Changed { tenant, recipient } => wire.changed.push((tenant, recipient)),
        }
    }
    if size > 0 {
        out.push(serde_json::to_string(&wire).expect("a wire message serialises"));
    }
    out
}

/// Listens for other nodes' announcements until shutdown.
async fn listener(hub: Arc<Hub>, pool: sqlx::PgPool, shutdown: CancellationToken) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other nodes' inbox changes; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN herald_inbox failed; retrying");
            continue;
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                msg = listener.recv() => match msg {
                    Ok(n) => match serde_json::from_str::<Wire>(n.payload()) {
                        Ok(wire) => hub.heard(wire).await,
                        Err(e) => tracing::warn!(error = %e, "an unreadable herald_inbox notification"),
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the inbox notification connection; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_limit() {
        let many = (0..500).map(|i| Announcement::Item {
            tenant: "default".into(),
            recipient: format!("recipient-{i}"),
            id: format!("ntf_{i:032x}"),
        });
        let out = payloads("node", many.chain([Announcement::Changed { tenant: "t".into(), recipient: "r".into() }]));
        assert!(out.len() > 1);
        assert!(out.iter().all(|p| p.len() < 8000), "{:?}", out.iter().map(String::len).collect::<Vec<_>>());
        let wires: Vec<Wire> = out.iter().map(|p| serde_json::from_str(p).unwrap()).collect();
        assert_eq!(wires.iter().map(|w| w.items.len()).sum::<usize>(), 500);
        assert_eq!(wires.last().unwrap().changed, vec![("t".to_owned(), "r".to_owned())]);
    }
}
