//! Keeps every `IPPool`'s status and the pool metrics current: after the rebuild, whenever
//! something they depend on changed (debounced), and every minute.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt as _;

use super::controller::Context;
use super::decide::PoolReport;
use super::metrics::{Metrics, PoolFamily, Reason};
use super::pool_status;
use crate::ipam::Family;

/// Runs until the controller stops.
pub(super) async fn run(ctx: Arc<Context>) {
    if ctx.ready().await.is_err() {
        return;
    }
    let mut known_reasons: Vec<&'static str> = Vec::new();
    loop {
        let _ = tokio::time::timeout(Duration::from_secs(60), ctx.pools_dirty.notified()).await;
        // Collects the changes of a burst into one round of writes.
        tokio::time::sleep(Duration::from_millis(250)).await;
        round(&ctx, &mut known_reasons).await;
    }
}

/// One round: the metrics from the allocator, then a status write for each pool whose
/// status differs from what the allocator reports.
async fn round(ctx: &Context, known_reasons: &mut Vec<&'static str>) {
    let (reports, pending, outside, conflicting) = {
        let mut decider = ctx.lock();
        decider.refresh_pools(&ctx.pools.state());
        (
            decider.pool_reports(),
            decider.pending_by_reason(),
            decider.outside_count(),
            decider.conflict_count(),
        )
    };
    ctx.metrics.conflicting.set(saturating_i64(conflicting));
    let contested = ctx.contests().stood_down();
    ctx.metrics.contested.set(saturating_i64(contested));
    update_metrics(&ctx.metrics, &reports, &pending, outside, known_reasons);
    let now = k8s_openapi::jiff::Timestamp::now();
    for pool in ctx.pools.state() {
        let Some(report) = reports.get(&pool.name_any()) else {
            continue;
        };
        let desired = pool_status::desired(&pool, report, now);
        let Some(patch) = pool_status::patch(&pool, &desired) else {
            continue;
        };
        if let Err(error) = ctx.pool_writer.apply(&pool.name_any(), &patch).await {
            ctx.metrics.pool_status_errors.inc();
            tracing::warn!(%error, pool = pool.name_any(), "writing the pool status failed; retrying");
            ctx.pools_dirty.notify_one();
        }
    }
}

fn saturating_i64<N: TryInto<i64>>(value: N) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

fn update_metrics(
    metrics: &Metrics,
    reports: &BTreeMap<String, PoolReport>,
    pending: &BTreeMap<&'static str, usize>,
    outside: usize,
    known_reasons: &mut Vec<&'static str>,
) {
    metrics.allocated.clear();
    metrics.pool_size.clear();
    for (pool, report) in reports {
        let Ok(usage) = &report.validity else {
            continue;
        };
        for family in Family::ALL {
            let counts = usage.family(family);
            if counts.total == 0 {
                continue;
            }
            let labels = PoolFamily {
                pool: pool.clone(),
                family: family.to_string(),
            };
            (metrics.allocated.get_or_create(&labels)).set(saturating_i64(counts.used));
            (metrics.pool_size.get_or_create(&labels)).set(saturating_i64(counts.total));
        }
    }
    for reason in pending.keys() {
        if !known_reasons.contains(reason) {
            known_reasons.push(reason);
        }
    }
    for reason in known_reasons.iter() {
        let count = pending.get(reason).copied().unwrap_or(0);
        let labels = Reason {
            reason: (*reason).to_owned(),
        };
        (metrics.pending.get_or_create(&labels)).set(saturating_i64(count));
    }
    metrics.outside_pool.set(saturating_i64(outside));
}
