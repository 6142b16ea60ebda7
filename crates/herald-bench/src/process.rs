//! A server under test running as a child process: started with its output
//! in a log file, polled until `GET /ready` answers 200, stopped with SIGTERM.

use std::{
    fs::File,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::process::{Child, Command};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const READY_POLL: Duration = Duration::from_millis(50);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running server process.
pub struct ServerProcess {
    name: &'static str,
    child: Child,
    pid: u32,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

/// How the process ended after SIGTERM.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Shutdown {
    /// From SIGTERM to exit.
    pub ms: u64,
    /// `exit status: 0`, or what went wrong.
    pub status: String,
    /// Whether it exited by itself with status 0 within the timeout.
    pub clean: bool,
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_addr() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

impl ServerProcess {
    /// Starts `command` (stdout and stderr into `log`) and waits until it is ready.
    pub async fn start(name: &'static str, mut command: Command, addr: SocketAddr, log: PathBuf) -> Result<Self> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating log directory {}", dir.display()))?;
        }
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            // A safety net: a bench that errors out must not leave servers behind.
            .kill_on_drop(true);
        let child = command.spawn().with_context(|| format!("starting {name}"))?;
        let pid = child.id().context("the child has no pid")?;
        let mut server = Self { name, child, pid, addr, log };
        server.wait_ready().await?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build()?;
        let url = format!("http://{}/ready", self.addr);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited before it was ready ({status}); its log {}:\n{}",
                    self.name,
                    self.log.display(),
                    log_tail(&self.log, 20)
                );
            }
            let last = match client.get(&url).send().await {
                Ok(response) if response.status() == reqwest::StatusCode::OK => return Ok(()),
                Ok(response) => format!("GET /ready answered {}", response.status()),
                Err(error) => format!("GET /ready failed: {}", crate::load::root_cause(&error)),
            };
            if Instant::now() >= deadline {
                bail!(
                    "{} was not ready after {:?} ({last}); its log {}:\n{}",
                    self.name,
                    READY_TIMEOUT,
                    self.log.display(),
                    log_tail(&self.log, 20)
                );
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Fails if the process has exited: a server that dies mid-phase must not
    /// pass for a slow one.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited during the phase ({status}); its log {}:\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log, 20)
            );
        }
        Ok(())
    }

    /// SIGTERM, then wait for the exit (SIGKILL after a timeout).
    pub async fn stop(mut self) -> Result<Shutdown> {
        let sent = Instant::now();
        let kill = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .stderr(Stdio::null())
            .status()
            .context("running kill -TERM")?;
        if !kill.success() {
            // Already gone: report how it ended.
            let status = self.child.wait().await?;
            return Ok(Shutdown { ms: 0, status: format!("had already exited: {status}"), clean: false });
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                Ok(Shutdown {
                    ms: sent.elapsed().as_millis() as u64,
                    status: status.to_string(),
                    clean: status.success(),
                })
            }
            Err(_) => {
                self.child.kill().await?;
                Ok(Shutdown {
                    ms: sent.elapsed().as_millis() as u64,
                    status: format!("still running {STOP_TIMEOUT:?} after SIGTERM; killed"),
                    clean: false,
                })
            }
        }
    }
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            if tail.is_empty() {
                "  (empty)".to_owned()
            } else {
                tail.iter().map(|line| format!("  | {line}")).collect::<Vec<_>>().join("\n")
            }
        }
        Err(error) => format!("  (cannot read: {error})"),
    }
}

/// How many lines a log file has (0 when unreadable).
pub fn log_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}
