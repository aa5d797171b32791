//! When the owner of an address sends its gratuitous announcements: a burst of rounds when it
//! takes the address (so every cache and switch learns the new MAC at once, and kernels that
//! ignore a second update within their `locktime` get another chance), then one round every
//! refresh period, jittered, for switches that age their tables. Pure: times are offsets from
//! any fixed origin the caller chooses.

use std::time::Duration;

/// The pool's announcement options, as the schedule needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// Rounds in the burst on taking an address (at least one is sent).
    pub count: u32,
    /// Between the burst's rounds.
    pub interval: Duration,
    /// Between refresh rounds after the burst; `None`: no refresh.
    pub refresh: Option<Duration>,
}

/// The announcement state of one owned address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    cadence: Cadence,
    /// Rounds of the burst sent so far.
    sent: u32,
    next: Option<Duration>,
    /// Refresh rounds sent so far (varies the jitter from round to round).
    refreshes: u64,
    seed: u64,
}

impl Schedule {
    /// The schedule of an address taken at `now`: the first round is due at once. `seed`
    /// spreads the refresh rounds of different addresses (e.g. a hash of the address), so
    /// that a node owning many does not send them all in the same instant.
    pub fn taken(cadence: Cadence, now: Duration, seed: u64) -> Self {
        Schedule {
            cadence,
            sent: 0,
            next: Some(now),
            refreshes: 0,
            seed,
        }
    }

    /// When the next round is due; `None` when no round will ever be (burst over, no refresh).
    pub fn next(&self) -> Option<Duration> {
        self.next
    }

    /// Rounds of the burst sent so far (1 after the first).
    pub fn rounds_sent(&self) -> u32 {
        self.sent
    }

    /// Whether a round is due at `now`. When it is, the caller sends it (after checking it
    /// still owns the address) and the schedule moves on to the following one.
    pub fn due(&mut self, now: Duration) -> bool {
        match self.next {
            Some(at) if at <= now => {
                self.advance(now);
                true
            }
            _ => false,
        }
    }

    /// Starts the burst again (a conflict was seen and we keep the address: tell everyone).
    pub fn restart(&mut self, now: Duration) {
        self.sent = 0;
        self.next = Some(now);
    }

    fn advance(&mut self, now: Duration) {
        if self.sent < self.cadence.count.max(1) {
            self.sent += 1;
        }
        self.next = if self.sent < self.cadence.count.max(1) {
            Some(now + self.cadence.interval)
        } else {
            self.cadence.refresh.map(|period| {
                self.refreshes += 1;
                now + jittered(period, self.seed.wrapping_add(self.refreshes))
            })
        };
    }
}

/// `period` ± 10 %, deterministically from `seed`.
fn jittered(period: Duration, seed: u64) -> Duration {
    // splitmix64: a well-spread value from consecutive seeds.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let per_mille = 900 + z % 201; // 900..=1100
    period * u32::try_from(per_mille).expect("at most 1100") / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn cadence(count: u32, refresh: Option<Duration>) -> Cadence {
        Cadence {
            count,
            interval: ms(1100),
            refresh,
        }
    }

    /// The times at which rounds go out when the caller wakes exactly at each deadline.
    fn rounds(schedule: &mut Schedule, until: Duration) -> Vec<Duration> {
        let mut sent = Vec::new();
        while let Some(at) = schedule.next() {
            if at > until {
                break;
            }
            assert!(schedule.due(at));
            sent.push(at);
        }
        sent
    }

    #[test]
    fn taking_an_address_sends_the_burst_at_once_then_every_interval() {
        let mut s = Schedule::taken(cadence(5, None), ms(10_000), 7);
        let sent = rounds(&mut s, ms(60_000));
        assert_eq!(
            sent,
            vec![ms(10_000), ms(11_100), ms(12_200), ms(13_300), ms(14_400)]
        );
        assert_eq!(s.next(), None, "no refresh configured");
    }

    #[test]
    fn a_round_is_not_due_before_its_time() {
        let mut s = Schedule::taken(cadence(2, None), ms(0), 1);
        assert!(s.due(ms(0)));
        assert!(!s.due(ms(1099)));
        assert!(s.due(ms(1100)));
        assert!(!s.due(ms(100_000)));
    }

    #[test]
    fn after_the_burst_refresh_rounds_come_every_period_within_ten_percent() {
        let mut s = Schedule::taken(cadence(1, Some(ms(60_000))), ms(0), 42);
        let sent = rounds(&mut s, ms(3_600_000));
        assert!(sent.len() > 50, "{} rounds in an hour", sent.len());
        let gaps: Vec<_> = sent.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter().all(|g| *g >= ms(54_000) && *g <= ms(66_000)),
            "{gaps:?}"
        );
        assert!(
            gaps.iter().any(|g| *g != gaps[0]),
            "jittered, not a fixed period: {gaps:?}"
        );
    }

    #[test]
    fn two_addresses_refresh_at_different_times() {
        let mut a = Schedule::taken(cadence(1, Some(ms(60_000))), ms(0), 1);
        let mut b = Schedule::taken(cadence(1, Some(ms(60_000))), ms(0), 2);
        assert_ne!(rounds(&mut a, ms(600_000)), rounds(&mut b, ms(600_000)));
    }

    #[test]
    fn a_count_of_zero_still_sends_one_round() {
        let mut s = Schedule::taken(cadence(0, None), ms(0), 0);
        assert_eq!(rounds(&mut s, ms(10_000)), vec![ms(0)]);
    }

    #[test]
    fn restarting_sends_a_whole_burst_again() {
        let mut s = Schedule::taken(cadence(3, Some(ms(60_000))), ms(0), 9);
        rounds(&mut s, ms(5_000));
        s.restart(ms(30_000));
        let sent = rounds(&mut s, ms(33_000));
        assert_eq!(sent, vec![ms(30_000), ms(31_100), ms(32_200)]);
    }

    #[test]
    fn a_late_wake_up_sends_one_round_not_a_catch_up_storm() {
        let mut s = Schedule::taken(cadence(5, None), ms(0), 3);
        assert!(s.due(ms(0)));
        assert!(s.due(ms(10_000)), "overdue: one round");
        assert!(
            !s.due(ms(10_000)),
            "the next is an interval after the late one"
        );
        assert_eq!(s.next(), Some(ms(11_100)));
    }
}
