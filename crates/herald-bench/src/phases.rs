//! The measurements on one backend, each against a fresh Herald: durable
//! ingest (no rules), then end-to-end webhook delivery to one sink and to many.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::{
    RunArgs,
    baseline::BaselineResult,
    herald::{Backend, Herald, HeraldBinary},
    live::{self, LivePlan, LiveResult},
    load::{ClientKind, Load, LoadSummary, Plan, Target},
    process::{self, Shutdown},
    procfs::{self, Memory, Usage},
    report::{self, BackendReport, Phase},
    sink::{self, Received, Sink},
};

/// Herald is left alone this long after `/ready` before its idle memory is read.
const IDLE_WAIT: Duration = Duration::from_secs(2);
/// After the last expected delivery, how long to keep counting late duplicates.
const DUPLICATE_GRACE: Duration = Duration::from_secs(1);

/// Everything the phases need from the command line.
pub struct Settings {
    pub clients: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub client: ClientKind,
    pub e2e_events: u64,
    pub fanout_events: u64,
    pub fanout_sinks: usize,
    pub stall_timeout: Duration,
    pub live: LivePlan,
    pub database_url: String,
    /// Logs and data dirs of the servers under test.
    pub work_dir: PathBuf,
}

impl Settings {
    pub fn from_args(args: &RunArgs, work_dir: PathBuf) -> Self {
        Self {
            clients: args.clients,
            warmup: args.warmup,
            duration: args.duration,
            client: args.client,
            e2e_events: args.e2e_events,
            fanout_events: args.fanout_events,
            fanout_sinks: args.fanout_sinks,
            stall_timeout: args.stall_timeout,
            live: LivePlan {
                connections: args.live_clients,
                events: args.live_events.unwrap_or(args.live_clients as u64),
                rate_per_s: args.live_rate,
                timeout: args.stall_timeout,
            },
            database_url: args.database_url.clone(),
            work_dir,
        }
    }
}

/// Durable ingest into Herald.
#[derive(Clone, Debug, Serialize)]
pub struct IngestResult {
    pub load: LoadSummary,
    /// Herald's events/s divided by the baseline's req/s.
    pub ratio_to_baseline: f64,
    /// `VmRSS` 2 s after `/ready`, before any request.
    pub idle_memory: Memory,
    /// Largest `VmRSS` sampled under load, `VmHWM`, CPU use.
    pub loaded: Usage,
    pub shutdown: Shutdown,
    pub log_lines: usize,
}

/// End-to-end webhook delivery.
#[derive(Clone, Debug, Serialize)]
pub struct WebhookResult {
    pub sinks: usize,
    pub events: u64,
    /// The posting of the events (a [`Plan::Count`] run).
    pub post: LoadSummary,
    /// Accepted events × sinks.
    pub expected_deliveries: u64,
    /// What the sinks had received once the last delivery arrived, plus a short grace.
    pub received: Received,
    /// From the first post to the last expected delivery.
    pub elapsed_s: f64,
    pub deliveries_per_s: f64,
    /// From the first post to the last delivery.
    pub loaded: Usage,
    pub shutdown: Shutdown,
    pub log_lines: usize,
}

/// Runs every phase on `backend`; a failed phase is reported and the next one runs.
pub async fn run_backend(
    settings: &Settings,
    binary: &HeraldBinary,
    backend: Backend,
    baseline: &BaselineResult,
) -> BackendReport {
    let mut deviations = Vec::new();
    eprintln!("Herald on {}:", backend.label());

    let ingest = ingest(settings, binary, backend, baseline, &mut deviations).await;
    eprintln!("  ingest: {}", report::phase_line(&ingest, |r| report::one_line(&r.load)));

    let mut webhooks = Vec::new();
    for (sinks, events) in [(1, settings.e2e_events), (settings.fanout_sinks, settings.fanout_events)] {
        let result = webhook(settings, binary, backend, sinks, events, &mut deviations).await;
        eprintln!(
            "  webhook, {sinks} sink{}: {}",
            if sinks == 1 { "" } else { "s" },
            report::phase_line(&result, |r| format!(
                "{:.0} deliveries/s ({} in {:.2} s)",
                r.deliveries_per_s, r.expected_deliveries, r.elapsed_s
            ))
        );
        webhooks.push(result);
    }

    let live = if settings.live.connections == 0 {
        None
    } else {
        let result = live_inbox(settings, binary, backend, &mut deviations).await;
        eprintln!(
            "  live inbox: {}",
            report::phase_line(&result, |r| format!(
                "{} WebSocket clients, {} B per idle connection, {} B anonymous (second half {} B / {} B anonymous each; {} B per connection more on a second reconnect of all); {}/{} notifications, p50 {:.1} ms, p99 {:.1} ms at {}/s",
                r.connections,
                r.bytes_per_idle_connection,
                r.anon_bytes_per_idle_connection,
                r.marginal_bytes_per_connection,
                r.anon_marginal_bytes_per_connection,
                r.leaked_bytes_per_reconnection,
                r.received,
                r.accepted,
                f64::from(r.latency.p50_us) / 1000.0,
                f64::from(r.latency.p99_us) / 1000.0,
                r.rate_per_s
            ))
        );
        Some(result)
    };

    deviations.dedup();
    BackendReport { backend, skipped: None, ingest: Some(ingest), webhooks, live, deviations }
}

async fn live_inbox(
    settings: &Settings,
    binary: &HeraldBinary,
    backend: Backend,
    deviations: &mut Vec<String>,
) -> Phase<LiveResult> {
    let mut herald = match Herald::start(binary, backend, settings, "live").await {
        Ok(herald) => herald,
        Err(error) => return Phase::failed(error.context("starting herald")),
    };
    let measured = live::run(&mut herald, settings.live).await;
    deviations.append(&mut herald.deviations);
    let shutdown = herald.stop().await;
    match (measured, shutdown) {
        (Ok(result), Ok(_)) => Phase::Done(result),
        (Err(error), _) | (_, Err(error)) => Phase::failed(error),
    }
}

async fn ingest(
    settings: &Settings,
    binary: &HeraldBinary,
    backend: Backend,
    baseline: &BaselineResult,
    deviations: &mut Vec<String>,
) -> Phase<IngestResult> {
    let mut herald = match Herald::start(binary, backend, settings, "ingest").await {
        Ok(herald) => herald,
        Err(error) => return Phase::failed(error.context("starting herald")),
    };
    let pid = herald.pid();
    let measured = async {
        tokio::time::sleep(IDLE_WAIT).await;
        let idle_memory = procfs::memory(pid).context("reading herald's /proc status")?;
        herald.check_event_answer("bench.ingest").await?;
        let sampler = procfs::Sampler::start(pid);
        let load = Load {
            target: Target { addr: herald.addr(), path: "/v1/events", bearer: Some(herald.token().to_owned()) },
            client: settings.client,
            clients: settings.clients,
            event_type: "bench.ingest",
            plan: Plan::Timed { warmup: settings.warmup, duration: settings.duration },
        }
        .run()
        .await;
        let loaded = sampler.finish().await;
        herald.ensure_running()?;
        anyhow::Ok((load?, idle_memory, loaded))
    }
    .await;
    let log = herald.log().to_owned();
    deviations.append(&mut herald.deviations);
    let shutdown = herald.stop().await;
    match (measured, shutdown) {
        (Ok((load, idle_memory, loaded)), Ok(shutdown)) => Phase::Done(IngestResult {
            ratio_to_baseline: ratio(load.per_second, baseline.load.per_second),
            load,
            idle_memory,
            loaded,
            shutdown,
            log_lines: process::log_lines(&log),
        }),
        (Err(error), _) | (_, Err(error)) => Phase::failed(error),
    }
}

async fn webhook(
    settings: &Settings,
    binary: &HeraldBinary,
    backend: Backend,
    sinks: usize,
    events: u64,
    deviations: &mut Vec<String>,
) -> Phase<WebhookResult> {
    let phase = format!("webhook-{sinks}");
    let mut herald = match Herald::start(binary, backend, settings, &phase).await {
        Ok(herald) => herald,
        Err(error) => return Phase::failed(error.context("starting herald")),
    };
    let measured = deliver(settings, &mut herald, sinks, events).await;
    let log = herald.log().to_owned();
    deviations.append(&mut herald.deviations);
    let shutdown = herald.stop().await;
    match (measured, shutdown) {
        (Ok(mut result), Ok(shutdown)) => {
            result.shutdown = shutdown;
            result.log_lines = process::log_lines(&log);
            Phase::Done(result)
        }
        (Err(error), _) | (_, Err(error)) => Phase::failed(error),
    }
}

/// Sets up sinks, integrations and one rule, posts `events` and waits for
/// every delivery.
async fn deliver(settings: &Settings, herald: &mut Herald, sink_count: usize, events: u64) -> Result<WebhookResult> {
    let mut sinks = Vec::with_capacity(sink_count);
    let mut integration_ids = Vec::with_capacity(sink_count);
    for i in 1..=sink_count {
        let sink = Sink::start().await?;
        integration_ids.push(herald.create_integration(&format!("sink-{i}"), &sink.url()).await?);
        sinks.push(sink);
    }
    herald.create_rule(&["bench.e2e.*"], &integration_ids).await?;

    let pid = herald.pid();
    let sampler = procfs::Sampler::start(pid);
    let started = Instant::now();
    let post = Load {
        target: Target { addr: herald.addr(), path: "/v1/events", bearer: Some(herald.token().to_owned()) },
        client: settings.client,
        clients: settings.clients,
        event_type: if sink_count == 1 { "bench.e2e.one" } else { "bench.e2e.fanout" },
        plan: Plan::Count { total: events },
    }
    .run()
    .await;
    let post = match post {
        Ok(post) => post,
        Err(error) => {
            sampler.finish().await;
            return Err(error);
        }
    };
    let expected_deliveries = post.ok * sink_count as u64;
    let arrived = sink::wait_for(&sinks, expected_deliveries, settings.stall_timeout).await;
    let loaded = sampler.finish().await;
    let arrived = match arrived {
        Ok(arrived) => arrived,
        Err(error) => {
            // A dead server explains a stall better than the stall does.
            herald.ensure_running().context(format!("{error:#}"))?;
            return Err(error);
        }
    };
    let elapsed = arrived.last_new.map_or(Duration::ZERO, |last| last.saturating_duration_since(started));
    tokio::time::sleep(DUPLICATE_GRACE).await;
    let received = sink::received(&sinks);
    herald.ensure_running()?;

    let elapsed_s = elapsed.as_secs_f64();
    Ok(WebhookResult {
        sinks: sink_count,
        events,
        post,
        expected_deliveries,
        received,
        elapsed_s,
        deliveries_per_s: ratio(expected_deliveries as f64, elapsed_s),
        loaded,
        shutdown: Shutdown::default(),
        log_lines: 0,
    })
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 { numerator / denominator } else { 0.0 }
}
