//! Machines outside the cluster that hold a pool address (design 0003, "Conflicts on the
//! wire"): what a speaker concludes from another MAC claiming an address, how long it keeps
//! the cluster off it, and when it looks again. Pure: times are offsets from any fixed origin
//! the caller chooses.
//!
//! - A claim while probing (the outside machine answered the probe before the first
//!   announcement) is a conflict at once: the address was never announced.
//! - A claim of an address already announced is defended once (the responder's burst wins
//!   the caches back, RFC 5227 §2.4 (b)); a second claim within [`DEFEND_INTERVAL`] means the
//!   machine keeps the address, and a host that cannot defend stops using it: a conflict.
//!   Two MACs answering one address forever is worse for the Service's clients than none.
//! - A conflict is held (gossiped: the whole cluster stays off the address) for [`REPROBE`];
//!   then the speaker probes again, still holding it in its gossip so that nothing
//!   flickers for the controller: answered, it is held for another period; unanswered (the
//!   machine is gone), the address is announced and the conflict is over. It is over, too,
//!   when the address is no longer a Service's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

/// At most this many conflicts are kept (the newest): a speaker's state travels in one
/// gossip datagram of at most 1400 bytes, and one conflict takes up to 40 of them.
pub const MAX_CONFLICTS: usize = 16;

/// How long a conflict is held before the speaker probes the address again.
pub const REPROBE: Duration = Duration::from_secs(30);

/// Within this of a defended claim, a second claim is a conflict (RFC 5227's DEFEND_INTERVAL;
/// the responder defends at most once per this long).
pub const DEFEND_INTERVAL: Duration = Duration::from_secs(10);

/// How long a probe again may take before the conflict is dropped anyway (the probe takes
/// about a second; a speaker that cannot probe, say its interface went away, must not hold
/// the address forever).
pub const REPROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What to do about another MAC claiming an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep the address and answer the claim with a burst (the responder does).
    Defend,
    /// The outside machine holds it: the cluster stays off it.
    Conflict,
}

/// One address held by a machine outside the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub address: IpAddr,
    /// The interface it was seen on.
    pub interface: String,
    pub mac: [u8; 6],
    /// When it was (last) found.
    pub since: Duration,
    /// Being probed again since then: still gossiped, but this speaker may own it meanwhile.
    pub reprobing: Option<Duration>,
}

/// A speaker's conflicts with machines outside the cluster, and the claims it defended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conflicts {
    held: BTreeMap<IpAddr, Held>,
    /// The last claim defended, per address.
    defended: BTreeMap<IpAddr, Duration>,
}

impl Conflicts {
    /// A MAC outside the cluster claimed `address` on `interface` at `now`, while this speaker
    /// probed it or after it announced it.
    pub fn claimed(
        &mut self,
        address: IpAddr,
        interface: &str,
        mac: [u8; 6],
        while_probing: bool,
        now: Duration,
    ) -> Verdict {
        let again = (self.defended.get(&address)).is_some_and(|at| now < *at + DEFEND_INTERVAL);
        if !while_probing && !again {
            self.defended.insert(address, now);
            return Verdict::Defend;
        }
        self.defended.remove(&address);
        let held = Held {
            address,
            interface: interface.to_owned(),
            mac,
            since: now,
            reprobing: None,
        };
        self.held.insert(address, held);
        while self.held.len() > MAX_CONFLICTS {
            let oldest = (self.held.values())
                .min_by_key(|h| (h.since, h.address))
                .map(|h| h.address)
                .expect("a map longer than the bound is not empty");
            self.held.remove(&oldest);
        }
        Verdict::Conflict
    }

    /// The probe again of `address` went unanswered: it was announced, the conflict is over.
    /// True when there was one.
    pub fn announced(&mut self, address: IpAddr) -> bool {
        self.held.remove(&address).is_some()
    }

    /// The conflicts with `mac` were not conflicts: it turned out to be a speaker's (this
    /// speaker did not know it yet). Returns their addresses.
    pub fn not_outside(&mut self, mac: [u8; 6]) -> Vec<IpAddr> {
        let addresses: Vec<IpAddr> = (self.held.values())
            .filter(|h| h.mac == mac)
            .map(|h| h.address)
            .collect();
        for address in &addresses {
            self.held.remove(address);
        }
        addresses
    }

    /// Moves on at `now`: conflicts held for [`REPROBE`] are probed again, those probed for
    /// [`REPROBE_TIMEOUT`] without an answer either way and those of addresses no longer
    /// `planned` are over, defended claims older than [`DEFEND_INTERVAL`] are forgotten. True
    /// when a conflict changed.
    pub fn advance(&mut self, now: Duration, planned: &BTreeSet<IpAddr>) -> bool {
        let before = self.held.clone();
        self.held.retain(|address, h| {
            planned.contains(address) && h.reprobing.is_none_or(|at| now < at + REPROBE_TIMEOUT)
        });
        for held in self.held.values_mut() {
            if held.reprobing.is_none() && now >= held.since + REPROBE {
                held.reprobing = Some(now);
            }
        }
        self.defended.retain(|_, at| now < *at + DEFEND_INTERVAL);
        self.held != before
    }

    /// When [`Conflicts::advance`] has something to do next.
    pub fn next_change(&self) -> Option<Duration> {
        let held = (self.held.values()).map(|h| match h.reprobing {
            None => h.since + REPROBE,
            Some(at) => at + REPROBE_TIMEOUT,
        });
        let defended = (self.defended.values()).map(|at| *at + DEFEND_INTERVAL);
        held.chain(defended).min()
    }

    /// Every conflict, the newest first.
    pub fn held(&self) -> Vec<&Held> {
        let mut held: Vec<&Held> = self.held.values().collect();
        held.sort_by_key(|h| (std::cmp::Reverse(h.since), h.address));
        held
    }

    /// The addresses this speaker keeps itself off (not those it is probing again).
    pub fn holding_back(&self) -> BTreeSet<IpAddr> {
        (self.held.values())
            .filter(|h| h.reprobing.is_none())
            .map(|h| h.address)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x99];

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn planned(addresses: &[&str]) -> BTreeSet<IpAddr> {
        addresses.iter().map(|a| ip(a)).collect()
    }

    #[test]
    fn an_answered_probe_is_a_conflict_at_once() {
        let mut conflicts = Conflicts::default();
        let verdict = conflicts.claimed(ip("192.0.2.100"), "eth0", MAC, true, secs(1));
        assert_eq!(verdict, Verdict::Conflict);
        assert_eq!(conflicts.holding_back(), planned(&["192.0.2.100"]));
        let held = conflicts.held();
        assert_eq!((held[0].interface.as_str(), held[0].mac), ("eth0", MAC));
    }

    #[test]
    fn an_announced_address_is_defended_once_and_given_up_on_a_second_claim_within_the_interval() {
        let mut conflicts = Conflicts::default();
        let address = ip("2001:db8::100");
        assert_eq!(
            conflicts.claimed(address, "eth0", MAC, false, secs(100)),
            Verdict::Defend
        );
        assert!(conflicts.holding_back().is_empty());
        assert_eq!(conflicts.next_change(), Some(secs(110)));
        // Long after: a one-off claim again, defended again.
        conflicts.advance(secs(111), &planned(&["2001:db8::100"]));
        assert_eq!(
            conflicts.claimed(address, "eth0", MAC, false, secs(111)),
            Verdict::Defend
        );
        // The machine insists within the interval: it holds the address.
        assert_eq!(
            conflicts.claimed(address, "eth0", MAC, false, secs(115)),
            Verdict::Conflict
        );
        assert_eq!(conflicts.holding_back(), planned(&["2001:db8::100"]));
    }

    #[test]
    fn a_conflict_is_probed_again_after_the_period_and_over_when_that_probe_goes_unanswered() {
        let mut conflicts = Conflicts::default();
        let address = ip("192.0.2.100");
        let all = planned(&["192.0.2.100"]);
        conflicts.claimed(address, "eth0", MAC, true, secs(0));
        assert_eq!(conflicts.next_change(), Some(REPROBE));
        assert!(!conflicts.advance(REPROBE - secs(1), &all));
        assert!(conflicts.advance(REPROBE, &all));
        // Still held (and gossiped), but no longer kept back from this speaker's own plan.
        assert_eq!(conflicts.held().len(), 1);
        assert!(conflicts.holding_back().is_empty());
        // Answered again: held for another period.
        conflicts.claimed(address, "eth0", MAC, true, REPROBE + secs(1));
        assert_eq!(conflicts.holding_back(), all);
        assert_eq!(conflicts.next_change(), Some(REPROBE * 2 + secs(1)));
        conflicts.advance(REPROBE * 2 + secs(1), &all);
        // Unanswered: announced, over.
        assert!(conflicts.announced(address));
        assert!(conflicts.held().is_empty() && conflicts.next_change().is_none());
    }

    #[test]
    fn a_probe_again_that_never_ends_and_an_address_no_service_holds_end_the_conflict() {
        let mut conflicts = Conflicts::default();
        conflicts.claimed(ip("192.0.2.100"), "eth0", MAC, true, secs(0));
        conflicts.claimed(ip("192.0.2.101"), "eth0", MAC, true, secs(0));
        let both = planned(&["192.0.2.100", "192.0.2.101"]);
        conflicts.advance(REPROBE, &both);
        assert!(!conflicts.advance(REPROBE + REPROBE_TIMEOUT - secs(1), &both));
        assert!(conflicts.advance(REPROBE + REPROBE_TIMEOUT, &both));
        assert!(conflicts.held().is_empty());
        conflicts.claimed(ip("192.0.2.100"), "eth0", MAC, true, secs(100));
        assert!(conflicts.advance(secs(101), &planned(&["192.0.2.101"])));
        assert!(conflicts.held().is_empty());
    }

    #[test]
    fn only_the_newest_conflicts_are_kept() {
        let mut conflicts = Conflicts::default();
        for i in 0..20u64 {
            let address = IpAddr::from([192, 0, 2, 100 + u8::try_from(i).unwrap()]);
            conflicts.claimed(address, "eth0", MAC, true, secs(i));
        }
        let held = conflicts.held();
        assert_eq!(held.len(), MAX_CONFLICTS);
        assert_eq!(held[0].address, ip("192.0.2.119"));
        assert_eq!(held[MAX_CONFLICTS - 1].address, ip("192.0.2.104"));
    }

    #[test]
    fn a_mac_that_turns_out_to_be_a_speakers_was_no_conflict() {
        let mut conflicts = Conflicts::default();
        let speaker = [2, 0, 0, 0, 0, 1];
        conflicts.claimed(ip("192.0.2.100"), "eth0", speaker, true, secs(0));
        conflicts.claimed(ip("192.0.2.101"), "eth0", MAC, true, secs(0));
        assert_eq!(conflicts.not_outside(speaker), [ip("192.0.2.100")]);
        assert_eq!(conflicts.holding_back(), planned(&["192.0.2.101"]));
    }
}
