//! Resident memory of a process, from `/proc/<pid>/status`: the current
//! `VmRSS` and the peak `VmHWM`, and a sampler that keeps the largest `VmRSS`.

use std::time::Duration;

use serde::Serialize;
use tokio::{sync::watch, task::JoinHandle};

const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// One reading, in KiB.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid`; `None` when the process is gone.
pub fn read(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&status)
}

fn parse_status(status: &str) -> Option<Memory> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// Samples `VmRSS` every 200 ms until finished.
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<Memory>,
}

impl Sampler {
    pub fn start(pid: u32) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut peak = read(pid).unwrap_or_default();
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                }
                if let Some(now) = read(pid) {
                    peak.rss_kib = peak.rss_kib.max(now.rss_kib);
                    peak.hwm_kib = peak.hwm_kib.max(now.hwm_kib);
                }
            }
            peak
        });
        Self { stop, task }
    }

    /// The largest sampled `VmRSS` and the last `VmHWM` (the kernel's own peak,
    /// which also catches spikes between samples).
    pub async fn finish(self, pid: u32) -> Memory {
        let _ = self.stop.send(true);
        let mut peak = self.task.await.unwrap_or_default();
        if let Some(now) = read(pid) {
            peak.rss_kib = peak.rss_kib.max(now.rss_kib);
            peak.hwm_kib = peak.hwm_kib.max(now.hwm_kib);
        }
        peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let status = "Name:\therald\nVmPeak:\t  100 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
        let memory = parse_status(status).expect("both fields are present");
        assert_eq!(memory.rss_kib, 1024);
        assert_eq!(memory.hwm_kib, 2048);
    }

    #[test]
    fn reads_this_process() {
        let memory = read(std::process::id()).expect("/proc/self is readable");
        assert!(memory.rss_kib > 0 && memory.hwm_kib >= memory.rss_kib);
    }
}
