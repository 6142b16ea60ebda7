//! The live inbox under load: many idle WebSocket clients (one recipient
//! each), then events aimed at each in turn at a fixed rate. Measures the
//! time from posting an event to its `notification` reaching the client
//! (the durable commit included; the item is pushed once it is on disk),
//! and Herald's resident memory per idle connection.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use futures::{SinkExt as _, StreamExt as _, stream};
use serde::Serialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    herald::Herald,
    load::Latency,
    procfs::{self, Memory, Usage},
};

/// How many connections are opened (and tokens minted) at once.
const CONNECT_CONCURRENCY: usize = 64;
/// Settle time before the idle memory reading.
const SETTLE: Duration = Duration::from_secs(2);

/// What the live phase is asked to do.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LivePlan {
    pub connections: usize,
    pub events: u64,
    pub rate_per_s: u64,
    pub timeout: Duration,
}

#[derive(Clone, Debug, Serialize)]
pub struct LiveResult {
    pub connections: usize,
    /// Time to mint every token and open every connection.
    pub connect_s: f64,
    /// With every token minted and the inbox path warmed (`GET /v1/inbox`
    /// at the same concurrency) but no connection, and with every
    /// connection open and idle.
    pub memory_before: Memory,
    pub memory_connected: Memory,
    /// (connected − before) / connections: the first burst of connections.
    pub bytes_per_idle_connection: u64,
    /// With the first half of the connections open.
    pub memory_half: Memory,
    /// (connected − half) / second half: what one more connection costs.
    pub marginal_bytes_per_connection: u64,
    /// After closing every connection, and with all of them open again.
    pub memory_closed: Memory,
    pub memory_reopened: Memory,
    /// (reopened − closed) / connections. Not a cost (the allocator keeps
    /// and reuses the closed connections' pages) but a churn check: near 0
    /// means 10,000 reconnections leaked nothing.
    pub bytes_per_reopened_connection: u64,
    pub events: u64,
    pub rate_per_s: u64,
    /// Events the server accepted.
    pub accepted: u64,
    /// Notifications that reached their client.
    pub received: u64,
    /// From posting the event to its `notification` message: the whole
    /// way, ingest commit included (the figure the target is about).
    pub latency: Latency,
    /// From the `202` to the message: what is left after the client has
    /// its answer (0 when the message came first).
    pub after_answer: Latency,
    /// Notifications that arrived before their `202` was read.
    pub before_answer: u64,
    pub loaded: Usage,
}

/// Per event: when it was posted, when its `202` arrived, and when its
/// notification did.
struct Clock {
    start: Instant,
    posted_us: Vec<AtomicU64>,
    accepted_us: Vec<AtomicU64>,
    received_us: Vec<AtomicU64>,
}

impl Clock {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64 + 1
    }
}

pub async fn run(herald: &mut Herald, plan: LivePlan) -> Result<LiveResult> {
    let pid = herald.pid();
    let clock = Arc::new(Clock {
        start: Instant::now(),
        posted_us: (0..plan.events).map(|_| AtomicU64::new(0)).collect(),
        accepted_us: (0..plan.events).map(|_| AtomicU64::new(0)).collect(),
        received_us: (0..plan.events).map(|_| AtomicU64::new(0)).collect(),
    });
    let connect_started = Instant::now();
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?;
    let base = format!("http://{}", herald.addr());
    let token = herald.token().to_owned();

    // Tokens first: the memory the server spends warming up its HTTP stack
    // and database pools is not the connections' cost.
    let tokens: Vec<Result<String>> = stream::iter(0..plan.connections)
        .map(|i| {
            let (http, base, token) = (http.clone(), base.clone(), token.clone());
            async move { mint(&http, &base, &token, i).await }
        })
        .buffered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let tokens: Vec<String> = tokens.into_iter().collect::<Result<_>>().context("minting recipient tokens")?;
    // And the inbox's own path once at the connections' concurrency: a
    // WebSocket's first message is the unread count, a database read, and
    // the pool behind it (connections, their threads and statement caches)
    // is set up once per server, not per connection.
    let warmed: Vec<Result<()>> = stream::iter(tokens.iter().take(4 * CONNECT_CONCURRENCY).cloned())
        .map(|recipient_token| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let answer = http.get(format!("{base}/v1/inbox")).bearer_auth(recipient_token).send().await?;
                anyhow::ensure!(answer.status().is_success(), "GET /v1/inbox answered {}", answer.status());
                Ok(())
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    warmed.into_iter().collect::<Result<Vec<()>>>().context("warming the inbox path")?;
    tokio::time::sleep(SETTLE).await;
    let memory_before = procfs::memory(pid).context("reading herald's memory")?;

    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let open = |tokens: Vec<String>| {
        let (base, clock, errors) = (base.clone(), clock.clone(), errors.clone());
        async move {
            let opened: Vec<Result<tokio::task::JoinHandle<()>>> = stream::iter(tokens.into_iter().enumerate())
                .map(|(i, recipient_token)| {
                    let (base, clock, errors) = (base.clone(), clock.clone(), errors.clone());
                    async move { connect(&base, &recipient_token, i, clock, errors).await }
                })
                .buffer_unordered(CONNECT_CONCURRENCY)
                .collect()
                .await;
            opened.into_iter().collect::<Result<Vec<_>>>().context("opening the WebSocket clients")
        }
    };
    // In two halves: the second half's growth is the cost of one more
    // connection, apart from what the first connections set up once.
    let half = plan.connections / 2;
    let mut first = open(tokens[..half].to_vec()).await?;
    tokio::time::sleep(SETTLE).await;
    let memory_half = procfs::memory(pid).context("reading herald's memory")?;
    first.extend(open(tokens[half..].to_vec()).await?);
    let connect_s = connect_started.elapsed().as_secs_f64();
    tokio::time::sleep(SETTLE).await;
    let memory_connected = procfs::memory(pid).context("reading herald's memory")?;

    let sampler = procfs::Sampler::start(pid);
    let accepted = post_events(&http, &base, &token, plan, clock.clone()).await?;
    let deadline = Instant::now() + plan.timeout;
    let received = loop {
        let received = clock.received_us.iter().filter(|r| r.load(Ordering::Relaxed) > 0).count() as u64;
        if received >= accepted || Instant::now() > deadline {
            break received;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let loaded = sampler.finish().await;
    herald.ensure_running()?;
    if let Some(error) = errors.lock().expect("errors lock").first() {
        bail!("a WebSocket client failed: {error}");
    }

    // After the timed part: close every connection, open them all again, and
    // read the memory once more (a reconnect storm must not leak).
    for task in &first {
        task.abort();
    }
    tokio::time::sleep(SETTLE).await;
    let memory_closed = procfs::memory(pid).context("reading herald's memory")?;
    let _second = open(tokens).await?;
    tokio::time::sleep(SETTLE).await;
    let memory_reopened = procfs::memory(pid).context("reading herald's memory")?;
    herald.ensure_running()?;

    let mut whole = Vec::with_capacity(received as usize);
    let mut after = Vec::with_capacity(received as usize);
    let mut before_answer = 0;
    let us = |d: u64| d.min(u64::from(u32::MAX)) as u32;
    for seq in 0..plan.events as usize {
        let posted = clock.posted_us[seq].load(Ordering::Relaxed);
        let accepted = clock.accepted_us[seq].load(Ordering::Relaxed);
        let got = clock.received_us[seq].load(Ordering::Relaxed);
        if accepted == 0 || got == 0 {
            continue;
        }
        if got < accepted {
            before_answer += 1;
        }
        whole.push(us(got.saturating_sub(posted)));
        after.push(us(got.saturating_sub(accepted)));
    }
    let growth_kib = memory_connected.rss_kib.saturating_sub(memory_before.rss_kib);
    Ok(LiveResult {
        connections: plan.connections,
        connect_s,
        memory_before,
        memory_connected,
        bytes_per_idle_connection: growth_kib * 1024 / plan.connections.max(1) as u64,
        memory_half,
        marginal_bytes_per_connection: memory_connected.rss_kib.saturating_sub(memory_half.rss_kib) * 1024
            / (plan.connections - half).max(1) as u64,
        memory_closed,
        memory_reopened,
        bytes_per_reopened_connection: memory_reopened.rss_kib.saturating_sub(memory_closed.rss_kib) * 1024
            / plan.connections.max(1) as u64,
        events: plan.events,
        rate_per_s: plan.rate_per_s,
        accepted,
        received,
        latency: Latency::from_samples(&mut whole),
        after_answer: Latency::from_samples(&mut after),
        before_answer,
        loaded,
    })
}

/// Mints recipient `r{i}`'s token.
async fn mint(http: &reqwest::Client, base: &str, admin: &str, i: usize) -> Result<String> {
    let answer = http
        .post(format!("{base}/v1/recipients/r{i}/tokens"))
        .bearer_auth(admin)
        .json(&json!({}))
        .send()
        .await
        .context("minting a recipient token")?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or_default();
    match body["token"].as_str() {
        Some(token) => Ok(token.to_owned()),
        None => bail!("POST /v1/recipients/r{i}/tokens answered {status}: {body}"),
    }
}

/// Opens recipient `i`'s WebSocket, waits for the first `unread_count`, and
/// leaves a task reading its notifications.
async fn connect(
    base: &str,
    token: &str,
    i: usize,
    clock: Arc<Clock>,
    errors: Arc<Mutex<Vec<String>>>,
) -> Result<tokio::task::JoinHandle<()>> {
    let url = format!("{}/v1/inbox/ws?token={token}", base.replacen("http://", "ws://", 1));
    let (mut socket, _) =
        tokio_tungstenite::connect_async(&url).await.with_context(|| format!("connecting client {i}"))?;
    match socket.next().await {
        Some(Ok(Message::Text(text))) if text.contains("unread_count") => {}
        other => bail!("client {i}: the first message was not the unread count: {other:?}"),
    }
    Ok(tokio::spawn(async move {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Text(text)) => {
                    let Ok(value) = serde_json::from_str::<Value>(&text) else { continue };
                    if value["type"] != "notification" {
                        continue;
                    }
                    if let Some(seq) = value["data"]["data"]["seq"].as_u64()
                        && let Some(slot) = clock.received_us.get(seq as usize)
                    {
                        // The first arrival counts; a duplicate does not move it.
                        let _ = slot.compare_exchange(0, clock.now_us(), Ordering::Relaxed, Ordering::Relaxed);
                    }
                }
                Ok(Message::Ping(payload)) => {
                    let _ = socket.send(Message::Pong(payload)).await;
                }
                Ok(Message::Close(_)) => break,
                Ok(_) => {}
                Err(error) => {
                    errors.lock().expect("errors lock").push(format!("client {i}: {error}"));
                    break;
                }
            }
        }
    }))
}

/// Posts `plan.events` events at `plan.rate_per_s`, event `k` to recipient
/// `k mod connections`; returns how many were accepted.
async fn post_events(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    plan: LivePlan,
    clock: Arc<Clock>,
) -> Result<u64> {
    let interval = Duration::from_secs_f64(1.0 / plan.rate_per_s.max(1) as f64);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(plan.events as usize);
    for seq in 0..plan.events {
        // Paced from the start, so a slow answer does not slow the rate.
        let due = started + interval.mul_f64(seq as f64);
        tokio::time::sleep_until(due.into()).await;
        let (http, url, admin, clock) = (http.clone(), format!("{base}/v1/events"), admin.to_owned(), clock.clone());
        let recipient = format!("r{}", seq as usize % plan.connections.max(1));
        tasks.push(tokio::spawn(async move {
            let body = json!({"type": "bench.live", "recipients": [recipient], "data": {"seq": seq, "title": "Live"}});
            clock.posted_us[seq as usize].store(clock.now_us(), Ordering::Relaxed);
            let answer = http.post(url).bearer_auth(admin).json(&body).send().await;
            match answer {
                Ok(a) if a.status().as_u16() == 202 => {
                    clock.accepted_us[seq as usize].store(clock.now_us(), Ordering::Relaxed);
                    true
                }
                _ => false,
            }
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        if task.await.unwrap_or(false) {
            accepted += 1;
        }
    }
    Ok(accepted)
}
