//! `herald-bench`: measures Herald's durable ingest, end-to-end webhook
//! delivery and memory against a minimal axum baseline, on this machine.
//!
//! Run it with `cargo run --release -p herald-bench -- --help`.

mod baseline;
mod herald;
mod live;
mod load;
mod phases;
mod postgres;
mod process;
mod procfs;
mod report;
mod sink;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    herald::{Backend, HeraldBinary},
    load::ClientKind,
    report::{BackendReport, Machine, Results, RunConfig},
};

#[derive(Parser)]
#[command(
    name = "herald-bench",
    about = "Benchmark Herald's ingest, webhook delivery and memory against an axum baseline"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// The baseline server, started by the bench as a separate process.
    #[command(hide = true)]
    BaselineServer {
        #[arg(long)]
        listen: SocketAddr,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Which storage backends to run Herald on.
    #[arg(long, value_enum, default_value_t = BackendChoice::Both)]
    backend: BackendChoice,
    /// Length of each timed load window (after the warm-up), e.g. `10s`, `500ms`, `1m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Warm-up before each timed load window.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Concurrent clients, each on its own keep-alive HTTP/1.1 connection.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Events posted in the one-sink end-to-end case.
    #[arg(long, default_value_t = 20_000)]
    e2e_events: u64,
    /// Events posted in the fan-out end-to-end case.
    #[arg(long, default_value_t = 5_000)]
    fanout_events: u64,
    /// Sinks (integrations) in the fan-out case; one rule lists them all.
    #[arg(long, default_value_t = 10)]
    fanout_sinks: usize,
    /// Idle WebSocket clients of the live-inbox phase (one recipient each); 0 skips the phase.
    #[arg(long, default_value_t = 10_000)]
    live_clients: usize,
    /// Events per second in the live-inbox phase, each to the next client in turn.
    #[arg(long, default_value_t = 1_000)]
    live_rate: u64,
    /// Events in the live-inbox phase (default: one per client).
    #[arg(long)]
    live_events: Option<u64>,
    /// Fail an end-to-end case when no delivery arrives for this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    stall_timeout: Duration,
    /// HTTP client of the load generator.
    #[arg(long, value_enum, default_value_t = ClientKind::Hyper)]
    client: ClientKind,
    /// Measure the baseline only (no Herald needed).
    #[arg(long)]
    only_baseline: bool,
    /// Use this herald binary instead of building `target/release/herald`.
    #[arg(long)]
    herald_bin: Option<PathBuf>,
    /// Do not run `cargo build --release -p herald` first.
    #[arg(long)]
    no_build: bool,
    /// PostgreSQL server on which a fresh database is created for each phase.
    #[arg(long, env = "HERALD_BENCH_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    database_url: String,
    /// Where to write the results as JSON (default: `target/bench-results.json`).
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

impl BackendChoice {
    fn backends(self) -> Vec<Backend> {
        match self {
            Self::Sqlite => vec![Backend::Sqlite],
            Self::Postgres => vec![Backend::Postgres],
            Self::Both => vec![Backend::Sqlite, Backend::Postgres],
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // reqwest is built without a default crypto provider; building a client panics without one.
    if rustls::crypto::ring::default_provider().install_default().is_err() {
        eprintln!("error: a rustls crypto provider was already installed");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::BaselineServer { listen }) => baseline::serve(listen).await.map(|()| ExitCode::SUCCESS),
        None => run(cli.run).await,
    };
    // The chain of causes, without the backtrace RUST_BACKTRACE would add.
    outcome.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::FAILURE
    })
}

async fn run(args: RunArgs) -> Result<ExitCode> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: herald-bench is a debug build; the load generator will be the bottleneck. \
             Use `cargo run --release -p herald-bench`."
        );
    }
    let target_dir = target_dir()?;
    let herald = if args.only_baseline {
        None
    } else {
        // Build before measuring anything, so a compile error fails fast.
        Some(HeraldBinary::locate(args.herald_bin.clone(), &target_dir, !args.no_build)?)
    };

    // Taken now: the tree may change while the bench runs.
    let commit = output_of("git", &["describe", "--always", "--dirty"]);
    let measured_at = output_of("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]);
    // Measured after the build, right before the load.
    let machine = Machine::detect(procfs::background_cpu(Duration::from_secs(1)).await);
    let config = RunConfig {
        clients: args.clients,
        warmup_s: args.warmup.as_secs_f64(),
        duration_s: args.duration.as_secs_f64(),
        e2e_events: args.e2e_events,
        fanout_events: args.fanout_events,
        fanout_sinks: args.fanout_sinks,
        client: args.client,
    };
    eprintln!(
        "machine: {} × {} ({} MiB RAM); busy before the run: {:.0} % of one core",
        machine.nproc, machine.cpu_model, machine.mem_total_mib, machine.background_cpu_pct
    );
    if machine.background_cpu_pct > 10.0 {
        eprintln!(
            "warning: something else is using the CPU ({:.0} % of one core); the figures will be low and noisy",
            machine.background_cpu_pct
        );
    }

    let settings = phases::Settings::from_args(&args, target_dir.join("herald-bench"));
    eprintln!(
        "baseline: axum + serde_json, no storage ({} clients, {:?} warm-up + {:?})",
        args.clients, args.warmup, args.duration
    );
    let baseline = baseline::measure(&settings).await.context("measuring the baseline")?;
    eprintln!("  {}", report::one_line(&baseline.load));

    let mut backends = Vec::new();
    if let Some(herald) = &herald {
        for backend in args.backend.backends() {
            let report = match backend {
                Backend::Postgres => match postgres::check(&args.database_url).await {
                    Ok(()) => phases::run_backend(&settings, herald, backend, &baseline).await,
                    Err(error) => {
                        eprintln!(
                            "skipping PostgreSQL: cannot reach {} ({error:#}); set HERALD_BENCH_DATABASE_URL",
                            postgres::redact(&args.database_url)
                        );
                        BackendReport::skipped(backend, format!("PostgreSQL unreachable: {error:#}"))
                    }
                },
                Backend::Sqlite => phases::run_backend(&settings, herald, backend, &baseline).await,
            };
            backends.push(report);
        }
    }

    let results = Results { measured_at, commit, machine, config, baseline, backends };
    println!("{}", report::markdown(&results));
    let json_path = args.json.unwrap_or_else(|| target_dir.join("bench-results.json"));
    report::write_json(&results, &json_path)?;
    eprintln!("results written to {}", json_path.display());
    if results.any_failure() {
        eprintln!("error: some phases failed or had failed requests; see above");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The cargo target directory: the bench binary lives in `<target>/release/`.
fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench executable")?;
    exe.parent()
        .and_then(|profile_dir| profile_dir.parent())
        .map(PathBuf::from)
        .context("the bench executable has no target directory above it")
}

/// The trimmed stdout of a command run in the workspace, or `unknown`.
fn output_of(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map_or_else(|| "unknown".to_owned(), |text| text.trim().to_owned())
}

/// Parses `10s`, `500ms`, `2m` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else if let Some(m) = text.strip_suffix('m') {
        (m, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| format!("`{text}` is not a duration like 10s, 500ms or 1m"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("`{text}` must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
