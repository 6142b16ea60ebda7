//! The `herald` binary: HTTP API, pipeline workers, config and CLI.

mod api;
mod auth;
mod config;
mod error;
mod extract;
mod live;
mod pipeline;
mod recipient_token;
mod render;
mod secrets;
mod serve;
mod state;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

// Requests allocate on tokio threads and free on SQLite worker threads (and
// back); glibc's allocator spends a tenth of ingest CPU consolidating that.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Herald: a self-hosted notification hub.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Settings file (default: ./herald.toml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, the router and the delivery workers.
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Print a commented herald.toml with every setting at its default.
    Config,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line with the whole cause chain, not a backtrace.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    herald_channels::install_crypto_provider();
    let cli = Cli::parse();
    if let Command::Config = cli.command {
        print!("{}", Config::default_file());
        return Ok(());
    }
    let (config, warnings) = Config::load(cli.config.as_deref())?;
    init_logging(&config);
    for w in warnings {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve::run(config).await,
            Command::Migrate => {
                let (db, _lock) = serve::open_db(&config).await?;
                tracing::info!(backend = ?db.backend(), "database schema is up to date");
                db.close().await;
                Ok(())
            }
            Command::Config => unreachable!("handled above"),
        }
    })
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
}
