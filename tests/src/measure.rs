//! What benchmarks measure with: a process's memory, percentiles of latencies, milliseconds
//! for the tables they print.

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
