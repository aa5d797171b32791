//! Leader election on a `coordination.k8s.io/v1` Lease: only the holder writes cluster state.
//!
//! Expiry is judged by the local clock from when this replica last saw the lease record change
//! (as client-go does), so clock skew between replicas cannot make two of them leaders. Losing
//! the lease is reported through [`Leadership::lost`]; the caller exits rather than risk a
//! second writer.
//!
//! No lease call may outlive the renew deadline: each attempt has a timeout, and the loop ends
//! once `renewDeadline` has passed since the last renewal that succeeded was sent, whether or
//! not any call returned. Each success extends the [`Fence`] that every leader-only write
//! passes, so writes stop at the deadline even while a renewal hangs.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::fence::Fence;

#[derive(Debug, thiserror::Error)]
pub(crate) enum LeaderError {
    #[error("reading or writing Lease {namespace}/{name} failed")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the API server did not answer a lease request within {}ms", waited.as_millis())]
    Silent { waited: Duration },
}

/// Settings of the election. Defaults follow kube-controller-manager (15 s / 10 s / 2 s).
#[derive(Debug, Clone)]
pub(crate) struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaseSettings {
    pub(crate) fn new(identity: impl Into<String>) -> Self {
        Self {
            namespace: "kube-system".into(),
            name: "baremetal-ccm".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What this replica should do with the lease record it just read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseAction {
    /// No lease exists: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Another holder let it expire (or released it): take it over.
    TakeOver,
    /// Another holder is live: wait.
    Wait,
}

/// The record fields that change on every renewal; a change means the holder is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Observed {
    holder: Option<String>,
    renew_time: Option<String>,
    resource_version: Option<String>,
}

impl Observed {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.as_ref();
        Self {
            holder: spec.and_then(|s| s.holder_identity.clone()),
            renew_time: spec
                .and_then(|s| s.renew_time.as_ref())
                .map(|t| t.0.to_string()),
            resource_version: lease.metadata.resource_version.clone(),
        }
    }
}

/// Decides, purely, what to do with `lease` given when we first saw its current record.
pub(crate) fn decide(
    me: &str,
    lease: Option<&Lease>,
    record_seen_since: Option<Instant>,
    now: Instant,
    default_duration: Duration,
) -> LeaseAction {
    let Some(lease) = lease else {
        return LeaseAction::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => LeaseAction::Renew,
        None | Some("") => LeaseAction::TakeOver,
        Some(_) => {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(default_duration, Duration::from_secs);
            match record_seen_since {
                Some(seen) if now.duration_since(seen) > duration => LeaseAction::TakeOver,
                _ => LeaseAction::Wait,
            }
        }
    }
}

/// Held leadership. Dropping it stops renewing (the lease then expires on its own).
#[derive(Debug)]
pub(crate) struct Leadership {
    lost: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
    fence: Fence,
}

impl Leadership {
    /// Resolves when the lease is lost (a renewal did not succeed within the renew deadline,
    /// or another holder took the lease).
    pub(crate) async fn lost(&mut self) {
        // An error means the renew task ended, which only happens after losing.
        let _ = self.lost.wait_for(|lost| *lost).await;
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.fence.revoke();
        self.task.abort();
    }
}

/// The lease client of one replica.
#[derive(Clone)]
pub(crate) struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
}

impl std::fmt::Debug for Elector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Elector {
    pub(crate) fn new(client: Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
        }
    }

    fn api_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            namespace: self.settings.namespace.clone(),
            name: self.settings.name.clone(),
            source,
        }
    }

    /// Waits until this replica holds the lease, then keeps renewing it in the background.
    /// `fence` is opened on acquisition, extended by every renewal and revoked when
    /// leadership is lost.
    pub(crate) async fn acquire(&self, fence: Fence) -> Result<Leadership, LeaderError> {
        let mut seen: Option<(Observed, Instant)> = None;
        let sent = loop {
            match self.attempt(&mut seen, self.settings.renew_deadline).await {
                Ok(Some(sent)) => break sent,
                Ok(None) => {}
                Err(error @ LeaderError::Silent { .. }) => {
                    tracing::warn!(error = %error, "waiting for leadership: the API server is silent");
                }
                // Conflicts (another replica wrote first) and transient errors: retry.
                Err(error) => tracing::debug!(error = %error, "lease attempt failed"),
            }
            tokio::time::sleep(self.settings.retry_period).await;
        };
        fence.extend(sent + self.settings.renew_deadline);
        tracing::info!(identity = %self.settings.identity, lease = %self.settings.name, "acquired leadership");
        let (tx, lost) = watch::channel(false);
        let elector = self.clone();
        let task_fence = fence.clone();
        let task = tokio::spawn(async move {
            elector.renew_until_lost(seen, sent, &task_fence).await;
            task_fence.revoke();
            let _ = tx.send(true);
        });
        Ok(Leadership { lost, task, fence })
    }

    /// One read-decide-write round that gives up after `limit`: `Some(sent)` when we hold
    /// the lease, with the moment the successful write was sent.
    async fn attempt(
        &self,
        seen: &mut Option<(Observed, Instant)>,
        limit: Duration,
    ) -> Result<Option<Instant>, LeaderError> {
        tokio::time::timeout(limit, self.try_acquire_or_renew(seen))
            .await
            .unwrap_or(Err(LeaderError::Silent { waited: limit }))
    }

    /// Renews every retry period until a renewal has not succeeded for the renew deadline
    /// (counted from when the last successful one was sent) or another replica holds the
    /// lease. Each attempt may use at most half the deadline, so a connection that hangs is
    /// abandoned and the next attempt gets a fresh one.
    async fn renew_until_lost(
        &self,
        mut seen: Option<(Observed, Instant)>,
        mut last_sent: Instant,
        fence: &Fence,
    ) {
        let deadline_of = |sent: Instant| sent + self.settings.renew_deadline;
        loop {
            tokio::time::sleep_until(
                (Instant::now() + self.settings.retry_period).min(deadline_of(last_sent)),
            )
            .await;
            let left = deadline_of(last_sent).saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    identity = %self.settings.identity,
                    deadline_ms = self.settings.renew_deadline.as_millis(),
                    "no lease renewal succeeded within the renew deadline",
                );
                break;
            }
            match self
                .attempt(&mut seen, left.min(self.settings.renew_deadline / 2))
                .await
            {
                Ok(Some(sent)) => {
                    last_sent = sent;
                    fence.extend(deadline_of(sent));
                }
                Ok(None) => {
                    tracing::warn!(identity = %self.settings.identity, "another replica holds the lease");
                    break;
                }
                Err(error @ LeaderError::Silent { .. }) => {
                    tracing::warn!(error = %error, "renewing the lease: the API server is silent");
                }
                Err(error) => tracing::warn!(error = %error, "renewing the lease failed"),
            }
        }
        tracing::info!(identity = %self.settings.identity, "lost leadership");
    }

    /// One round: read, decide, write. `Ok(Some(sent))` when we hold the lease afterwards,
    /// with the moment the write that holds it was sent.
    async fn try_acquire_or_renew(
        &self,
        seen: &mut Option<(Observed, Instant)>,
    ) -> Result<Option<Instant>, LeaderError> {
        let now = Instant::now();
        let current = self
            .api
            .get_opt(&self.settings.name)
            .await
            .map_err(|e| self.api_error(e))?;
        let since = current.as_ref().map(|lease| {
            let observed = Observed::of(lease);
            match seen {
                Some((previous, at)) if *previous == observed => *at,
                _ => {
                    *seen = Some((observed, now));
                    now
                }
            }
        });
        let action = decide(
            &self.settings.identity,
            current.as_ref(),
            since,
            now,
            self.settings.lease_duration,
        );
        let stamp = MicroTime(Timestamp::now());
        // Taken before the write is sent: a competitor's expiry clock starts only after it
        // sees the record this write produces, so the lease is ours from here on.
        let sent = Instant::now();
        let result = match (action, current) {
            (LeaseAction::Wait, _) => return Ok(None),
            (LeaseAction::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.settings.name.clone()),
                        namespace: Some(self.settings.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(stamp.clone(), stamp, 0)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (LeaseAction::Renew | LeaseAction::TakeOver, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                let (acquired, transitions) = if action == LeaseAction::Renew {
                    (
                        old.acquire_time.unwrap_or_else(|| stamp.clone()),
                        old.lease_transitions.unwrap_or(0),
                    )
                } else {
                    (stamp.clone(), old.lease_transitions.unwrap_or(0) + 1)
                };
                lease.spec = Some(self.spec(acquired, stamp, transitions));
                // The resourceVersion in `lease` makes this a compare-and-swap.
                self.api
                    .replace(&self.settings.name, &PostParams::default(), &lease)
                    .await
            }
            (LeaseAction::Renew | LeaseAction::TakeOver, None) => return Ok(None),
        };
        let written = result.map_err(|e| self.api_error(e))?;
        *seen = Some((Observed::of(&written), Instant::now()));
        Ok(Some(sent))
    }

    fn spec(&self, acquired: MicroTime, renewed: MicroTime, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.settings.identity.clone()),
            lease_duration_seconds: i32::try_from(self.settings.lease_duration.as_secs()).ok(),
            acquire_time: Some(acquired),
            renew_time: Some(renewed),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Gives the lease up (holder cleared) so a successor need not wait for expiry.
    /// Bounded by the renew deadline: a silent API server does not hold up shutdown.
    pub(crate) async fn release(&self) -> Result<(), LeaderError> {
        let limit = self.settings.renew_deadline;
        tokio::time::timeout(limit, self.release_now())
            .await
            .unwrap_or(Err(LeaderError::Silent { waited: limit }))
    }

    async fn release_now(&self) -> Result<(), LeaderError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.settings.name)
            .await
            .map_err(|e| self.api_error(e))?
        else {
            return Ok(());
        };
        if lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            != Some(self.settings.identity.as_str())
        {
            return Ok(());
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
        }
        self.api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
            .map_err(|e| self.api_error(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, seconds: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(seconds),
                ..LeaseSpec::default()
            }),
        }
    }

    const DEFAULT: Duration = Duration::from_secs(15);

    #[test]
    fn a_missing_lease_is_created() {
        assert_eq!(
            decide("a", None, None, Instant::now(), DEFAULT),
            LeaseAction::Create
        );
    }

    #[test]
    fn the_holder_renews_its_own_lease() {
        let now = Instant::now();
        assert_eq!(
            decide("a", Some(&held_by("a", 15)), Some(now), now, DEFAULT),
            LeaseAction::Renew
        );
    }

    #[test]
    fn a_live_holder_is_waited_for() {
        let seen = Instant::now();
        let now = seen + Duration::from_secs(14);
        assert_eq!(
            decide("b", Some(&held_by("a", 15)), Some(seen), now, DEFAULT),
            LeaseAction::Wait
        );
    }

    #[test]
    fn a_record_unchanged_for_longer_than_its_duration_is_taken_over() {
        let seen = Instant::now();
        let now = seen + Duration::from_secs(16);
        assert_eq!(
            decide("b", Some(&held_by("a", 15)), Some(seen), now, DEFAULT),
            LeaseAction::TakeOver
        );
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let mut lease = held_by("a", 15);
        lease.spec.as_mut().unwrap().holder_identity = None;
        let now = Instant::now();
        assert_eq!(
            decide("b", Some(&lease), Some(now), now, DEFAULT),
            LeaseAction::TakeOver
        );
    }
}
