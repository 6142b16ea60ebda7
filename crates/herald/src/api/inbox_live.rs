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

use super::websocket::{Socket, Upgrade};
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
/// WebSocket read buffer: clients send pings and close frames only (a
/// bigger frame grows it, up to [`MAX_CLIENT_MESSAGE`]). tungstenite's
/// default is 128 KiB per connection.
const READ_BUFFER: usize = 128;
const MAX_CLIENT_MESSAGE: usize = 4096;
/// Past this, a client that does not read is dropped rather than buffered.
const MAX_WRITE_BUFFER: usize = 64 * 1024;

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

    /// Takes in what the hub pushed; `false` ends the connection (shutdown,
    /// or the database failed while catching up: the client reconnects).
    /// The catch-up of a lagged connection is boxed: its query's state is
    /// allocated while it runs, not reserved in every idle connection's task.
    async fn absorb(&mut self, batch: Batch) -> bool {
        if batch.closed {
            return false;
        }
        if self.recent.as_ref().is_some_and(|r| Instant::now() > r.until) {
            self.recent = None;
        }
        if batch.lagged
            && let Err(e) = Box::pin(self.catch_up(&self.last_id.clone())).await
        {
            tracing::warn!(error = %e, "a lagged live connection could not catch up; closing it");
            return false;
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
        true
    }

    /// The next thing to send, waiting for it; `None` ends the connection.
    async fn next(&mut self) -> Option<Out> {
        loop {
            if let Some(out) = self.pop() {
                return Some(out);
            }
            let batch = self.sub.recv().await;
            if !Box::pin(self.absorb(batch)).await {
                return None;
            }
        }
    }
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
    Ok(upgrade.on_upgrade(socket_config, move |socket| run_websocket(socket, feed)))
}

fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE))
}

/// Not an `async fn`: that would keep its arguments twice in the task (as
/// arguments and as locals), and the socket is over 300 bytes.
#[allow(clippy::manual_async_fn)]
fn run_websocket(mut socket: Socket, mut feed: Box<Feed>) -> impl Future<Output = ()> + Send {
    async move {
        // Anything heard from the client since the last ping (browsers
        // answer pings with pongs); silence for a whole interval closes.
        let mut heard = true;
        loop {
            // Send what is due; meanwhile the client's frames wait in the socket.
            while let Some(out) = feed.pop() {
                let message = match out {
                    Out::Note(note) => {
                        sent("notification");
                        Message::Text(note.message.clone())
                    }
                    Out::Count(count) => {
                        sent("unread_count");
                        Message::Text(count_message(count))
                    }
                    Out::Ping if heard => {
                        heard = false;
                        Message::Ping(Bytes::new())
                    }
                    Out::Ping => return,
                };
                if socket.send(message).await.is_err() {
                    return;
                }
            }
            // Both are cancel-safe: whichever loses loses nothing. The
            // client's frame is looked at in place (only whether it is a
            // close), so the task keeps no room for a message or an error.
            let client =
                poll_fn(|cx| socket.poll_next_unpin(cx).map(|m| matches!(m, Some(Ok(ref m)) if !m.is_close())));
            tokio::select! {
                batch = feed.sub.recv() => if !Box::pin(feed.absorb(batch)).await {
                    let away = CloseFrame { code: CloseCode::Away, reason: "the server is shutting down".into() };
                    let _ = socket.send(Message::Close(Some(away))).await;
                    return;
                },
                open = client => if open { heard = true } else { return },
            }
        }
    }
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
