//! `GET /v1/inbox/ws` (WebSocket) and `GET /v1/inbox/stream` (Server-Sent
//! Events): a recipient's inbox, live. Both send the unread count first,
//! then what the client missed (`?since=<item id>`, or SSE's
//! `Last-Event-ID`), then each new notification followed by the new count.
//!
//! One task per connection (the one axum gives a WebSocket, the response
//! body of SSE) carrying a boxed feed, no timer of its own (the hub pings
//! every WebSocket from one timer), small WebSocket buffers: clients only
//! send pings and close frames.

use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{
        State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code, rejection::WebSocketUpgradeRejection},
    },
    http::HeaderMap,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use herald_core::id::NotificationId;
use herald_store::inbox::InboxFilter;
use serde::Deserialize;

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
    Count(i64),
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
    /// Items a catch-up sent, skipped when they also arrive live, until
    /// `recent_until`.
    recent: Vec<String>,
    recent_until: Option<Instant>,
}

impl Feed {
    /// Subscribes, then reads the unread count and the catch-up: anything
    /// committed after those reads arrives through the subscription.
    async fn open(state: &AppState, me: RecipientAuth, since: Option<String>, pings: bool) -> ApiResult<Box<Feed>> {
        let sub = state.live.subscribe(&me.tenant, &me.recipient, pings);
        let mut feed =
            Box::new(Feed { sub, out: VecDeque::new(), last_id: String::new(), recent: Vec::new(), recent_until: None });
        let count = state.db.unread_count(&me.tenant, &me.recipient).await?;
        feed.out.push_back(Out::Count(count));
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
        for row in rows {
            self.recent.push(row.id.clone());
            self.out.push_back(Out::Note(Note::new(row)));
        }
        self.recent_until = Some(Instant::now() + DEDUPE_FOR);
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
    async fn absorb(&mut self, batch: Batch) -> bool {
        if batch.closed {
            return false;
        }
        if self.recent_until.is_some_and(|t| Instant::now() > t) {
            (self.recent, self.recent_until) = (Vec::new(), None);
        }
        if batch.lagged {
            let after = self.last_id.clone();
            // Boxed: the query's state is allocated only while it runs,
            // not reserved in every idle connection's task.
            if let Err(e) = Box::pin(self.catch_up(&after)).await {
                tracing::warn!(error = %e, "a lagged live connection could not catch up; closing it");
                return false;
            }
        }
        for note in batch.notes {
            if !self.recent.contains(&note.id) {
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
            if !self.absorb(batch).await {
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
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let upgrade = upgrade.map_err(|r| ApiError::Invalid { field: None, detail: r.body_text() })?;
    let since = item_id("since", q.since.as_deref().unwrap_or_default())?;
    let feed = Feed::open(&state, me, since, true).await?;
    Ok(upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| {
            let f = run_websocket(socket, feed);
            if std::env::var("H2_SIZES").is_ok() {
                eprintln!("SIZES run_websocket={} feed={} ws={}", std::mem::size_of_val(&f), std::mem::size_of::<Feed>(), std::mem::size_of::<WebSocket>());
            }
            f
        }))
}

async fn run_websocket(mut socket: WebSocket, mut feed: Box<Feed>) {
    // Anything heard from the client since the last ping (browsers answer
    // pings with pongs); silence for a whole interval closes the connection.
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
        // Both branches are cancel-safe: whichever loses loses nothing.
        tokio::select! {
            batch = feed.sub.recv() => if !feed.absorb(batch).await {
                let away = CloseFrame { code: close_code::AWAY, reason: "the server is shutting down".into() };
                let _ = socket.send(Message::Close(Some(away))).await;
                return;
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => heard = true,
            },
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
