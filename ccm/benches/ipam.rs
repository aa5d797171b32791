//! Benchmark of the IPAM core on large pools: fill a pool to 100,000 live allocations (or to
//! its size when smaller), then interleave release + assign at that steady state and report the
//! per-operation latency (p50, p99) and the heap bytes per allocation.
//!
//! Run with `cargo bench -p baremetal-ccm --bench ipam`. Targets: p99 <= 5 µs per operation,
//! <= 200 bytes per allocation.
//!
//! Bytes per allocation: the live heap (by requested size) after filling minus before, over the
//! live allocations. Each request is dropped as soon as it is assigned, so everything counted is
//! what the allocator retains, including the Service names it keeps (shared with the request's
//! key, so they stay alive through the allocator alone).

#![allow(
    unsafe_code,
    reason = "a counting global allocator must implement the unsafe GlobalAlloc trait"
)]
#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use baremetal_ccm_core::ipam::{
    Allocator, Family, IpFamilyPolicy, Pool, PoolSpec, ServiceKey, ServiceRequest,
};

/// Bytes currently allocated on the heap by the whole program.
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

/// `System`, counting live bytes.
struct Counting;

fn signed(size: usize) -> isize {
    isize::try_from(size).expect("allocation sizes fit isize (Layout guarantees it)")
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is `System`'s; the counter has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(signed(layout.size()), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(signed(layout.size()), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE_BYTES.fetch_add(signed(new_size) - signed(layout.size()), Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const TARGET_LIVE: usize = 100_000;
const STEADY_OPS: usize = 20_000;

struct Case {
    label: &'static str,
    cidr: &'static str,
    family: Family,
    avoid_buggy_ips: bool,
}

struct Report {
    label: &'static str,
    live: usize,
    fill: Duration,
    assign: Vec<Duration>,
    release: Vec<Duration>,
    bytes_per_allocation: f64,
}

fn request(i: usize, family: Family) -> ServiceRequest {
    let namespace = ["default", "web", "payments", "monitoring"][i % 4];
    let mut r = ServiceRequest::new(ServiceKey::new(namespace, &format!("svc-{i}")), 0);
    r.ip_family_policy = IpFamilyPolicy::SingleStack;
    r.ip_families = vec![family];
    r
}

/// xorshift64: a fixed, dependency-free sequence of victims.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn run(case: &Case) -> Report {
    let mut spec = PoolSpec::new(case.label, &[case.cidr]);
    spec.avoid_buggy_ips = case.avoid_buggy_ips;
    let pool = Pool::new(&spec).expect("benchmark pools are valid");
    let capacity = usize::try_from(pool.total(case.family)).unwrap_or(usize::MAX);
    let live = TARGET_LIVE.min(capacity);
    let mut ipam = Allocator::new(vec![pool]).expect("one pool has no duplicate");

    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let started = Instant::now();
    for i in 0..live {
        ipam.assign(&request(i, case.family))
            .expect("the pool has room while filling");
    }
    let fill = started.elapsed();
    let bytes = LIVE_BYTES.load(Ordering::Relaxed) - before;

    let mut holders: Vec<usize> = (0..live).collect();
    let mut assign = Vec::with_capacity(STEADY_OPS);
    let mut release = Vec::with_capacity(STEADY_OPS);
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for j in 0..STEADY_OPS {
        let victim_at = usize::try_from(next(&mut seed) % holders.len() as u64).unwrap_or(0);
        let victim = request(holders.swap_remove(victim_at), case.family);
        let newcomer_index = live + j;
        let newcomer = request(newcomer_index, case.family);

        let t = Instant::now();
        let freed = ipam.release(&victim.key);
        release.push(t.elapsed());
        assert_eq!(freed.len(), 1, "the victim held one address");

        let t = Instant::now();
        let assigned = ipam.assign(&newcomer);
        assign.push(t.elapsed());
        assert_eq!(
            assigned.map(|a| a.addresses[0].address).ok(),
            Some(freed[0])
        );
        holders.push(newcomer_index);
    }
    Report {
        label: case.label,
        live,
        fill,
        assign,
        release,
        bytes_per_allocation: bytes as f64 / live as f64,
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    let rank = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

fn main() {
    let cases = [
        Case {
            label: "IPv4 /16",
            cidr: "10.0.0.0/16",
            family: Family::V4,
            avoid_buggy_ips: false,
        },
        Case {
            label: "IPv4 /8",
            cidr: "10.0.0.0/8",
            family: Family::V4,
            avoid_buggy_ips: false,
        },
        Case {
            label: "IPv4 /8 avoidBuggyIPs",
            cidr: "10.0.0.0/8",
            family: Family::V4,
            avoid_buggy_ips: true,
        },
        Case {
            label: "IPv6 /64",
            cidr: "2001:db8::/64",
            family: Family::V6,
            avoid_buggy_ips: false,
        },
    ];
    println!(
        "| pool | live allocations | fill (µs/assign) | op | p50 (ns) | p99 (ns) | max (ns) | bytes/allocation |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|");
    for case in &cases {
        let mut report = run(case);
        let fill = report.fill.as_secs_f64() * 1e6 / report.live as f64;
        for (op, samples) in [
            ("assign", &mut report.assign),
            ("release", &mut report.release),
        ] {
            let p50 = percentile(samples, 0.50).as_nanos();
            let p99 = percentile(samples, 0.99).as_nanos();
            let max = percentile(samples, 1.0).as_nanos();
            println!(
                "| {} | {} | {fill:.2} | {op} | {p50} | {p99} | {max} | {:.0} |",
                report.label, report.live, report.bytes_per_allocation
            );
        }
    }
}
