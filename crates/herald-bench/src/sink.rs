//! Local webhook sinks: axum servers on 127.0.0.1 that answer 204 and count
//! what Herald delivers (requests, distinct `webhook-id`s, missing headers).

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use serde::Serialize;
use tokio::task::JoinHandle;

/// One sink; it stops serving when dropped.
pub struct Sink {
    pub addr: SocketAddr,
    state: Arc<SinkState>,
    server: JoinHandle<()>,
}

#[derive(Default)]
struct SinkState {
    requests: AtomicU64,
    missing_id: AtomicU64,
    missing_signature: AtomicU64,
    not_json: AtomicU64,
    ids: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    /// When the last new delivery (not a duplicate) arrived.
    last_new: Option<Instant>,
}

/// What the sinks received, summed over all of them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Received {
    pub requests: u64,
    /// Distinct `webhook-id`s plus requests without one.
    pub deliveries: u64,
    /// Requests that repeated a `webhook-id` already seen.
    pub duplicates: u64,
    pub missing_webhook_id: u64,
    pub missing_signature_headers: u64,
    pub body_not_json: u64,
    #[serde(skip)]
    pub last_new: Option<Instant>,
}

impl Sink {
    /// Starts a sink on a free port of 127.0.0.1; it accepts `POST /hook`.
    pub async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding a sink on 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SinkState::default());
        let app = Router::new().route("/hook", post(receive)).with_state(state.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("sink {addr} stopped: {error}");
            }
        });
        Ok(Self { addr, state, server })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn received(&self) -> Received {
        let state = &self.state;
        let requests = state.requests.load(Ordering::Acquire);
        let missing_id = state.missing_id.load(Ordering::Acquire);
        let seen = state.ids.lock().expect("sink state lock");
        let distinct = seen.ids.len() as u64;
        Received {
            requests,
            deliveries: distinct + missing_id,
            duplicates: requests.saturating_sub(distinct + missing_id),
            missing_webhook_id: missing_id,
            missing_signature_headers: state.missing_signature.load(Ordering::Acquire),
            body_not_json: state.not_json.load(Ordering::Acquire),
            last_new: seen.last_new,
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(State(state): State<Arc<SinkState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let has = |name: &str| headers.get(name).is_some_and(|v| !v.is_empty());
    if !(has("webhook-timestamp") && has("webhook-signature")) {
        state.missing_signature.fetch_add(1, Ordering::Relaxed);
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
        state.not_json.fetch_add(1, Ordering::Relaxed);
    }
    let id = headers.get("webhook-id").and_then(|value| value.to_str().ok()).filter(|id| !id.is_empty());
    {
        let mut seen = state.ids.lock().expect("sink state lock");
        match id {
            Some(id) => {
                if seen.ids.insert(id.to_owned()) {
                    seen.last_new = Some(Instant::now());
                }
            }
            None => {
                state.missing_id.fetch_add(1, Ordering::Relaxed);
                seen.last_new = Some(Instant::now());
            }
        }
        // Counted under the lock so `received` never sees a request without its id.
        state.requests.fetch_add(1, Ordering::Release);
    }
    StatusCode::NO_CONTENT
}

/// Sums what every sink received.
pub fn received(sinks: &[Sink]) -> Received {
    sinks.iter().map(Sink::received).fold(Received::default(), |mut sum, one| {
        sum.requests += one.requests;
        sum.deliveries += one.deliveries;
        sum.duplicates += one.duplicates;
        sum.missing_webhook_id += one.missing_webhook_id;
        sum.missing_signature_headers += one.missing_signature_headers;
        sum.body_not_json += one.body_not_json;
        sum.last_new = sum.last_new.max(one.last_new);
        sum
    })
}

/// Waits until the sinks have `expected` deliveries; fails when none arrives
/// for `stall_timeout`.
pub async fn wait_for(sinks: &[Sink], expected: u64, stall_timeout: Duration) -> Result<Received> {
    let mut last_count = 0;
    let mut last_progress = Instant::now();
    loop {
        let now = received(sinks);
        if now.deliveries >= expected {
            return Ok(now);
        }
        if now.deliveries != last_count {
            last_count = now.deliveries;
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= stall_timeout {
            bail!(
                "deliveries stalled: {} of {} expected deliveries arrived ({} requests, {} duplicates), \
                 none in the last {:?}",
                now.deliveries,
                expected,
                now.requests,
                now.duplicates,
                stall_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
