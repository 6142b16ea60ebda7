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
/// Opened and closed before the memory readings.
const WARM_UP_CONNECTIONS: usize = 4 * CONNECT_CONCURRENCY;
/// Settle time before the idle memory reading.
const SETTLE: Duration = Duration::from_secs(2);
/// The connections are opened in this many steps, the memory read after each.
const STEPS: usize = 10;
const STEP_SETTLE: Duration = Duration::from_millis(500);

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
    /// With every token minted and the WebSocket path warmed (256
    /// connections opened and closed) but no connection, and with every
    /// connection open and idle.
    pub memory_before: Memory,
    pub memory_connected: Memory,
    /// (connected − before) / connections: the first burst of connections.
    pub bytes_per_idle_connection: u64,
    /// The same from the anonymous memory alone (`RssAnon`): without the
    /// code pages the first connections touch once.
    pub anon_bytes_per_idle_connection: u64,
    /// With the first half of the connections open.
    pub memory_half: Memory,
    /// After each tenth of the connections was opened.
    pub memory_steps: Vec<MemoryStep>,
    /// (connected − half) / second half: what one more connection costs.
    pub marginal_bytes_per_connection: u64,
    pub anon_marginal_bytes_per_connection: u64,
    /// After closing every connection, and with all of them open again.
    pub memory_closed: Memory,
    pub memory_reopened: Memory,
    /// (reopened − closed) / connections: how much of the closed
    /// connections' memory the allocator kept and reused.
    pub bytes_per_reopened_connection: u64,
    /// With every connection closed and opened a second time.
    pub memory_reopened_again: Memory,
    /// (reopened again − reopened) / connections: the leak check. Near 0
    /// (either sign, within the allocator's noise) when a connection leaves
    /// nothing behind.
    pub leaked_bytes_per_reconnection: i64,
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
    /// Idle again after the events, every connection still open (each has
    /// had one notification; on SQLite the database's page cache grew too).
    pub memory_after_events: Memory,
    /// (after events − connected) / connections.
    pub bytes_per_connection_after_events: u64,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct MemoryStep {
    pub connections: usize,
    pub memory: Memory,
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
    // And the WebSocket path itself, at the connections' concurrency, with
    // connections opened and closed again: what a server sets up once for
    // handling any (the database pool's connections and statement caches,
    // the allocator's pages for every size a handshake allocates on every
    // thread) is not the cost of one more idle connection. The few reopened
    // later may reuse the warm-up's memory: 256 connections' worth, 2–3 %
    // of 10,000.
    let warm_up: Vec<String> = tokens.iter().take(WARM_UP_CONNECTIONS).cloned().collect();
    for task in open(warm_up).await.context("warming the WebSocket path")? {
        task.abort();
    }
    tokio::time::sleep(SETTLE).await;
    let memory_before = procfs::memory(pid).context("reading herald's memory")?;

    // In tenths, reading the memory after each: the curve separates what
    // the first connections set up once from what one more connection costs
    // (the growth over the second half).
    let mut first = Vec::with_capacity(plan.connections);
    let mut steps = Vec::with_capacity(STEPS);
    for step in 1..=STEPS {
        let (from, to) = ((step - 1) * plan.connections / STEPS, step * plan.connections / STEPS);
        first.extend(open(tokens[from..to].to_vec()).await?);
        tokio::time::sleep(STEP_SETTLE).await;
        steps.push(MemoryStep { connections: to, memory: procfs::memory(pid).context("reading herald's memory")? });
    }
    let memory_half = steps[STEPS / 2 - 1].memory;
    let half = steps[STEPS / 2 - 1].connections;
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
    tokio::time::sleep(SETTLE).await;
    let memory_after_events = procfs::memory(pid).context("reading herald's memory")?;
    herald.ensure_running()?;
    if let Some(error) = errors.lock().expect("errors lock").first() {
        bail!("a WebSocket client failed: {error}");
    }

    // After the timed part: close every connection and open them all again,
    // twice (a reconnect storm must not leak: the second round must not
    // need more memory than the first).
    for task in &first {
        task.abort();
    }
    tokio::time::sleep(SETTLE).await;
    let memory_closed = procfs::memory(pid).context("reading herald's memory")?;
    let second = open(tokens.clone()).await?;
    tokio::time::sleep(SETTLE).await;
    let memory_reopened = procfs::memory(pid).context("reading herald's memory")?;
    for task in &second {
        task.abort();
    }
    tokio::time::sleep(SETTLE).await;
    let _third = open(tokens).await?;
    tokio::time::sleep(SETTLE).await;
    let memory_reopened_again = procfs::memory(pid).context("reading herald's memory")?;
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
    let per = |from: u64, to: u64, connections: usize| to.saturating_sub(from) * 1024 / connections.max(1) as u64;
    Ok(LiveResult {
        connections: plan.connections,
        connect_s,
        memory_before,
        memory_connected,
        bytes_per_idle_connection: per(memory_before.rss_kib, memory_connected.rss_kib, plan.connections),
        anon_bytes_per_idle_connection: per(memory_before.anon_kib, memory_connected.anon_kib, plan.connections),
        memory_half,
        memory_steps: steps,
        marginal_bytes_per_connection: per(memory_half.rss_kib, memory_connected.rss_kib, plan.connections - half),
        anon_marginal_bytes_per_connection: per(
            memory_half.anon_kib,
            memory_connected.anon_kib,
            plan.connections - half,
        ),
        memory_closed,
        memory_reopened,
        bytes_per_reopened_connection: per(memory_closed.rss_kib, memory_reopened.rss_kib, plan.connections),
        memory_reopened_again,
        leaked_bytes_per_reconnection: (memory_reopened_again.rss_kib as i64 - memory_reopened.rss_kib as i64) * 1024
            / plan.connections.max(1) as i64,
        events: plan.events,
        rate_per_s: plan.rate_per_s,
        accepted,
        received,
        latency: Latency::from_samples(&mut whole),
        after_answer: Latency::from_samples(&mut after),
        before_answer,
        loaded,
        memory_after_events,
        bytes_per_connection_after_events: per(memory_connected.rss_kib, memory_after_events.rss_kib, plan.connections),
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
