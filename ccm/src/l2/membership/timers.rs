//! foca's timers, due at an instant, handed back in the order they fall due.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use foca::Timer;
use tokio::time::Instant;

use super::identity::Speaker;

#[derive(Debug)]
struct Due {
    at: Instant,
    /// Ties keep the order foca asked in.
    seq: u64,
    timer: Timer<Speaker>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Due>>,
    seq: u64,
}

impl Timers {
    pub(super) fn push(&mut self, at: Instant, timer: Timer<Speaker>) {
        self.seq = self.seq.wrapping_add(1);
        self.heap.push(Reverse(Due {
            at,
            seq: self.seq,
            timer,
        }));
    }

    pub(super) fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(due)| due.at)
    }

    /// The earliest timer due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Timer<Speaker>> {
        if self.next_at()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(due)| due.timer)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timers_come_back_when_due_earliest_first_then_in_the_order_asked() {
        let start = Instant::now();
        let mut timers = Timers::default();
        timers.push(
            start + Duration::from_millis(500),
            Timer::ProbeRandomMember(1),
        );
        timers.push(start + Duration::from_millis(150), Timer::PeriodicGossip(1));
        timers.push(
            start + Duration::from_millis(150),
            Timer::PeriodicAnnounce(1),
        );
        assert_eq!(timers.next_at(), Some(start + Duration::from_millis(150)));
        assert_eq!(timers.pop_due(start), None);
        let due = start + Duration::from_millis(200);
        assert_eq!(timers.pop_due(due), Some(Timer::PeriodicGossip(1)));
        assert_eq!(timers.pop_due(due), Some(Timer::PeriodicAnnounce(1)));
        assert_eq!(timers.pop_due(due), None);
        assert_eq!(
            timers.pop_due(start + Duration::from_secs(1)),
            Some(Timer::ProbeRandomMember(1))
        );
        assert_eq!(timers.next_at(), None);
    }
}
