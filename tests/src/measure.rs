//! What benchmarks measure with: a process's memory and CPU time, percentiles of latencies,
//! milliseconds for the tables they print.

use std::time::Duration;

/// Resident set and its peak, in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("the measured process is alive");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("/proc/<pid>/status has VmRSS and VmHWM")
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The `p`-th percentile (nearest rank) of `sorted`, which is not empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `d` in milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// CPU time a process has used so far, user and system, all its threads
/// (`/proc/<pid>/stat` utime + stime, in clock ticks of 10 ms).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .expect("the measured process is alive");
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("/proc/<pid>/stat has the command in parentheses")
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> u64 { fields[i].parse().expect("utime and stime are counts") };
    // utime and stime are fields 14 and 15 of stat, 12th and 13th after the command.
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / TICKS_PER_SECOND)
}

/// `sysconf(_SC_CLK_TCK)` on every Linux architecture the project runs on.
const TICKS_PER_SECOND: u64 = 100;
