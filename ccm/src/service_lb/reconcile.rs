//! One Service's reconcile: release it when it is no longer ours, otherwise decide with the
//! IPAM core, judge a contest with another writer, apply the planned writes, and tell the
//! user (Events) what changed.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt as _;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::cache::CachedService;
use super::class::is_ours;
use super::contest::Verdict;
use super::controller::Context;
use super::decide::Outcome;
use super::events;
use super::metrics::Reason;
use super::status;
use super::watches::namespace_labels;
use crate::ipam::ServiceKey;

#[derive(Debug, thiserror::Error)]
pub(super) enum ReconcileError {
    #[error("writing Service {namespace}/{name} failed")]
    Write {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the controller's initial lists could not be completed")]
    NotSynced(#[from] crate::listed::WatchStopped),
}

impl ReconcileError {
    /// Bounded label for the error metric.
    fn class(&self) -> &'static str {
        match self {
            ReconcileError::Write { source, .. } => crate::writer::reason(source),
            ReconcileError::NotSynced(_) => "not_synced",
        }
    }
}

#[tracing::instrument(skip_all, fields(namespace = cached.namespace(), name = cached.name_any()))]
pub(super) async fn reconcile(
    cached: Arc<CachedService>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    ctx.ready().await?;
    let started = std::time::Instant::now();
    let result = reconcile_ready(&cached.service(), &ctx).await;
    ctx.metrics
        .sync_seconds
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.attempts.succeeded(&ObjectRef::from_obj(&*cached));
    }
    result
}

async fn reconcile_ready(service: &Service, ctx: &Context) -> Result<Action, ReconcileError> {
    if ctx.writer.is_superseded(service) {
        // The event of our later write follows and reconciles the current version.
        return Ok(Action::await_change());
    }
    if super::class::is_anothers(service, ctx.settings.class_policy) {
        return Ok(Action::await_change());
    }
    let deleting = service.metadata.deletion_timestamp.is_some();
    if deleting || !is_ours(service, ctx.settings.class_policy) {
        return release(service, ctx, deleting).await;
    }
    let key = ServiceKey::new(
        &service.namespace().unwrap_or_default(),
        &service.name_any(),
    );
    let (mut outcome, displaced, recorded) = {
        let mut decider = ctx.lock();
        decider.refresh_pools(&ctx.pools.state());
        let recorded = decider.recorded(&key);
        let outcome = decider.decide(service, &namespace_labels(&ctx.namespaces));
        (outcome, decider.take_displaced(), recorded)
    };
    ctx.wake(displaced);
    let held = super::request::held_addresses(service);
    let contest = ctx.contests().judge(
        &key,
        &held,
        &recorded,
        &outcome.desired.ingress,
        std::time::Instant::now(),
    );
    if contest == Some(Verdict::StandDown) {
        return Ok(Action::await_change());
    }
    if contest == Some(Verdict::GiveUp) {
        outcome.desired.conditions.push(status::WantedCondition {
            type_: super::contest::COND_CONTESTED,
            status: true,
            reason: "AddressContested".to_owned(),
            message: super::contest::note(&held, &recorded),
        });
    }
    // The finalizer goes in the first write, before any address is written to the Service.
    let patches = status::plan_with_finalizer(
        service,
        &outcome.desired,
        k8s_openapi::jiff::Timestamp::now(),
    );
    if patches.is_empty() {
        return Ok(requeue_for(&outcome));
    }
    let ingress_changed = outcome.desired.ingress != held;
    // Our first write carries the finalizer: a Service taken over as found says so once.
    let first_write = !has_finalizer(service);
    ctx.writer.apply_all(service, &patches).await?;
    if let Some(verdict) = contest {
        ctx.contests()
            .restored(&key, verdict, std::time::Instant::now());
        if verdict == Verdict::GiveUp {
            tracing::warn!(
                "another writer keeps replacing the Service's addresses; no longer writing it"
            );
            ctx.events.warning(
                service,
                super::contest::CONTESTED_EVENT,
                super::contest::note(&held, &recorded),
            );
        }
    }
    ctx.pools_dirty.notify_one();
    announce_outcome(service, ctx, &outcome, ingress_changed);
    if let Some(note) = &outcome.metallb
        && (ingress_changed || first_write)
    {
        ctx.events
            .normal(service, events::METALLB_ANNOTATIONS, note.clone());
    }
    Ok(requeue_for(&outcome))
}

fn announce_outcome(service: &Service, ctx: &Context, outcome: &Outcome, ingress_changed: bool) {
    if ingress_changed && !outcome.desired.ingress.is_empty() {
        tracing::info!(addresses = %outcome.summary, "assigned load-balancer addresses");
        ctx.events
            .normal(service, events::ENSURED, outcome.summary.clone());
        if outcome.deprecated_field {
            let note = "spec.loadBalancerIP is deprecated; use the baremetal-ccm.io/ips annotation"
                .to_owned();
            ctx.events.warning(service, events::DEPRECATED_FIELD, note);
        }
    }
    if let Some(pending) = &outcome.pending {
        ctx.events.warning(
            service,
            events::SYNC_FAILED,
            format!("{}: {}", pending.reason, pending.message),
        );
    }
    if let Some(note) = &outcome.outside_pool {
        ctx.events
            .warning(service, events::OUTSIDE_POOL, note.clone());
    }
    if let Some(note) = &outcome.conflict {
        tracing::warn!("kept a Service on an address another Service holds, as found");
        ctx.events
            .warning(service, super::adopt::CONFLICT_EVENT, note.clone());
    }
}

/// Whether the Service carries our finalizer (we wrote it before).
fn has_finalizer(service: &Service) -> bool {
    (service.metadata.finalizers.iter().flatten()).any(|f| f == status::FINALIZER)
}

/// Pending Services are retried on pool, namespace and release triggers; a slow periodic
/// retry covers anything those miss.
fn requeue_for(outcome: &Outcome) -> Action {
    if outcome.pending.is_some() {
        Action::requeue(Duration::from_secs(300))
    } else {
        Action::await_change()
    }
}

async fn release(
    service: &Service,
    ctx: &Context,
    deleting: bool,
) -> Result<Action, ReconcileError> {
    ctx.contests().settled(&ServiceKey::new(
        &service.namespace().unwrap_or_default(),
        &service.name_any(),
    ));
    let patches = status::plan_release(service);
    if !patches.is_empty() {
        if deleting {
            ctx.events
                .normal(service, events::DELETING, "Deleting load balancer".into());
        }
        ctx.writer.apply_all(service, &patches).await?;
        let reason = if deleting {
            events::DELETED
        } else {
            events::UPDATED
        };
        ctx.events.normal(
            service,
            reason,
            "Released the load-balancer addresses".into(),
        );
        tracing::info!(deleting, "released load-balancer addresses");
    }
    // Freed only once the Service no longer shows them: another Service never holds an
    // address while this one's status still carries it.
    let wake = {
        let mut decider = ctx.lock();
        let freed = decider.release(service);
        (!freed.is_empty()).then(|| decider.to_wake(&freed))
    };
    if let Some(wake) = wake {
        ctx.pools_dirty.notify_one();
        ctx.wake(wake);
    }
    Ok(Action::await_change())
}

pub(super) fn error_policy(
    cached: Arc<CachedService>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    let attempt = ctx.attempts.failed(ObjectRef::from_obj(&*cached));
    let reason = Reason {
        reason: error.class().to_owned(),
    };
    ctx.metrics.sync_errors.get_or_create(&reason).inc();
    let delay = crate::retry::Backoff::TRANSIENT.delay(attempt);
    tracing::warn!(error = %error, attempt, delay_ms = delay.as_millis(), "reconcile failed; retrying");
    Action::requeue(delay)
}
