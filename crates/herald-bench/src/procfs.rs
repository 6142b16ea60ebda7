//! What `/proc` says about a server under test: resident memory (`VmRSS`,
//! peak `VmHWM`) and CPU time, for the server, the bench itself and the rest
//! of the machine (on two cores, whoever else is busy skews the figures).

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::{sync::watch, task::JoinHandle};

const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// `USER_HZ`: the unit of `/proc/*/stat` CPU times, 100 on every Linux we run on.
const TICKS_PER_SECOND: f64 = 100.0;

/// One memory reading, in KiB.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// The anonymous part of `rss_kib` (`RssAnon`): the heap and stacks,
    /// without the binary's code pages and mapped files (SQLite's WAL
    /// index), which grow once as code and data are first touched.
    pub anon_kib: u64,
}

/// Average CPU use over a phase, in percent of one core.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct CpuUse {
    pub server_pct: f64,
    /// The load generator and the sinks.
    pub bench_pct: f64,
    /// Everything else: PostgreSQL, the kernel's softirqs, other users' builds.
    pub other_pct: f64,
    /// Time the hypervisor gave our virtual CPUs to someone else: a slower
    /// machine than the one that was measured before.
    pub steal_pct: f64,
}

impl Memory {
    /// Keeps the larger of each figure.
    fn raise(&mut self, now: Memory) {
        self.rss_kib = self.rss_kib.max(now.rss_kib);
        self.hwm_kib = self.hwm_kib.max(now.hwm_kib);
        self.anon_kib = self.anon_kib.max(now.anon_kib);
    }
}

/// Reads `VmRSS` and `VmHWM` of `pid`; `None` when the process is gone.
pub fn memory(pid: u32) -> Option<Memory> {
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
    Some(Memory { rss_kib: field("VmRSS:")?, hwm_kib: field("VmHWM:")?, anon_kib: field("RssAnon:")? })
}

/// User + system CPU ticks of a process (all its threads).
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_process_ticks(&stat)
}

fn parse_process_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 14 is utime, 15 stime
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Busy and steal ticks of the whole machine, summed over all CPUs.
fn machine_ticks() -> Option<MachineTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine_ticks(stat.lines().next()?)
}

#[derive(Clone, Copy, Default)]
struct MachineTicks {
    busy: u64,
    steal: u64,
}

fn parse_machine_ticks(cpu_line: &str) -> Option<MachineTicks> {
    let ticks: Vec<u64> =
        cpu_line.strip_prefix("cpu ")?.split_whitespace().map(|n| n.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
    Some(MachineTicks { busy: at(0) + at(1) + at(2) + at(5) + at(6) + at(7), steal: at(7) })
}

/// CPU counters at one instant.
#[derive(Clone, Copy)]
pub struct CpuMark {
    at: Instant,
    server: u64,
    bench: u64,
    machine: MachineTicks,
}

impl CpuMark {
    pub fn now(server_pid: u32) -> Self {
        Self {
            at: Instant::now(),
            server: process_ticks(&server_pid.to_string()).unwrap_or(0),
            bench: process_ticks("self").unwrap_or(0),
            machine: machine_ticks().unwrap_or_default(),
        }
    }

    /// Average use between `self` and `later`.
    pub fn until(&self, later: &CpuMark) -> CpuUse {
        let seconds = (later.at - self.at).as_secs_f64();
        if seconds <= 0.0 {
            return CpuUse::default();
        }
        let pct = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / seconds * 100.0;
        let server = later.server.saturating_sub(self.server);
        let bench = later.bench.saturating_sub(self.bench);
        let busy = later.machine.busy.saturating_sub(self.machine.busy);
        let steal = later.machine.steal.saturating_sub(self.machine.steal);
        CpuUse {
            server_pct: pct(server),
            bench_pct: pct(bench),
            other_pct: pct(busy.saturating_sub(server + bench + steal)),
            steal_pct: pct(steal),
        }
    }
}

/// How busy the machine is with nothing of ours running, in percent of one core.
pub async fn background_cpu(over: Duration) -> f64 {
    let before = machine_ticks().unwrap_or_default().busy;
    let started = Instant::now();
    tokio::time::sleep(over).await;
    let busy = machine_ticks().unwrap_or_default().busy.saturating_sub(before);
    busy as f64 / TICKS_PER_SECOND / started.elapsed().as_secs_f64() * 100.0
}

/// What a phase used.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Usage {
    /// The largest `VmRSS` sampled and the last `VmHWM`.
    pub memory: Memory,
    pub cpu: CpuUse,
}

/// Samples a server's `VmRSS` every 200 ms and its CPU time from start to finish.
pub struct Sampler {
    pid: u32,
    start: CpuMark,
    stop: watch::Sender<bool>,
    task: JoinHandle<Memory>,
}

impl Sampler {
    pub fn start(pid: u32) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut peak = memory(pid).unwrap_or_default();
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                }
                if let Some(now) = memory(pid) {
                    peak.raise(now);
                }
            }
            peak
        });
        Self { pid, start: CpuMark::now(pid), stop, task }
    }

    /// Stops sampling. `VmHWM` is the kernel's own peak, so it also catches
    /// spikes between samples.
    pub async fn finish(self) -> Usage {
        let cpu = self.start.until(&CpuMark::now(self.pid));
        let _ = self.stop.send(true);
        let mut peak = self.task.await.unwrap_or_default();
        if let Some(now) = memory(self.pid) {
            peak.raise(now);
        }
        Usage { memory: peak, cpu }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let status =
            "Name:\therald\nVmPeak:\t  100 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nRssAnon:\t     700 kB\n";
        let memory = parse_status(status).expect("every field is present");
        assert_eq!((memory.rss_kib, memory.hwm_kib, memory.anon_kib), (1024, 2048, 700));
    }

    #[test]
    fn parses_process_ticks_after_an_odd_name() {
        let stat = "42 (tokio (x) 1) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_process_ticks(stat), Some(300));
    }

    #[test]
    fn machine_busy_leaves_out_idle_and_iowait() {
        let line = "cpu  100 1 20 5000 7 3 4 5 0 0";
        let ticks = parse_machine_ticks(line).expect("a cpu line");
        assert_eq!((ticks.busy, ticks.steal), (133, 5));
    }

    #[test]
    fn reads_this_process() {
        let memory = memory(std::process::id()).expect("/proc/self is readable");
        assert!(memory.rss_kib > 0 && memory.hwm_kib >= memory.rss_kib && memory.anon_kib <= memory.rss_kib);
        assert!(process_ticks("self").is_some());
        assert!(machine_ticks().is_some());
    }
}
