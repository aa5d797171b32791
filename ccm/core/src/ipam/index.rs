//! The free-address index of one family: held addresses as merged intervals, so that "the first
//! free address in `start..=end`" costs a few B-tree look-ups however many addresses are held.
//!
//! IPv4 keeps a second, "bridged" interval set for pools with `avoidBuggyIPs`: intervals are
//! also merged across gaps made only of `.0`/`.255` addresses, so that a full pool that skips
//! them is still crossed in one jump rather than one per /24.

use std::collections::BTreeMap;

use super::range::{self, Family, Span};

/// Disjoint inclusive intervals, keyed by start. Both ends of every interval are held addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Intervals {
    by_start: BTreeMap<u128, u128>,
}

impl Intervals {
    fn containing(&self, value: u128) -> Option<Span> {
        let (&start, &end) = self.by_start.range(..=value).next_back()?;
        (value <= end).then_some(Span { start, end })
    }

    /// The last interval starting before `value`.
    fn before(&self, value: u128) -> Option<Span> {
        let (&start, &end) = self.by_start.range(..value).next_back()?;
        Some(Span { start, end })
    }

    /// The first interval starting after `value`.
    fn after(&self, value: u128) -> Option<Span> {
        let next = value.checked_add(1)?;
        let (&start, &end) = self.by_start.range(next..).next()?;
        Some(Span { start, end })
    }

    /// Adds `value`, merging with neighbours that `joinable(left_end, right_start)` allows.
    fn insert(&mut self, value: u128, joinable: impl Fn(u128, u128) -> bool) {
        if self.containing(value).is_some() {
            return;
        }
        let mut merged = Span {
            start: value,
            end: value,
        };
        if let Some(left) = self.before(value).filter(|l| joinable(l.end, value)) {
            merged.start = left.start;
        }
        if let Some(right) = self.after(value).filter(|r| joinable(value, r.start)) {
            self.by_start.remove(&right.start);
            merged.end = right.end;
        }
        self.by_start.insert(merged.start, merged.end);
    }

    /// Iterates the intervals that meet `span`, clipped to it.
    fn clipped(&self, span: Span) -> impl Iterator<Item = Span> + '_ {
        let first = self.containing(span.start).map_or(span.start, |s| s.start);
        self.by_start
            .range(first..=span.end)
            .filter_map(move |(&start, &end)| Span { start, end }.intersect(span))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_start.len()
    }
}

/// Whether every address strictly between `left` and `right` ends in `.0` or `.255`.
fn only_buggy_between(left: u128, right: u128) -> bool {
    right <= left + 1 || range::count(Family::V4, left + 1, right - 1, true) == 0
}

fn adjacent(left: u128, right: u128) -> bool {
    right <= left + 1
}

/// Held addresses of one family, for finding free ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FreeIndex {
    exact: Intervals,
    /// IPv4 only: held addresses merged across `.0`/`.255`-only gaps.
    bridged: Option<Intervals>,
}

impl FreeIndex {
    pub(crate) fn new(family: Family) -> FreeIndex {
        FreeIndex {
            exact: Intervals::default(),
            bridged: (family == Family::V4).then(Intervals::default),
        }
    }

    #[cfg(test)]
    pub(crate) fn is_held(&self, value: u128) -> bool {
        self.exact.containing(value).is_some()
    }

    /// Records `value` as held.
    pub(crate) fn hold(&mut self, value: u128) {
        self.exact.insert(value, adjacent);
        if let Some(bridged) = &mut self.bridged {
            bridged.insert(value, only_buggy_between);
        }
    }

    /// Records `value` as free again. No-op when it was not held.
    pub(crate) fn free(&mut self, value: u128) {
        let Some(span) = self.exact.containing(value) else {
            return;
        };
        self.exact.by_start.remove(&span.start);
        if span.start < value {
            self.exact.by_start.insert(span.start, value - 1);
        }
        if value < span.end {
            self.exact.by_start.insert(value + 1, span.end);
        }
        if let Some(bridged) = &mut self.bridged {
            Self::unbridge(&self.exact, bridged, value);
        }
    }

    /// Removes freed `value` from the bridged set: the interval holding it splits at the held
    /// addresses on either side, unless only `.0`/`.255` addresses separate them.
    fn unbridge(exact: &Intervals, bridged: &mut Intervals, value: u128) {
        let Some(span) = bridged.containing(value) else {
            return;
        };
        let previous = exact
            .before(value)
            .map(|s| s.end)
            .filter(|&p| p >= span.start);
        let next = exact
            .after(value)
            .map(|s| s.start)
            .filter(|&n| n <= span.end);
        if let (Some(p), Some(n)) = (previous, next)
            && only_buggy_between(p, n)
        {
            return;
        }
        bridged.by_start.remove(&span.start);
        if let Some(p) = previous {
            bridged.by_start.insert(span.start, p);
        }
        if let Some(n) = next {
            bridged.by_start.insert(n, span.end);
        }
    }

    /// The lowest free address in `span`, skipping `.0`/`.255` when `avoid_buggy` (IPv4).
    pub(crate) fn first_free(&self, span: Span, avoid_buggy: bool) -> Option<u128> {
        let intervals = match (&self.bridged, avoid_buggy) {
            (Some(bridged), true) => bridged,
            _ => &self.exact,
        };
        let skip_buggy = avoid_buggy && self.bridged.is_some();
        let mut candidate = span.start;
        // A held address lies inside an interval of either set, and an interval's successor is
        // neither held nor (bridged) separated from the next interval by `.0`/`.255` only: the
        // loop turns at most three times.
        loop {
            if candidate > span.end {
                return None;
            }
            if let Some(held) = intervals.containing(candidate) {
                candidate = held.end.checked_add(1)?;
            } else if skip_buggy && range::is_buggy_v4(candidate) {
                candidate += if candidate & 0xff == 0 { 1 } else { 2 };
            } else {
                return Some(candidate);
            }
        }
    }

    /// Number of held addresses in `span`, counting only non-`.0`/`.255` ones when
    /// `avoid_buggy`.
    pub(crate) fn held_in(&self, family: Family, span: Span, avoid_buggy: bool) -> u128 {
        self.exact
            .clipped(span)
            .map(|s| range::count(family, s.start, s.end, avoid_buggy))
            .fold(0, u128::saturating_add)
    }

    /// Number of intervals kept (exact, bridged).
    #[cfg(test)]
    pub(crate) fn interval_counts(&self) -> (usize, usize) {
        (
            self.exact.len(),
            self.bridged.as_ref().map_or(0, Intervals::len),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn span(start: u128, end: u128) -> Span {
        Span { start, end }
    }

    fn naive_first_free(held: &BTreeSet<u128>, s: Span, avoid: bool) -> Option<u128> {
        (s.start..=s.end).find(|v| !(held.contains(v) || avoid && range::is_buggy_v4(*v)))
    }

    #[test]
    fn contiguous_holds_collapse_into_one_interval() {
        let mut index = FreeIndex::new(Family::V6);
        for v in 0..100_000u128 {
            index.hold(v);
        }
        assert_eq!(index.interval_counts(), (1, 0));
        assert_eq!(index.first_free(span(0, u128::MAX), false), Some(100_000));
        index.free(500);
        assert_eq!(index.interval_counts(), (2, 0));
        assert_eq!(index.first_free(span(0, u128::MAX), false), Some(500));
        assert_eq!(index.held_in(Family::V6, span(0, 999), false), 999);
    }

    #[test]
    fn a_full_pool_that_avoids_buggy_ips_is_crossed_in_one_jump() {
        let mut index = FreeIndex::new(Family::V4);
        let pool = span(0x0a00_0000, 0x0a00_ffff);
        for v in pool.start..=pool.end {
            if !range::is_buggy_v4(v) {
                index.hold(v);
            }
        }
        assert_eq!(index.interval_counts(), (256, 1));
        assert_eq!(index.first_free(pool, true), None);
        assert_eq!(index.first_free(pool, false), Some(0x0a00_0000));
        index.free(0x0a00_1234);
        assert_eq!(index.interval_counts(), (257, 2));
        assert_eq!(index.first_free(pool, true), Some(0x0a00_1234));
        index.hold(0x0a00_1234);
        assert_eq!(index.interval_counts(), (256, 1));
    }

    #[test]
    fn the_top_of_the_address_space_is_handled() {
        let mut index = FreeIndex::new(Family::V6);
        index.hold(u128::MAX);
        assert_eq!(index.first_free(span(u128::MAX, u128::MAX), false), None);
        index.free(u128::MAX);
        assert_eq!(
            index.first_free(span(u128::MAX, u128::MAX), false),
            Some(u128::MAX)
        );
        let mut v4 = FreeIndex::new(Family::V4);
        v4.hold(u128::from(u32::MAX) - 1);
        let top = span(u128::from(u32::MAX) - 1, u128::from(u32::MAX));
        assert_eq!(v4.first_free(top, true), None);
        assert_eq!(v4.first_free(top, false), Some(u128::from(u32::MAX)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The index answers like a set of held addresses scanned linearly, in a small IPv4
        /// window spanning two `.255`/`.0` boundaries.
        #[test]
        fn the_index_agrees_with_a_linear_scan(
            ops in prop::collection::vec(
                (any::<bool>(), prop_oneof![0u128..600, 12u128..20, 268u128..276]),
                1..200,
            ),
            queries in prop::collection::vec((0u128..600, 0u128..600, any::<bool>()), 1..20),
        ) {
            let base = 0x0a00_00f0u128;
            let mut index = FreeIndex::new(Family::V4);
            let mut held = BTreeSet::new();
            for (hold, offset) in ops {
                let v = base + offset;
                if hold {
                    index.hold(v);
                    held.insert(v);
                } else {
                    index.free(v);
                    held.remove(&v);
                }
                for v in [v.saturating_sub(3), v, v + 3] {
                    prop_assert_eq!(index.is_held(v), held.contains(&v));
                }
            }
            let mut canonical = FreeIndex::new(Family::V4);
            for v in &held {
                canonical.hold(*v);
            }
            prop_assert_eq!(&index, &canonical, "the intervals are merged as far as they can be");
            for (a, b, avoid) in queries {
                let s = span(base + a.min(b), base + a.max(b));
                prop_assert_eq!(index.first_free(s, avoid), naive_first_free(&held, s, avoid));
                let naive_count = (s.start..=s.end)
                    .filter(|v| held.contains(v) && !(avoid && range::is_buggy_v4(*v)))
                    .count() as u128;
                prop_assert_eq!(index.held_in(Family::V4, s, avoid), naive_count);
            }
        }
    }
}
