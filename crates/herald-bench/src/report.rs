//! The results: the machine, a Markdown table per backend (for the README)
//! and the same figures as JSON.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::{
    baseline::BaselineResult,
    herald::Backend,
    live::LiveResult,
    load::{ClientKind, Latency, LoadSummary},
    phases::{IngestResult, WebhookResult},
    procfs::{Memory, Usage},
};

/// Everything one run measured.
#[derive(Serialize)]
pub struct Results {
    /// UTC, `2026-01-31T12:00:00Z`.
    pub measured_at: String,
    /// `git describe` of the workspace, `-dirty` with uncommitted changes.
    pub commit: String,
    pub machine: Machine,
    pub config: RunConfig,
    pub baseline: BaselineResult,
    pub backends: Vec<BackendReport>,
}

/// The machine the figures come from.
#[derive(Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_mib: u64,
    pub kernel: String,
    /// CPU busy (percent of one core) in the second before the run: other work skews the figures.
    pub background_cpu_pct: f64,
}

/// The load parameters.
#[derive(Serialize)]
pub struct RunConfig {
    pub clients: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub e2e_events: u64,
    pub fanout_events: u64,
    pub fanout_sinks: usize,
    pub client: ClientKind,
}

/// The phases on one backend.
#[derive(Serialize)]
pub struct BackendReport {
    pub backend: Backend,
    pub skipped: Option<String>,
    pub ingest: Option<Phase<IngestResult>>,
    pub webhooks: Vec<Phase<WebhookResult>>,
    pub live: Option<Phase<LiveResult>>,
    /// Answers that differed from Herald's API contract, as seen.
    pub deviations: Vec<String>,
}

/// A phase's figures, or why there are none.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Phase<T> {
    Done(T),
    Failed { error: String },
}

impl<T> Phase<T> {
    pub fn failed(error: anyhow::Error) -> Self {
        Self::Failed { error: format!("{error:#}") }
    }
}

impl BackendReport {
    pub fn skipped(backend: Backend, reason: String) -> Self {
        Self { backend, skipped: Some(reason), ingest: None, webhooks: Vec::new(), live: None, deviations: Vec::new() }
    }
}

impl Machine {
    pub fn detect(background_cpu_pct: f64) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: cpuinfo
                .lines()
                .find_map(|line| line.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map_or_else(|| "unknown CPU".to_owned(), |(_, model)| model.trim().to_owned()),
            mem_total_mib: meminfo
                .lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kib| kib / 1024),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |release| release.trim().to_owned()),
            background_cpu_pct,
        }
    }
}

impl Results {
    /// A failed phase, or a request that failed where none should.
    pub fn any_failure(&self) -> bool {
        let load_failed = |load: &LoadSummary| load.errors + load.warmup_errors > 0;
        load_failed(&self.baseline.load)
            || self.backends.iter().any(|backend| {
                matches!(backend.ingest, Some(Phase::Failed { .. }))
                    || matches!(&backend.ingest, Some(Phase::Done(r)) if load_failed(&r.load))
                    || backend.webhooks.iter().any(|phase| match phase {
                        Phase::Failed { .. } => true,
                        Phase::Done(r) => load_failed(&r.post),
                    })
                    || matches!(backend.live, Some(Phase::Failed { .. }))
                    || matches!(&backend.live, Some(Phase::Done(r)) if r.received < r.accepted || r.accepted < r.events)
            })
    }
}

/// The live-inbox figures: connections, memory per idle connection, and
/// event-to-browser latency.
fn live_section(r: &LiveResult) -> String {
    let ms = |us: u32| f64::from(us) / 1000.0;
    format!(
        "Live inbox: {} idle WebSocket clients (one recipient each) opened in {:.1} s; Herald's RSS went from \
         {:.1} MiB to {:.1} MiB, **{} bytes per idle connection** on average; the second half of them cost **{} bytes each**. Then {} events at {}/s, each to the next \
         client: {} of {} notifications received; from posting the event to the message (its durable commit \
         included): p50 {:.1} ms, p90 {:.1} ms, **p99 {:.1} ms**, max {:.1} ms. From the `202` to the message: \
         p50 {:.1} ms, p99 {:.1} ms ({} messages arrived before their `202` was read). Idle again with every client \
         still connected: {} bytes more per connection than before the events. Afterwards all closed \
         ({:.1} MiB) and opened again ({:.1} MiB), twice ({:.1} MiB): {} bytes per connection between the two \
         rounds (the leak check: near 0 when a connection leaves nothing behind).\n\n",
        thousands(r.connections as u64),
        r.connect_s,
        r.memory_before.rss_kib as f64 / 1024.0,
        r.memory_connected.rss_kib as f64 / 1024.0,
        thousands(r.bytes_per_idle_connection),
        thousands(r.marginal_bytes_per_connection),
        thousands(r.events),
        thousands(r.rate_per_s),
        thousands(r.received),
        thousands(r.accepted),
        ms(r.latency.p50_us),
        ms(r.latency.p90_us),
        ms(r.latency.p99_us),
        ms(r.latency.max_us),
        ms(r.after_answer.p50_us),
        ms(r.after_answer.p99_us),
        r.before_answer,
        thousands(r.bytes_per_connection_after_events),
        r.memory_closed.rss_kib as f64 / 1024.0,
        r.memory_reopened.rss_kib as f64 / 1024.0,
        r.memory_reopened_again.rss_kib as f64 / 1024.0,
        r.leaked_bytes_per_reconnection,
    )
}

/// `52,311 req/s, p50 1.12 ms, p99 2.90 ms, 0 errors`.
pub fn one_line(load: &LoadSummary) -> String {
    format!(
        "{}/s, p50 {}, p99 {}, {} errors",
        thousands(load.per_second.round() as u64),
        ms(load.latency.p50_us),
        ms(load.latency.p99_us),
        load.errors + load.warmup_errors
    )
}

pub fn phase_line<T>(phase: &Phase<T>, done: impl Fn(&T) -> String) -> String {
    match phase {
        Phase::Done(result) => done(result),
        Phase::Failed { error } => format!("FAILED: {error}"),
    }
}

/// The report for the README: a section per backend, the baseline in each.
pub fn markdown(results: &Results) -> String {
    let mut out = String::new();
    let machine = &results.machine;
    let config = &results.config;
    let setup = format!(
        "Measured {} at commit {}. Machine: {} × {} (nproc {}, {} GiB RAM, Linux {}). Load: {} concurrent clients \
         (keep-alive HTTP/1.1, {} client) on the same machine, {} s warm-up + {} s measured. \
         Webhook runs post {} events to 1 sink and {} events to {} sinks. \
         Before the run, other work kept the machine {:.0} % busy (of one core).",
        results.measured_at,
        results.commit,
        machine.nproc,
        machine.cpu_model,
        machine.nproc,
        machine.mem_total_mib.div_ceil(1024),
        machine.kernel,
        config.clients,
        match config.client {
            ClientKind::Hyper => "hyper",
            ClientKind::Reqwest => "reqwest",
        },
        config.warmup_s,
        config.duration_s,
        thousands(config.e2e_events),
        thousands(config.fanout_events),
        config.fanout_sinks,
        machine.background_cpu_pct,
    );
    let baseline = &results.baseline;
    let baseline_row = load_row("Baseline: axum + serde_json, no storage", &baseline.load, "req/s", String::new());
    if results.backends.is_empty() {
        let _ = writeln!(out, "## Baseline\n\n{setup}\n");
        out.push_str(TABLE_HEAD);
        out.push_str(&baseline_row);
        out.push('\n');
        out.push_str(RESOURCES_HEAD);
        out.push_str(&baseline_resources(baseline));
        out.push_str(RESOURCES_FOOT);
    }
    for backend in &results.backends {
        let _ = writeln!(out, "## Herald on {}\n", backend.backend.label());
        if let Some(reason) = &backend.skipped {
            let _ = writeln!(out, "Skipped: {reason}\n");
            continue;
        }
        let _ = writeln!(out, "{setup}\n");
        let mut notes = Vec::new();
        out.push_str(&warnings(backend));
        out.push_str(TABLE_HEAD);
        out.push_str(&baseline_row);
        let mut resources = String::new();
        match &backend.ingest {
            Some(Phase::Done(r)) => {
                let note = format!("{:.1} % of baseline", r.ratio_to_baseline * 100.0);
                out.push_str(&load_row("Durable ingest, `POST /v1/events`", &r.load, "events/s", note));
                resources.push_str(&idle_row(r.idle_memory));
                resources.push_str(&usage_row("Herald, durable ingest", &r.loaded));
            }
            Some(Phase::Failed { error }) => {
                out.push_str(&failed_row("Durable ingest, `POST /v1/events`"));
                notes.push(format!("Durable ingest failed: {error}"));
            }
            None => {}
        }
        for (i, phase) in backend.webhooks.iter().enumerate() {
            // The phases run in this order: one sink, then the fan-out.
            let sinks = if i == 0 { 1 } else { config.fanout_sinks };
            let label = format!("Webhook end to end, {sinks} sink{}", plural(sinks));
            match phase {
                Phase::Done(r) => {
                    out.push_str(&webhook_row(&label, r));
                    let label = format!("Herald, webhook to {sinks} sink{}", plural(sinks));
                    resources.push_str(&usage_row(&label, &r.loaded));
                }
                Phase::Failed { error } => {
                    out.push_str(&failed_row(&label));
                    notes.push(format!("{label} failed: {error}"));
                }
            }
        }
        let _ = writeln!(
            out,
            "\nWebhook rows: deliveries/s = expected deliveries ÷ time from the first post \
             to the last delivery; p50/p99 are the latencies of those posts.\n"
        );
        match &backend.live {
            Some(Phase::Done(r)) => {
                out.push_str(&live_section(r));
                resources.push_str(&usage_row("Herald, live inbox under load", &r.loaded));
            }
            Some(Phase::Failed { error }) => notes.push(format!("Live inbox failed: {error}")),
            None => {}
        }
        out.push_str(RESOURCES_HEAD);
        out.push_str(&resources);
        out.push_str(&baseline_resources(baseline));
        out.push_str(RESOURCES_FOOT);
        notes.extend(process_notes(backend));
        notes.extend(noise_notes(backend, baseline));
        for note in &notes {
            let _ = writeln!(out, "- {note}");
        }
        if !notes.is_empty() {
            out.push('\n');
        }
        if !backend.deviations.is_empty() {
            let _ = writeln!(out, "Herald answered differently from the API contract:\n");
            for deviation in &backend.deviations {
                let _ = writeln!(out, "- {deviation}");
            }
            out.push('\n');
        }
    }
    out
}

const RESOURCES_HEAD: &str = "| Server process | VmRSS | VmHWM | Server CPU | Bench CPU | Rest of machine | Steal |\n\
                              |---|--:|--:|--:|--:|--:|--:|\n";

const RESOURCES_FOOT: &str = "\nVmRSS under load is the largest of samples taken every 200 ms \
     during the phase; VmHWM is the kernel's peak. CPU is the phase's average in percent of one \
     core (the machine has nproc × 100 %); the bench runs the load generator and the sinks; the \
     rest of the machine includes PostgreSQL when it is the backend; steal is time the \
     hypervisor ran someone else on our virtual CPUs (non-zero means the figures are low).\n\n";

fn idle_row(memory: Memory) -> String {
    format!("| Herald, idle (2 s after ready) | {} | {} | | | | |\n", mib(memory.rss_kib), mib(memory.hwm_kib))
}

fn usage_row(label: &str, usage: &Usage) -> String {
    format!(
        "| {label} | {} | {} | {:.0} % | {:.0} % | {:.0} % | {:.0} % |\n",
        mib(usage.memory.rss_kib),
        mib(usage.memory.hwm_kib),
        usage.cpu.server_pct,
        usage.cpu.bench_pct,
        usage.cpu.other_pct,
        usage.cpu.steal_pct
    )
}

fn baseline_resources(baseline: &BaselineResult) -> String {
    format!(
        "| Baseline server, idle | {} | {} | | | | |\n{}",
        mib(baseline.idle_memory.rss_kib),
        mib(baseline.idle_memory.hwm_kib),
        usage_row("Baseline server, under load", &baseline.loaded)
    )
}

/// Phases during which something else was busy on the machine. With
/// PostgreSQL, "else" includes the database itself, so only SQLite runs and
/// the baseline are judged.
fn noise_notes(backend: &BackendReport, baseline: &BaselineResult) -> Vec<String> {
    let mut phases = vec![("the baseline".to_owned(), baseline.loaded.cpu)];
    if backend.backend == Backend::Sqlite {
        if let Some(Phase::Done(r)) = &backend.ingest {
            phases.push(("durable ingest".to_owned(), r.loaded.cpu));
        }
        for r in backend.webhooks.iter().filter_map(|phase| match phase {
            Phase::Done(r) => Some(r),
            Phase::Failed { .. } => None,
        }) {
            phases.push((format!("webhook to {} sink{}", r.sinks, plural(r.sinks)), r.loaded.cpu));
        }
    }
    phases
        .into_iter()
        .filter(|(_, cpu)| cpu.other_pct + cpu.steal_pct > NOISE_PCT)
        .map(|(phase, cpu)| {
            format!(
                "**⚠ During {phase}, other work took {:.0} % of a core (steal {:.0} %): its figures are low.**",
                cpu.other_pct, cpu.steal_pct
            )
        })
        .collect()
}

/// Above this much foreign CPU use (percent of one core) a phase is flagged.
const NOISE_PCT: f64 = 20.0;

/// Unclean shutdowns and log output: worth a look, not a failure.
fn process_notes(backend: &BackendReport) -> Vec<String> {
    let mut notes = Vec::new();
    let mut check = |phase: &str, shutdown: &crate::process::Shutdown, log_lines: usize| {
        if !shutdown.clean {
            notes.push(format!("{phase}: after SIGTERM herald {} ({} ms)", shutdown.status, shutdown.ms));
        }
        if log_lines > 0 {
            notes.push(format!(
                "{phase}: herald logged {log_lines} line{} at HERALD_LOG=warn (target/herald-bench/logs/)",
                plural(log_lines)
            ));
        }
    };
    if let Some(Phase::Done(r)) = &backend.ingest {
        check("Durable ingest", &r.shutdown, r.log_lines);
    }
    for phase in &backend.webhooks {
        if let Phase::Done(r) = phase {
            check(&format!("Webhook, {} sink{}", r.sinks, plural(r.sinks)), &r.shutdown, r.log_lines);
        }
    }
    notes
}

const TABLE_HEAD: &str = "| Measurement | Throughput | p50 | p99 | Errors | Notes |\n\
                          |---|--:|--:|--:|--:|---|\n";

fn load_row(label: &str, load: &LoadSummary, unit: &str, note: String) -> String {
    format!(
        "| {label} | {} {unit} | {} | {} | {} | {note} |\n",
        thousands(load.per_second.round() as u64),
        ms(load.latency.p50_us),
        ms(load.latency.p99_us),
        load.errors + load.warmup_errors,
    )
}

fn webhook_row(label: &str, r: &WebhookResult) -> String {
    let Latency { p50_us, p99_us, .. } = r.post.latency;
    let mut note = format!(
        "{} events → {} deliveries in {:.2} s (posting took {:.2} s); {} duplicate{}",
        thousands(r.post.ok),
        thousands(r.expected_deliveries),
        r.elapsed_s,
        r.post.elapsed_s,
        thousands(r.received.duplicates),
        plural(r.received.duplicates as usize),
    );
    if r.received.deliveries > r.expected_deliveries {
        let _ = write!(note, "; {} more deliveries than expected", r.received.deliveries - r.expected_deliveries);
    }
    let issues = [
        (r.received.missing_webhook_id, "without webhook-id"),
        (r.received.missing_signature_headers, "without webhook-timestamp/signature"),
        (r.received.body_not_json, "with a non-JSON body"),
    ];
    for (count, what) in issues {
        if count > 0 {
            let _ = write!(note, "; {count} {what}");
        }
    }
    format!(
        "| {label} | {} deliveries/s | {} | {} | {} | {note} |\n",
        thousands(r.deliveries_per_s.round() as u64),
        ms(p50_us),
        ms(p99_us),
        r.post.errors,
    )
}

fn failed_row(label: &str) -> String {
    format!("| {label} | **failed** (see below) | | | | |\n")
}

/// Failed requests where there should be none, above the table where nobody misses them.
fn warnings(backend: &BackendReport) -> String {
    let mut out = String::new();
    if let Some(Phase::Done(r)) = &backend.ingest {
        out.push_str(&load_warning("durable ingest", &r.load));
    }
    for phase in &backend.webhooks {
        if let Phase::Done(r) = phase {
            out.push_str(&load_warning(&format!("posting events for {} sink{}", r.sinks, plural(r.sinks)), &r.post));
        }
    }
    out
}

fn load_warning(what: &str, load: &LoadSummary) -> String {
    let failed = load.errors + load.warmup_errors;
    if failed == 0 {
        return String::new();
    }
    let kinds: Vec<String> = load.error_kinds.iter().map(|(kind, count)| format!("{kind} × {count}")).collect();
    format!(
        "> **⚠ {what}: {failed} request{} failed** ({} during warm-up): {}\n\n",
        plural(failed as usize),
        load.warmup_errors,
        kinds.join(", ")
    )
}

pub fn write_json(results: &Results, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_string_pretty(results)?;
    std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `52311` → `52,311`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn ms(us: u32) -> String {
    let ms = f64::from(us) / 1000.0;
    if ms < 10.0 { format!("{ms:.2} ms") } else { format!("{ms:.1} ms") }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(52_311), "52,311");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn latencies_print_in_milliseconds() {
        assert_eq!(ms(850), "0.85 ms");
        assert_eq!(ms(12_345), "12.3 ms");
    }
}
