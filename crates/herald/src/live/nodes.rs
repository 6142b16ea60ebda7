//! Across nodes (PostgreSQL): a node that publishes or changes inbox items
//! announces them with `NOTIFY herald_inbox`, and every node `LISTEN`s and
//! pushes what concerns the recipients connected to it.

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Hub, Note, key};

/// The PostgreSQL channel on which nodes tell each other about inbox changes.
const CHANNEL: &str = "herald_inbox";
/// NOTIFY payloads stay under PostgreSQL's 8000-byte limit.
const MAX_PAYLOAD: usize = 7_000;
/// Announcements waiting to be sent to other nodes; past this they are
/// dropped (clients catch up when they reconnect).
pub(super) const ANNOUNCE_QUEUE: usize = 8_192;
/// The listening connection is checked this often, and must answer within
/// [`CHECK_WITHIN`].
const CHECK_EVERY: Duration = Duration::from_secs(30);
const CHECK_WITHIN: Duration = Duration::from_secs(10);
/// At most one announcing commit this often: what arrives meanwhile shares
/// the next one (each NOTIFY commit is a WAL flush, serialised with every
/// other NOTIFY).
const ANNOUNCE_EVERY: Duration = Duration::from_millis(10);

/// What other nodes are told.
pub(super) enum Announcement {
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

impl Hub {
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
pub(super) async fn announcer(
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

/// Listens for other nodes' announcements until shutdown; `listening` hears
/// when it first does. Announcements sent while nothing listened are gone:
/// each time it listens (again, or for the first time if the server did not
/// wait) every connection here catches up from the database
/// ([`Hub::resync`]). The
/// listening connection is checked every [`CHECK_EVERY`], so one that died
/// without a word (no reset from a proxy or a network) is noticed, and one
/// that idles is not closed by a proxy's idle timeout.
pub(super) async fn listener(
    hub: Arc<Hub>,
    pool: sqlx::PgPool,
    shutdown: CancellationToken,
    listening: tokio::sync::oneshot::Sender<()>,
) {
    let mut listening = Some(listening);
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
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
            }
        }
        if let Some(first) = listening.take() {
            let _ = first.send(());
        }
        hub.resync();
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + CHECK_EVERY, CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                // Cancel-safe (sqlx reads whole messages only). `None`: the
                // connection was lost, and is listening again.
                msg = listener.try_recv() => match msg {
                    Ok(Some(n)) => match serde_json::from_str::<Wire>(n.payload()) {
                        Ok(wire) => hub.heard(wire).await,
                        Err(e) => tracing::warn!(error = %e, "an unreadable herald_inbox notification"),
                    },
                    Ok(None) => {
                        tracing::warn!("the inbox notification connection was lost and is back; live connections catch up");
                        hub.resync();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the inbox notification connection; reconnecting");
                        break;
                    }
                },
                _ = check.tick() => {
                    let alive = tokio::time::timeout(CHECK_WITHIN, sqlx::query("SELECT 1").execute(&mut listener)).await;
                    if !matches!(alive, Ok(Ok(_))) {
                        tracing::warn!("the inbox notification connection does not answer; reconnecting");
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
