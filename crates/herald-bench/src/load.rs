//! The load generator: `clients` tokio tasks, each posting events in a loop
//! over its own keep-alive HTTP/1.1 connection, and the latency statistics.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use clap::ValueEnum;
use http::{
    HeaderValue, Request, StatusCode,
    header::{AUTHORIZATION, CONTENT_TYPE, HOST},
};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

/// Which HTTP client the load generator drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// hyper's bare HTTP/1.1 connection, one per client task.
    Hyper,
    /// One shared reqwest `Client` with a keep-alive pool.
    Reqwest,
}

/// Where the load goes: `POST http://{addr}{path}`.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: &'static str,
    pub bearer: Option<String>,
}

/// How long the load lasts.
#[derive(Clone, Copy)]
pub enum Plan {
    /// Run for `warmup + duration`; only the last `duration` is measured.
    Timed { warmup: Duration, duration: Duration },
    /// Post exactly `total` events, as fast as the clients go.
    Count { total: u64 },
}

/// One load run.
pub struct Load {
    pub target: Target,
    pub client: ClientKind,
    pub clients: usize,
    pub event_type: &'static str,
    pub plan: Plan,
}

/// What a load run measured.
#[derive(Clone, Debug, Serialize)]
pub struct LoadSummary {
    /// Requests answered 2xx inside the measured window.
    pub ok: u64,
    /// Non-2xx answers and transport failures inside the measured window.
    pub errors: u64,
    /// Failures during the warm-up (not part of `errors`).
    pub warmup_errors: u64,
    /// Failures by kind (`HTTP 503`, `send: connection closed`…), warm-up included.
    pub error_kinds: BTreeMap<String, u64>,
    /// The measured window, or the time to post every event for [`Plan::Count`].
    pub elapsed_s: f64,
    /// `ok / elapsed_s`.
    pub per_second: f64,
    pub latency: Latency,
}

/// Latency of the successful requests, in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    pub p50_us: u32,
    pub p90_us: u32,
    pub p99_us: u32,
    pub max_us: u32,
    pub mean_us: u32,
}

impl Latency {
    /// Nearest-rank percentiles; sorts `samples`.
    pub fn from_samples(samples: &mut [u32]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        let sum: u64 = samples.iter().map(|&us| u64::from(us)).sum();
        Self {
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            max_us: samples[samples.len() - 1],
            mean_us: (sum / samples.len() as u64) as u32,
        }
    }
}

/// The JSON event body; `n` makes each body distinct.
pub fn event_body(event_type: &str, n: u64) -> Bytes {
    Bytes::from(format!(r#"{{"type":"{event_type}","data":{{"n":{n},"host":"web-1","message":"disk almost full"}}}}"#))
}

impl Load {
    /// Runs the load to completion and merges what every client saw.
    pub async fn run(self) -> anyhow::Result<LoadSummary> {
        let shared = Arc::new(Shared {
            target: self.target.clone(),
            bearer: match &self.target.bearer {
                Some(token) => Some(HeaderValue::from_str(&format!("Bearer {token}"))?),
                None => None,
            },
            host: HeaderValue::from_str(&self.target.addr.to_string())?,
            url: format!("http://{}{}", self.target.addr, self.target.path),
            event_type: self.event_type,
            next: AtomicU64::new(0),
        });
        let reqwest_client = match self.client {
            ClientKind::Reqwest => Some(
                reqwest::Client::builder()
                    .no_proxy()
                    .http1_only()
                    .pool_max_idle_per_host(self.clients)
                    .tcp_nodelay(true)
                    .build()?,
            ),
            ClientKind::Hyper => None,
        };

        let start = Instant::now();
        let window = match self.plan {
            Plan::Timed { warmup, duration } => Some((start + warmup, start + warmup + duration)),
            Plan::Count { .. } => None,
        };
        let total = match self.plan {
            Plan::Count { total } => Some(total),
            Plan::Timed { .. } => None,
        };
        let tasks: Vec<_> = (0..self.clients)
            .map(|_| {
                let client = match &reqwest_client {
                    Some(client) => Client::Reqwest(client.clone()),
                    None => Client::Hyper(None),
                };
                tokio::spawn(client_loop(shared.clone(), client, window, total))
            })
            .collect();

        let mut latencies = Vec::new();
        let mut tally = Tally::default();
        for task in tasks {
            let client_tally = task.await?;
            latencies.extend_from_slice(&client_tally.latencies);
            tally.merge(client_tally);
        }
        let elapsed = match window {
            Some((from, to)) => to - from,
            None => tally.last_done.map_or(Duration::ZERO, |done| done - start),
        };
        let ok = latencies.len() as u64;
        let elapsed_s = elapsed.as_secs_f64();
        Ok(LoadSummary {
            ok,
            errors: tally.errors,
            warmup_errors: tally.warmup_errors,
            error_kinds: tally.error_kinds,
            elapsed_s,
            per_second: if elapsed_s > 0.0 { ok as f64 / elapsed_s } else { 0.0 },
            latency: Latency::from_samples(&mut latencies),
        })
    }
}

struct Shared {
    target: Target,
    bearer: Option<HeaderValue>,
    host: HeaderValue,
    url: String,
    event_type: &'static str,
    next: AtomicU64,
}

#[derive(Default)]
struct Tally {
    latencies: Vec<u32>,
    errors: u64,
    warmup_errors: u64,
    error_kinds: BTreeMap<String, u64>,
    last_done: Option<Instant>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.errors += other.errors;
        self.warmup_errors += other.warmup_errors;
        for (kind, count) in other.error_kinds {
            *self.error_kinds.entry(kind).or_default() += count;
        }
        self.last_done = self.last_done.max(other.last_done);
    }
}

async fn client_loop(
    shared: Arc<Shared>,
    mut client: Client,
    window: Option<(Instant, Instant)>,
    total: Option<u64>,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        if total.is_some_and(|total| n >= total) {
            break;
        }
        let started = Instant::now();
        if window.is_some_and(|(_, end)| started >= end) {
            break;
        }
        let result = client.post(&shared, event_body(shared.event_type, n)).await;
        let done = Instant::now();
        tally.last_done = Some(done);
        let in_window = window.is_none_or(|(from, end)| done >= from && done <= end);
        let failure = match result {
            Ok(status) if status.is_success() => {
                if in_window {
                    let us = (done - started).as_micros().min(u128::from(u32::MAX)) as u32;
                    tally.latencies.push(us);
                }
                continue;
            }
            Ok(status) => format!("HTTP {}", status.as_u16()),
            Err(error) => {
                // Don't spin on a refused or broken connection.
                tokio::time::sleep(Duration::from_millis(10)).await;
                error
            }
        };
        if in_window {
            tally.errors += 1;
        } else if window.is_some_and(|(from, _)| done < from) {
            tally.warmup_errors += 1;
        }
        *tally.error_kinds.entry(failure).or_default() += 1;
    }
    tally
}

enum Client {
    /// The connection is opened lazily and reopened after a failure.
    Hyper(Option<SendRequest<Full<Bytes>>>),
    Reqwest(reqwest::Client),
}

impl Client {
    /// Posts `body` and reads the whole response, so the connection can be reused.
    async fn post(&mut self, shared: &Shared, body: Bytes) -> Result<StatusCode, String> {
        match self {
            Client::Hyper(slot) => {
                let sender = match slot {
                    Some(sender) => sender,
                    None => slot.insert(connect(shared.target.addr).await?),
                };
                let result = hyper_post(sender, shared, body).await;
                if result.is_err() {
                    *slot = None;
                }
                result
            }
            Client::Reqwest(client) => {
                let mut request = client.post(&shared.url).header(CONTENT_TYPE, "application/json").body(body);
                if let Some(bearer) = &shared.bearer {
                    request = request.header(AUTHORIZATION, bearer.clone());
                }
                let response = request.send().await.map_err(|e| format!("send: {}", root_cause(&e)))?;
                let status = response.status();
                response.bytes().await.map_err(|e| format!("read body: {}", root_cause(&e)))?;
                Ok(status)
            }
        }
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {}", e.kind()))?;
    stream.set_nodelay(true).map_err(|e| format!("connect: {e}"))?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        // Ends when the server closes the connection or the sender is dropped.
        let _ = connection.await;
    });
    Ok(sender)
}

async fn hyper_post(sender: &mut SendRequest<Full<Bytes>>, shared: &Shared, body: Bytes) -> Result<StatusCode, String> {
    sender.ready().await.map_err(|e| format!("send: {}", root_cause(&e)))?;
    let mut request = Request::post(shared.target.path)
        .header(HOST, shared.host.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(bearer) = &shared.bearer {
        request = request.header(AUTHORIZATION, bearer.clone());
    }
    let request = request.body(Full::new(body)).map_err(|e| format!("request: {e}"))?;
    let response = sender.send_request(request).await.map_err(|e| format!("send: {}", root_cause(&e)))?;
    let status = response.status();
    response.into_body().collect().await.map_err(|e| format!("read body: {}", root_cause(&e)))?;
    Ok(status)
}

/// The innermost error's message: "connection reset by peer" rather than
/// "error sending request for url (…)".
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = error;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut samples: Vec<u32> = (1..=100).rev().collect();
        let latency = Latency::from_samples(&mut samples);
        assert_eq!(latency.p50_us, 51);
        assert_eq!(latency.p99_us, 99);
        assert_eq!(latency.max_us, 100);
        assert_eq!(latency.mean_us, 50);
    }

    #[test]
    fn event_body_is_the_documented_json() {
        let body: serde_json::Value =
            serde_json::from_slice(&event_body("bench.ingest", 123)).expect("the body is JSON");
        assert_eq!(
            body,
            serde_json::json!({
                "type": "bench.ingest",
                "data": {"n": 123, "host": "web-1", "message": "disk almost full"}
            })
        );
    }
}
