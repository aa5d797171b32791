//! Which side came back. After a partition both sides learn that the other declared them down
//! and rejoin as a new generation, so "rejoined" alone cannot say who returned. This speaker
//! counts a rejoin as its own return — and settles for the hold-down before it takes addresses
//! back — only when, shortly before, it saw most of the others down (it was on the smaller
//! side of a partition, or cut off alone) or its own timers ran late (its process or machine
//! stalled). The larger side rejoins too, but keeps what it owns.

use tokio::time::{Duration, Instant};

/// How recent the isolation or the stall must be for a rejoin to count as a return: the rejoin
/// follows the partition's end (or the stall's) within a few gossip rounds.
pub(super) const RECENT: Duration = Duration::from_secs(10);

/// What this speaker saw of itself lately.
#[derive(Debug, Default)]
pub(super) struct Returns {
    isolated_at: Option<Instant>,
    stalled_at: Option<Instant>,
    /// How many rejoins counted as a return: the election's caller settles when it grows.
    count: u64,
}

/// Why a rejoin counted as a return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// It saw at least half of the others down (or, knowing of none, had seeds).
    Isolated,
    /// Its own timers fired late by more than the stall threshold.
    Stalled,
}

impl Why {
    pub(super) fn label(self) -> &'static str {
        match self {
            Why::Isolated => "it saw most of the others down",
            Why::Stalled => "its own timers ran late (a stall)",
        }
    }
}

impl Returns {
    pub(super) fn count(&self) -> u64 {
        self.count
    }

    /// The membership as it is at `now`: `expected` other speakers (known to SWIM, or named
    /// by the seeds, whichever are more), of which `active` are not down. Isolated when the
    /// active ones are fewer than half: on the smaller side of a partition, or alone. (Two
    /// speakers cut in two are both isolated: neither can tell, and the ranking decides.)
    pub(super) fn observe(&mut self, now: Instant, expected: usize, active: usize) {
        if expected > 0 && active * 2 < expected {
            self.isolated_at = Some(now);
        }
    }

    /// The loop woke at `now` for work due at `due`: later than `threshold` is a stall.
    pub(super) fn woke(&mut self, now: Instant, due: Instant, threshold: Duration) {
        if now.saturating_duration_since(due) > threshold {
            self.stalled_at = Some(now);
        }
    }

    /// SWIM says the others declared this speaker down and it rejoined: a return when it was
    /// isolated or stalled within [`RECENT`].
    pub(super) fn rejoined(&mut self, now: Instant) -> Option<Why> {
        let recent = |at: Option<Instant>| at.is_some_and(|at| now.duration_since(at) <= RECENT);
        let why = if recent(self.stalled_at) {
            Why::Stalled
        } else if recent(self.isolated_at) {
            Why::Isolated
        } else {
            return None;
        };
        self.count += 1;
        Some(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_millis(500);

    #[test]
    fn the_smaller_side_of_a_partition_returns_and_the_larger_does_not() {
        let now = Instant::now();
        // Three speakers cut one from two: the one sees both others down…
        let mut alone = Returns::default();
        alone.observe(now, 2, 0);
        assert_eq!(
            alone.rejoined(now + Duration::from_secs(3)),
            Some(Why::Isolated)
        );
        assert_eq!(alone.count(), 1);
        // …each of the two sees one of its two others down: not isolated.
        let mut pair = Returns::default();
        pair.observe(now, 2, 1);
        assert_eq!(pair.rejoined(now + Duration::from_secs(3)), None);
        assert_eq!(pair.count(), 0);
        // Five cut two from three.
        let (mut two, mut three) = (Returns::default(), Returns::default());
        two.observe(now, 4, 1);
        three.observe(now, 4, 2);
        assert_eq!(two.rejoined(now), Some(Why::Isolated));
        assert_eq!(three.rejoined(now), None);
    }

    #[test]
    fn two_speakers_cut_in_two_both_return() {
        let now = Instant::now();
        let (mut a, mut b) = (Returns::default(), Returns::default());
        a.observe(now, 1, 0);
        b.observe(now, 1, 0);
        assert!(a.rejoined(now).is_some() && b.rejoined(now).is_some());
    }

    #[test]
    fn a_speaker_that_forgot_the_others_but_has_seeds_is_isolated() {
        let now = Instant::now();
        let mut r = Returns::default();
        // SWIM forgot the down members long ago; the seeds still name two.
        r.observe(now, 2, 0);
        assert_eq!(r.rejoined(now), Some(Why::Isolated));
        // Nobody expected at all (a lone speaker): nothing to be isolated from.
        let mut lone = Returns::default();
        lone.observe(now, 0, 0);
        assert_eq!(lone.rejoined(now), None);
    }

    #[test]
    fn a_stalled_speaker_returns_though_it_never_saw_anyone_down() {
        let now = Instant::now();
        let mut r = Returns::default();
        r.observe(now, 2, 2);
        r.woke(now + Duration::from_millis(400), now, STALL);
        assert_eq!(
            r.rejoined(now + Duration::from_secs(1)),
            None,
            "late by less than the threshold"
        );
        r.woke(now + Duration::from_secs(4), now, STALL);
        assert_eq!(r.rejoined(now + Duration::from_secs(4)), Some(Why::Stalled));
        assert_eq!(r.count(), 1);
    }

    #[test]
    fn an_old_isolation_or_stall_does_not_count() {
        let now = Instant::now();
        let mut r = Returns::default();
        r.observe(now, 2, 0);
        r.woke(now + Duration::from_secs(2), now, STALL);
        r.observe(now + Duration::from_secs(3), 2, 2);
        assert_eq!(
            r.rejoined(now + Duration::from_secs(2) + RECENT + Duration::from_millis(1)),
            None
        );
        assert_eq!(r.count(), 0);
    }
}
