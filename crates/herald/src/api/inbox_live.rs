//! `GET /v1/inbox/ws` (WebSocket) and `GET /v1/inbox/stream` (Server-Sent
//! Events): a recipient's inbox, live. Both send the unread count first,
//! then what the client missed (`?since=<item id>`, or SSE's
//! `Last-Event-ID`), then each new notification followed by the new count.
//!
//! One task per connection (the one the handshake in [`super::websocket`]
//! spawns, or the SSE response body) carrying a boxed feed, no timer of its
//! own (the hub pings every WebSocket from one timer), small WebSocket
//! buffers: clients only send pings and close frames.

use std::{
    collections::VecDeque,
    convert::Infallible,
    future::poll_fn,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::State,
    http::HeaderMap,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use futures::{SinkExt, StreamExt};
use herald_core::id::NotificationId;
use herald_store::inbox::InboxFilter;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::{
    Bytes, Message,
    protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode},
};

use super::websocket::{Pending, Socket, Upgrade};
use crate::{
    error::{ApiError, ApiResult},
    extract::ApiQuery,
    live::{Batch, Note, Subscription, count_message},
    recipient_token::RecipientAuth,
    state::AppState,
};

/// The most missed items a (re)connecting client is sent.
const CATCH_UP_MAX: i64 = 500;
/// How long after a catch-up a live copy of a caught-up item may still
/// arrive (it was committed before the read but published after it).
const DEDUPE_FOR: Duration = Duration::from_secs(5);
/// SSE comment lines keep proxies from closing an idle stream.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// WebSocket read buffer: none allocated up front. Clients send pongs,
/// pings and close frames only; tungstenite reserves room for a frame
/// header (14 bytes) when it first reads, then for each frame as it comes
/// (up to [`MAX_CLIENT_MESSAGE`]), reading at most 14 bytes per call: a
/// chatty client pays in reads, an idle one costs nothing. tungstenite's
/// default is 128 KiB per connection.
const READ_BUFFER: usize = 0;
const MAX_CLIENT_MESSAGE: usize = 4096;
/// How long the answer to a client's close frame may take to go out.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);
/// How long the client may take to accept what is sent to it (the socket's
/// buffers full) before it is dropped.
const SEND_WITHIN: Duration = Duration::from_secs(60);

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/inbox/ws", get(websocket)).route("/v1/inbox/stream", get(stream))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LiveQuery {
    /// Send the items after this one first (what a reconnecting client missed).
    since: Option<String>,
    /// The recipient token, for clients that cannot set headers.
    #[serde(rename = "token")]
    _token: Option<String>,
}

/// An item id to resume after; empty means none (`?since=` before any item was seen).
fn item_id(field: &str, raw: &str) -> ApiResult<Option<String>> {
    if raw.is_empty() {
        return Ok(None);
    }
    NotificationId::parse(raw).map(|id| Some(id.into_string())).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// What a connection sends next.
enum Out {
    Note(Arc<Note>),
    Count(u32),
    Ping,
}

/// One connection's feed: the hub's pushes, with catch-up and dedupe.
/// Boxed by its connection, whose task then carries a pointer.
struct Feed {
    sub: Subscription,
    out: VecDeque<Out>,
    /// The newest item this connection has seen (sent, or there when it
    /// connected): where it catches up from after lagging.
    last_id: String,
    /// Items a catch-up sent, skipped when they also arrive live.
    recent: Option<Box<Recent>>,
}

/// Item ids a catch-up sent, and until when a live copy may still arrive
/// (committed before the catch-up read, published after it).
struct Recent {
    ids: Vec<String>,
    until: Instant,
}

impl Recent {
    fn has(recent: Option<&Recent>, id: &str) -> bool {
        recent.is_some_and(|r| r.ids.iter().any(|i| i == id))
    }
}

impl Feed {
    /// Subscribes, then reads the unread count and the catch-up: anything
    /// committed after those reads arrives through the subscription.
    async fn open(state: &AppState, me: RecipientAuth, since: Option<String>, pings: bool) -> ApiResult<Box<Feed>> {
        let sub = state.live.subscribe(&me.tenant, &me.recipient, pings);
        let mut feed = Box::new(Feed { sub, out: VecDeque::new(), last_id: String::new(), recent: None });
        let count = state.db.unread_count(&me.tenant, &me.recipient).await?;
        feed.out.push_back(Out::Count(u32::try_from(count).unwrap_or(u32::MAX)));
        match since {
            Some(since) => {
                feed.catch_up(&since).await?;
                feed.last_id = since;
            }
            None => {
                let newest = InboxFilter { archived: true, limit: 1, ..InboxFilter::default() };
                let rows = state.db.list_inbox(&me.tenant, &me.recipient, &newest).await?;
                feed.last_id = rows.into_iter().next().map(|r| r.id).unwrap_or_default();
            }
        }
        Ok(feed)
    }

    /// Queues the items after `after`, oldest first.
    async fn catch_up(&mut self, after: &str) -> Result<(), herald_store::StoreError> {
        let filter = InboxFilter { after_id: Some(after.to_owned()), limit: CATCH_UP_MAX, ..InboxFilter::default() };
        let rows = self.sub.db().list_inbox(self.sub.tenant(), self.sub.recipient(), &filter).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let recent = self.recent.get_or_insert_with(|| Box::new(Recent { ids: Vec::new(), until: Instant::now() }));
        recent.until = Instant::now() + DEDUPE_FOR;
        for row in rows {
            recent.ids.push(row.id.clone());
            self.out.push_back(Out::Note(Note::new(row)));
        }
        Ok(())
    }

    fn has_next(&self) -> bool {
        !self.out.is_empty()
    }

    /// The next thing to send, if one is ready.
    fn pop(&mut self) -> Option<Out> {
        let out = self.out.pop_front();
        match &out {
            Some(Out::Note(n)) if n.id > self.last_id => self.last_id.clone_from(&n.id),
            Some(_) => {}
            // Drained: an idle connection keeps no queue allocation.
            None => self.out = VecDeque::new(),
        }
        out
    }

    /// Takes in what the hub pushed. Synchronous, so the batch is never
    /// held across an await; a lagged connection then catches up
    /// ([`Feed::recover`]). Called with nothing left to send.
    fn absorb(&mut self, batch: Batch) -> Absorbed {
        if batch.closed {
            return Absorbed::Closed;
        }
        if self.recent.as_ref().is_some_and(|r| Instant::now() > r.until) {
            self.recent = None;
        }
        for note in batch.notes {
            if !Recent::has(self.recent.as_deref(), &note.id) {
                self.out.push_back(Out::Note(note));
            }
        }
        if let Some(count) = batch.count {
            self.out.push_back(Out::Count(count));
        }
        if batch.ping {
            self.out.push_back(Out::Ping);
        }
        if batch.lagged { Absorbed::Lagged } else { Absorbed::Open }
    }

    /// A lagged connection's catch-up from the database; `false` ends the
    /// connection (the client reconnects). The count (and ping) the lagged
    /// batch queued go after the caught-up notes, as a count follows its
    /// notifications. Boxed by its callers: its query is allocated while it
    /// runs, not reserved in every idle task.
    async fn recover(&mut self) -> bool {
        let after = std::mem::take(&mut self.out);
        if let Err(e) = self.catch_up(&self.last_id.clone()).await {
            tracing::warn!(error = %e, "a lagged live connection could not catch up; closing it");
            return false;
        }
        self.out.extend(after);
        true
    }

    /// The next thing to send, waiting for it; `None` ends the connection.
    async fn next(&mut self) -> Option<Out> {
        loop {
            if let Some(out) = self.pop() {
                return Some(out);
            }
            let batch = self.sub.recv().await;
            match self.absorb(batch) {
                Absorbed::Open => {}
                Absorbed::Lagged if Box::pin(self.recover()).await => {}
                Absorbed::Lagged | Absorbed::Closed => return None,
            }
        }
    }
}

/// What a batch from the hub means for the connection.
enum Absorbed {
    Open,
    /// Notifications were dropped: catch up from the database.
    Lagged,
    /// The node is shutting down.
    Closed,
}

fn sent(kind: &'static str) {
    metrics::counter!("herald_live_messages_total", "kind" => kind).increment(1);
}

async fn websocket(
    State(state): State<AppState>,
    me: RecipientAuth,
    ApiQuery(q): ApiQuery<LiveQuery>,
    upgrade: Upgrade,
) -> ApiResult<Response> {
    let since = item_id("since", q.since.as_deref().unwrap_or_default())?;
    let feed = Feed::open(&state, me, since, true).await?;
    Ok(upgrade.on_upgrade(move |pending| run_websocket(pending, feed)))
}

fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE))
}

/// The connection's task. Not an `async fn`: that would keep its
/// arguments twice (as arguments and as locals). The socket (over 300
/// bytes) is the bulk of the task, so nothing else of size is kept across
/// an await: sending and the catch-up are boxed futures that exist while
/// they run. Task sizes are steps of 128 bytes;
/// `the_connection_task_stays_small` pins this one.
#[allow(clippy::manual_async_fn)]
fn run_websocket(pending: Pending, mut feed: Box<Feed>) -> impl Future<Output = ()> + Send {
    async move {
        let Some(mut socket) = pending.socket(socket_config()).await else { return };
        // Anything heard from the client since the last ping (browsers
        // answer pings with pongs); silence for a whole interval closes.
        let mut heard = true;
        loop {
            // Meanwhile the client's frames wait in the socket.
            if !Box::pin(send_due(&mut socket, &mut feed, &mut heard)).await {
                return;
            }
            // Both are cancel-safe: whichever loses loses nothing. The
            // client's frame is looked at in place (only whether it is a
            // close), so the task keeps no room for a message or an error.
            let client = poll_fn(|cx| {
                socket.poll_next_unpin(cx).map(|m| match m {
                    Some(Ok(m)) if m.is_close() => Heard::Close,
                    Some(Ok(_)) => Heard::Frame,
                    Some(Err(_)) | None => Heard::Gone,
                })
            });
            // The client first: a pong that is there when the next ping is
            // due counts as an answer. The awaits come after the `select!`:
            // what it returned is not kept while they wait.
            let step = tokio::select! {
                biased;
                frame = client => Step::Client(frame),
                batch = feed.sub.recv() => Step::Feed(feed.absorb(batch)),
            };
            match step {
                Step::Feed(Absorbed::Open) => {}
                Step::Feed(Absorbed::Lagged) if Box::pin(feed.recover()).await => {}
                Step::Feed(Absorbed::Lagged) | Step::Client(Heard::Gone) => return,
                Step::Feed(Absorbed::Closed) => {
                    Box::pin(going_away(&mut socket)).await;
                    return;
                }
                Step::Client(Heard::Frame) => heard = true,
                // tungstenite has queued the answering close frame.
                Step::Client(Heard::Close) => {
                    let _ =
                        Box::pin(tokio::time::timeout(CLOSE_WITHIN, poll_fn(|cx| socket.poll_flush_unpin(cx)))).await;
                    return;
                }
            }
        }
    }
}

/// Sends what is due and flushes (tungstenite's answers to the client's
/// pings and close go out with it), within [`SEND_WITHIN`]. `false` ends
/// the connection: a write failed, a ping went unanswered for a whole
/// interval, or the client took nothing for that long (a client that
/// stops reading must not hold its connection forever, out of reach of
/// the pings).
async fn send_due(socket: &mut Socket, feed: &mut Feed, heard: &mut bool) -> bool {
    let sending = async {
        while feed.has_next() {
            if poll_fn(|cx| socket.poll_ready_unpin(cx)).await.is_err() {
                return false;
            }
            let Some(out) = feed.pop() else { break };
            let message = match out {
                Out::Note(note) => {
                    sent("notification");
                    Message::Text(note.message.clone())
                }
                Out::Count(count) => {
                    sent("unread_count");
                    Message::Text(count_message(count))
                }
                Out::Ping if *heard => {
                    *heard = false;
                    Message::Ping(Bytes::new())
                }
                Out::Ping => return false,
            };
            if socket.start_send_unpin(message).is_err() {
                return false;
            }
        }
        poll_fn(|cx| socket.poll_flush_unpin(cx)).await.is_ok()
    };
    tokio::time::timeout(SEND_WITHIN, sending).await.unwrap_or(false)
}

/// What the client sent.
enum Heard {
    /// A ping, a pong, or a message (ignored).
    Frame,
    Close,
    /// It went away, or broke the protocol or the size limit.
    Gone,
}

enum Step {
    Feed(Absorbed),
    Client(Heard),
}

/// The close frame of a shutdown. Boxed by its caller: it runs once.
async fn going_away(socket: &mut Socket) {
    let away = CloseFrame { code: CloseCode::Away, reason: "the server is shutting down".into() };
    let _ = tokio::time::timeout(CLOSE_WITHIN, socket.send(Message::Close(Some(away)))).await;
}

async fn stream(
    State(state): State<AppState>,
    me: RecipientAuth,
    ApiQuery(q): ApiQuery<LiveQuery>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    // An EventSource reconnects to the same URL with the last id it got:
    // that is newer than the URL's `since`.
    let since = match headers.get("last-event-id").map(|v| item_id("Last-Event-ID", v.to_str().unwrap_or("?"))) {
        Some(Ok(Some(id))) => Some(id),
        Some(Err(e)) => return Err(e),
        Some(Ok(None)) | None => item_id("since", q.since.as_deref().unwrap_or_default())?,
    };
    let feed = Feed::open(&state, me, since, false).await?;
    let events = futures::stream::unfold(feed, |mut feed| async move {
        loop {
            let event = match feed.next().await? {
                Out::Note(note) => {
                    sent("notification");
                    Event::default().id(note.id.as_str()).data(note.message.as_str())
                }
                Out::Count(count) => {
                    sent("unread_count");
                    Event::default().data(count_message(count).as_str())
                }
                Out::Ping => continue,
            };
            return Some((Ok::<_, Infallible>(event), feed));
        }
    });
    // `X-Accel-Buffering: no` keeps nginx from holding events back.
    Ok(([("x-accel-buffering", "no")], Sse::new(events).keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::tests::{hub, item};

    fn feed(sub: Subscription, last_id: String) -> Box<Feed> {
        Box::new(Feed { sub, out: VecDeque::new(), last_id, recent: None })
    }

    /// An idle connection is mostly its task: tokio allocates a task in
    /// steps of 128 bytes (the future plus about 104), so a future of at
    /// most 408 bytes keeps it at 512. The socket alone is over 300.
    #[tokio::test]
    async fn the_connection_task_stays_small() {
        let (live, _db, dir) = hub().await;
        let task = run_websocket(Pending::never(), feed(live.subscribe("default", "ada", true), String::new()));
        let size = std::mem::size_of_val(&task);
        eprintln!("connection task future: {size} bytes");
        assert!(size <= 408, "a WebSocket connection's future grew to {size} bytes");
        drop(task);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A lagged connection gets what it missed from the database, then the
    /// count: a count follows its notifications, as everywhere else.
    #[tokio::test]
    async fn after_a_lag_the_missed_notes_come_before_the_count() {
        let (live, db, dir) = hub().await;
        let seen = item(&db, "ada").await;
        let missed = [item(&db, "ada").await, item(&db, "ada").await];
        let mut feed = feed(live.subscribe("default", "ada", false), seen.id.clone());
        let lagged = Batch { lagged: true, count: Some(3), ..Batch::default() };
        assert!(matches!(feed.absorb(lagged), Absorbed::Lagged));
        assert!(feed.recover().await);
        let mut sent = Vec::new();
        while let Some(out) = feed.pop() {
            sent.push(match out {
                Out::Note(note) => note.id.clone(),
                Out::Count(n) => format!("count {n}"),
                Out::Ping => "ping".to_owned(),
            });
        }
        assert_eq!(sent, [missed[0].id.clone(), missed[1].id.clone(), "count 3".to_owned()]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
