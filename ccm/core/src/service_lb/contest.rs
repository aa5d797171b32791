//! Noticing another controller that keeps rewriting a Service's addresses, and standing down.
//!
//! When a second LoadBalancer implementation also serves class-less Services, each restores
//! its own addresses over the other's, thousands of times a minute. We count how often we
//! found a Service's status holding addresses other than those we decided for it and put ours
//! back; after [`GIVE_UP_AFTER`] such restores within [`WINDOW`] we stop writing that Service:
//! one Warning event, one condition, a metric, and the advice to give the Services of each
//! implementation their own `loadBalancerClass` (issue 10, item 7). Our allocation is kept
//! (nothing is lost); we write the Service again once it leaves us (deleted, another class) or
//! the controller restarts.
//!
//! Pure: the controller passes the time.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::ipam::ServiceKey;

/// Restores within [`WINDOW`] after which we stop writing a Service.
pub const GIVE_UP_AFTER: u32 = 3;
/// How far back restores count.
pub const WINDOW: Duration = Duration::from_secs(600);

/// Condition: `True` while we do not write a Service because another writer keeps changing
/// its addresses.
pub const COND_CONTESTED: &str = "baremetal-ccm.io/AddressContested";
/// Event reason of the Warning that says so.
pub const CONTESTED_EVENT: &str = "AddressContested";

/// What to do about a status someone else changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Put our addresses back.
    Restore,
    /// Stop now: warn once, flag the Service.
    GiveUp,
    /// Already stood down: write nothing.
    StandDown,
}

#[derive(Debug, Clone)]
struct Contest {
    restores: Vec<Instant>,
    stood_down: bool,
}

/// The Services whose status another writer changed, and how often.
#[derive(Debug, Default)]
pub struct Contests {
    services: HashMap<ServiceKey, Contest>,
}

impl Contests {
    /// `key`'s status holds addresses other than those we decided: what to do now. Changes
    /// nothing; [`Contests::restored`] records a restore once it was written.
    pub fn overwritten(&self, key: &ServiceKey, now: Instant) -> Verdict {
        let Some(contest) = self.services.get(key) else {
            return Verdict::Restore;
        };
        if contest.stood_down {
            return Verdict::StandDown;
        }
        let recent = (contest.restores.iter())
            .filter(|at| now.saturating_duration_since(**at) < WINDOW)
            .count();
        // The last restore we make carries the condition that says we stop.
        if recent + 1 >= GIVE_UP_AFTER as usize {
            Verdict::GiveUp
        } else {
            Verdict::Restore
        }
    }

    /// A restore decided by `verdict` was written.
    pub fn restored(&mut self, key: &ServiceKey, verdict: Verdict, now: Instant) {
        let contest = self.services.entry(key.clone()).or_insert_with(|| Contest {
            restores: Vec::new(),
            stood_down: false,
        });
        contest
            .restores
            .retain(|at| now.saturating_duration_since(*at) < WINDOW);
        contest.restores.push(now);
        contest.stood_down |= verdict == Verdict::GiveUp;
    }

    /// Whether writing `desired` restores our addresses (`recorded`, what we decided) over
    /// others that the status holds (`Some`, with what to do), or not (`None`).
    pub fn judge(
        &mut self,
        key: &ServiceKey,
        held: &[IpAddr],
        recorded: &[IpAddr],
        desired: &[IpAddr],
        now: Instant,
    ) -> Option<Verdict> {
        let set = |ips: &[IpAddr]| ips.iter().copied().collect::<BTreeSet<_>>();
        let ours = set(recorded);
        if ours.is_empty() {
            self.settled(key);
            return None;
        }
        if self.services.get(key).is_some_and(|c| c.stood_down) {
            return Some(Verdict::StandDown);
        }
        if set(held) == ours {
            // Our own restores come back agreeing with us: that ends nothing (the restores
            // counted expire on their own; standing down lasts until the Service leaves us).
            return None;
        }
        // A decision that moves the Service (it asked for another address) is no restore.
        (set(desired) == ours).then(|| self.overwritten(key, now))
    }

    /// The Service is no longer ours (deleted, another class), or holds nothing we decided.
    pub fn settled(&mut self, key: &ServiceKey) {
        self.services.remove(key);
    }

    /// Services we stood down from.
    pub fn stood_down(&self) -> usize {
        self.services.values().filter(|c| c.stood_down).count()
    }
}

/// The message of the condition and the Warning: the addresses the status holds, and ours.
pub fn note(held: &[IpAddr], recorded: &[IpAddr]) -> String {
    let list = |ips: &[IpAddr]| {
        if ips.is_empty() {
            "no address".to_owned()
        } else {
            (ips.iter().map(ToString::to_string))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let (theirs, ours) = (list(held), list(recorded));
    format!(
        "another writer keeps replacing this Service's addresses ({ours}, kept allocated for it) \
         with {theirs}; after {GIVE_UP_AFTER} restores baremetal-ccm stopped writing it. Two \
         LoadBalancer implementations serve it: give each its own spec.loadBalancerClass \
         (baremetal-ccm serves class-less Services and baremetal-ccm.io/lb; \
         --lb-class-only limits it to the latter)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every verdict, written as the controller does (a restore counts once written).
    fn run(contests: &mut Contests, key: &ServiceKey, times: &[Instant]) -> Vec<Verdict> {
        times
            .iter()
            .map(|at| {
                let verdict = contests.overwritten(key, *at);
                if verdict != Verdict::StandDown {
                    contests.restored(key, verdict, *at);
                }
                verdict
            })
            .collect()
    }

    #[test]
    fn a_few_restores_the_last_one_giving_up_then_silence() {
        let key = ServiceKey::new("default", "web");
        let mut contests = Contests::default();
        let start = Instant::now();
        let times: Vec<Instant> = (0..10)
            .map(|i| start + Duration::from_millis(i * 10))
            .collect();
        let verdicts = run(&mut contests, &key, &times);
        assert_eq!(
            verdicts[..4],
            [
                Verdict::Restore,
                Verdict::Restore,
                Verdict::GiveUp,
                Verdict::StandDown
            ]
        );
        assert!(verdicts[3..].iter().all(|v| *v == Verdict::StandDown));
        assert_eq!(contests.stood_down(), 1);
        contests.settled(&key);
        assert_eq!(contests.overwritten(&key, start), Verdict::Restore);
    }

    #[test]
    fn a_restore_that_was_not_written_does_not_count() {
        let key = ServiceKey::new("default", "web");
        let contests = Contests::default();
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(contests.overwritten(&key, now), Verdict::Restore);
        }
    }

    #[test]
    fn only_a_status_that_differs_from_our_decision_is_a_restore() {
        let key = ServiceKey::new("default", "web");
        let mut contests = Contests::default();
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let (ours, theirs) = ([ip("192.0.2.1")], [ip("192.0.2.9")]);
        let now = Instant::now();
        // A new Service (nothing recorded before) and an agreeing status: no contest.
        assert_eq!(contests.judge(&key, &[], &[], &ours, now), None);
        assert_eq!(contests.judge(&key, &ours, &ours, &ours, now), None);
        // Someone else's address in the status, and we want ours back: a restore.
        assert_eq!(
            contests.judge(&key, &theirs, &ours, &ours, now),
            Some(Verdict::Restore)
        );
        // The Service asked for another address: we move it, no restore.
        assert_eq!(contests.judge(&key, &theirs, &ours, &theirs, now), None);
    }

    #[test]
    fn our_own_restore_seen_back_does_not_reset_the_count() {
        let key = ServiceKey::new("default", "web");
        let mut contests = Contests::default();
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let (ours, theirs) = ([ip("192.0.2.1")], [ip("192.0.2.9")]);
        let now = Instant::now();
        let mut verdicts = Vec::new();
        for _ in 0..5 {
            if let Some(verdict) = contests.judge(&key, &theirs, &ours, &ours, now) {
                if verdict != Verdict::StandDown {
                    contests.restored(&key, verdict, now);
                }
                verdicts.push(verdict);
            }
            // Our write comes back through the watch before the other writer's: nothing to
            // do, and once we stood down, not even that is written over.
            let echo = contests.judge(&key, &ours, &ours, &ours, now);
            assert!(
                echo.is_none() || echo == Some(Verdict::StandDown),
                "{echo:?}"
            );
        }
        assert_eq!(
            verdicts,
            [
                Verdict::Restore,
                Verdict::Restore,
                Verdict::GiveUp,
                Verdict::StandDown,
                Verdict::StandDown
            ]
        );
    }

    #[test]
    fn restores_far_apart_never_give_up() {
        let key = ServiceKey::new("default", "web");
        let mut contests = Contests::default();
        let start = Instant::now();
        let times: Vec<Instant> = (0..20).map(|i| start + WINDOW * i).collect();
        assert!(
            run(&mut contests, &key, &times)
                .iter()
                .all(|v| *v == Verdict::Restore)
        );
    }
}
