//! The successor fast path: this speaker probes the nodes whose addresses it succeeds every
//! 100 ms, asks two other members to probe one after three misses, and suspects it at once
//! when no one got an answer. Pure: the membership task feeds it the time and the answers and
//! sends what it asks for.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use rand::RngExt as _;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom as _;
use tokio::time::Instant;

use super::wire::Probe;

/// The fast path's timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FastPathConfig {
    /// Between two probes of one node; a probe not answered by the next one is a miss.
    pub(crate) interval: Duration,
    /// Consecutive misses before other members are asked.
    pub(crate) misses: u32,
    /// How many other members are asked.
    pub(crate) helpers: usize,
    /// How long they have to get an answer.
    pub(crate) indirect_timeout: Duration,
}

impl Default for FastPathConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
            misses: 3,
            helpers: 2,
            indirect_timeout: Duration::from_millis(100),
        }
    }
}

/// What the fast path asks of the membership task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Event {
    Send {
        to: SocketAddr,
        probe: Probe,
    },
    /// A probe of `node` went unanswered.
    Missed {
        node: String,
    },
    /// No one got an answer from `node`: `detection` after the first unanswered probe.
    Suspected {
        node: String,
        detection: Duration,
    },
    /// `node` answered again.
    Cleared {
        node: String,
    },
}

/// How many unanswered nonces a node keeps: an answer to any of them (1.6 s of probes by
/// default) still proves it alive.
const REMEMBERED_NONCES: usize = 16;

#[derive(Debug)]
struct Target {
    addr: SocketAddr,
    next_probe: Instant,
    /// Nonces of the probes (direct and indirect) not answered yet, oldest first.
    unanswered: VecDeque<u64>,
    /// When the oldest of them was sent.
    first_unanswered: Option<Instant>,
    misses: u32,
    indirect_deadline: Option<Instant>,
    suspected: bool,
}

impl Target {
    fn new(addr: SocketAddr, now: Instant) -> Self {
        Self {
            addr,
            next_probe: now,
            unanswered: VecDeque::new(),
            first_unanswered: None,
            misses: 0,
            indirect_deadline: None,
            suspected: false,
        }
    }

    fn remember(&mut self, nonce: u64, now: Instant) {
        if self.unanswered.is_empty() {
            self.first_unanswered = Some(now);
        }
        self.unanswered.push_back(nonce);
        if self.unanswered.len() > REMEMBERED_NONCES {
            self.unanswered.pop_front();
        }
    }
}

/// The nodes this speaker watches and how their probes went.
#[derive(Debug)]
pub(super) struct FastPath {
    config: FastPathConfig,
    targets: BTreeMap<String, Target>,
    rng: SmallRng,
}

impl FastPath {
    pub(super) fn new(config: FastPathConfig, rng: SmallRng) -> Self {
        Self {
            config,
            targets: BTreeMap::new(),
            rng,
        }
    }

    /// Watches exactly `wanted` (node → gossip address); a node whose address changed starts
    /// afresh.
    pub(super) fn set_targets(
        &mut self,
        wanted: &BTreeMap<String, SocketAddr>,
        now: Instant,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        self.targets.retain(|node, target| {
            let keep = wanted.get(node) == Some(&target.addr);
            if !keep && target.suspected {
                events.push(Event::Cleared { node: node.clone() });
            }
            keep
        });
        for (node, addr) in wanted {
            (self.targets.entry(node.clone())).or_insert_with(|| Target::new(*addr, now));
        }
        events
    }

    /// When [`Self::poll`] has something to do next.
    pub(super) fn next_wakeup(&self) -> Option<Instant> {
        (self.targets.values())
            .flat_map(|t| [Some(t.next_probe), t.indirect_deadline])
            .flatten()
            .min()
    }

    /// Does what is due at `now`; `helpers` are the members that may be asked to probe.
    pub(super) fn poll(&mut self, now: Instant, helpers: &[SocketAddr]) -> Vec<Event> {
        let mut events = Vec::new();
        for (node, target) in &mut self.targets {
            let mut step = Step {
                node,
                now,
                config: &self.config,
                rng: &mut self.rng,
                events: &mut events,
            };
            step.indirect_expired(target);
            step.probe_due(target, helpers);
        }
        events
    }

    /// An answer (direct or forwarded) carrying `nonce` arrived.
    pub(super) fn acknowledged(&mut self, nonce: u64) -> Option<Event> {
        let (node, target) =
            (self.targets.iter_mut()).find(|(_, t)| t.unanswered.contains(&nonce))?;
        target.unanswered.clear();
        target.first_unanswered = None;
        target.misses = 0;
        target.indirect_deadline = None;
        let was_suspected = std::mem::replace(&mut target.suspected, false);
        was_suspected.then(|| Event::Cleared { node: node.clone() })
    }

    /// The nodes suspected now.
    pub(super) fn suspected(&self) -> impl Iterator<Item = &str> {
        (self.targets.iter())
            .filter(|(_, t)| t.suspected)
            .map(|(node, _)| node.as_str())
    }
}

/// One node's turn in [`FastPath::poll`].
struct Step<'a> {
    node: &'a str,
    now: Instant,
    config: &'a FastPathConfig,
    rng: &'a mut SmallRng,
    events: &'a mut Vec<Event>,
}

impl Step<'_> {
    fn indirect_expired(&mut self, target: &mut Target) {
        let Some(deadline) = target.indirect_deadline else {
            return;
        };
        if self.now < deadline {
            return;
        }
        target.indirect_deadline = None;
        if !target.suspected {
            target.suspected = true;
            let since = target.first_unanswered.unwrap_or(deadline);
            self.events.push(Event::Suspected {
                node: self.node.to_owned(),
                detection: self.now.saturating_duration_since(since),
            });
        }
    }

    fn probe_due(&mut self, target: &mut Target, helpers: &[SocketAddr]) {
        if self.now < target.next_probe {
            return;
        }
        if !target.unanswered.is_empty() {
            target.misses = target.misses.saturating_add(1);
            self.events.push(Event::Missed {
                node: self.node.to_owned(),
            });
        }
        let ask = target.misses >= self.config.misses
            && target.indirect_deadline.is_none()
            && !target.suspected;
        if ask {
            self.ask_helpers(target, helpers);
        }
        let nonce = self.rng.random::<u64>();
        target.remember(nonce, self.now);
        self.events.push(Event::Send {
            to: target.addr,
            probe: Probe::Ping { nonce },
        });
        target.next_probe += self.config.interval;
        if target.next_probe <= self.now {
            // Late (a busy machine): probe at the interval from now rather than in a burst.
            target.next_probe = self.now + self.config.interval;
        }
    }

    fn ask_helpers(&mut self, target: &mut Target, helpers: &[SocketAddr]) {
        let mut candidates: Vec<SocketAddr> = (helpers.iter().copied())
            .filter(|h| *h != target.addr)
            .collect();
        let (chosen, _) = candidates.partial_shuffle(self.rng, self.config.helpers);
        let nonce = self.rng.random::<u64>();
        for helper in chosen.iter() {
            self.events.push(Event::Send {
                to: *helper,
                probe: Probe::PingReq {
                    nonce,
                    target: target.addr,
                },
            });
        }
        target.remember(nonce, self.now);
        // With no one to ask, the direct probes still get this long to be answered.
        target.indirect_deadline = Some(self.now + self.config.indirect_timeout);
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;

    use super::*;

    const OWNER: &str = "owner";

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 7947))
    }

    fn watching_owner(start: Instant) -> FastPath {
        let mut fast = FastPath::new(FastPathConfig::default(), SmallRng::seed_from_u64(7));
        let targets = BTreeMap::from([(OWNER.to_owned(), addr(1))]);
        assert!(fast.set_targets(&targets, start).is_empty());
        fast
    }

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    fn sent(events: &[Event]) -> Vec<(SocketAddr, Probe)> {
        (events.iter())
            .filter_map(|e| match e {
                Event::Send { to, probe } => Some((*to, probe.clone())),
                _ => None,
            })
            .collect()
    }

    fn pings(events: &[Event]) -> Vec<u64> {
        (sent(events).into_iter())
            .filter_map(|(_, p)| match p {
                Probe::Ping { nonce } => Some(nonce),
                _ => None,
            })
            .collect()
    }

    /// Polls at 0, 100, 200, 300 ms with no answer: the fourth poll sees the third miss.
    fn three_misses(fast: &mut FastPath, start: Instant, helpers: &[SocketAddr]) -> Vec<Event> {
        let mut events = Vec::new();
        for millis in [0, 100, 200, 300] {
            assert_eq!(fast.next_wakeup(), Some(at(start, millis)));
            events = fast.poll(at(start, millis), helpers);
        }
        events
    }

    #[test]
    fn an_answered_owner_is_probed_every_interval_and_never_suspected() {
        let start = Instant::now();
        let mut fast = watching_owner(start);
        for millis in (0..1000).step_by(100) {
            let events = fast.poll(at(start, millis), &[addr(2), addr(3)]);
            let nonces = pings(&events);
            assert_eq!(nonces.len(), 1, "{events:?}");
            assert_eq!(fast.acknowledged(nonces[0]), None);
        }
        assert_eq!(fast.suspected().count(), 0);
    }

    #[test]
    fn three_misses_ask_two_helpers_and_no_answer_makes_a_suspect_100_ms_later() {
        let start = Instant::now();
        let mut fast = watching_owner(start);
        let helpers = [addr(1), addr(2), addr(3), addr(4)];
        let events = three_misses(&mut fast, start, &helpers);
        let requests: Vec<_> = (sent(&events).into_iter())
            .filter(|(_, p)| matches!(p, Probe::PingReq { target, .. } if *target == addr(1)))
            .collect();
        assert_eq!(requests.len(), 2, "{events:?}");
        assert!(requests.iter().all(|(to, _)| *to != addr(1)));
        assert_eq!(fast.next_wakeup(), Some(at(start, 400)));
        let events = fast.poll(at(start, 400), &helpers);
        assert!(events.contains(&Event::Suspected {
            node: OWNER.to_owned(),
            detection: Duration::from_millis(400),
        }));
        assert_eq!(fast.suspected().collect::<Vec<_>>(), [OWNER]);
        // Still suspected later, and reported once.
        let later = fast.poll(at(start, 500), &helpers);
        assert!(!later.iter().any(|e| matches!(e, Event::Suspected { .. })));
    }

    #[test]
    fn a_forwarded_answer_within_the_timeout_prevents_the_suspicion() {
        let start = Instant::now();
        let mut fast = watching_owner(start);
        let events = three_misses(&mut fast, start, &[addr(2), addr(3)]);
        let nonce = (sent(&events).into_iter())
            .find_map(|(_, p)| match p {
                Probe::PingReq { nonce, .. } => Some(nonce),
                _ => None,
            })
            .unwrap();
        assert_eq!(fast.acknowledged(nonce), None);
        let events = fast.poll(at(start, 400), &[addr(2), addr(3)]);
        assert!(!events.iter().any(|e| matches!(e, Event::Suspected { .. })));
        assert_eq!(fast.suspected().count(), 0);
    }

    #[test]
    fn a_late_answer_to_an_old_probe_clears_the_suspicion() {
        let start = Instant::now();
        let mut fast = watching_owner(start);
        let first = pings(&fast.poll(start, &[]))[0];
        for millis in [100, 200, 300, 400] {
            fast.poll(at(start, millis), &[]);
        }
        assert_eq!(
            fast.suspected().count(),
            1,
            "no helpers: suspected all the same"
        );
        assert_eq!(
            fast.acknowledged(first),
            Some(Event::Cleared {
                node: OWNER.to_owned()
            })
        );
        assert_eq!(fast.suspected().count(), 0);
    }

    #[test]
    fn a_node_no_longer_watched_is_no_longer_suspected() {
        let start = Instant::now();
        let mut fast = watching_owner(start);
        for millis in [0, 100, 200, 300, 400] {
            fast.poll(at(start, millis), &[]);
        }
        assert_eq!(fast.suspected().count(), 1);
        let events = fast.set_targets(&BTreeMap::new(), at(start, 450));
        assert_eq!(
            events,
            [Event::Cleared {
                node: OWNER.to_owned()
            }]
        );
        assert_eq!(fast.next_wakeup(), None);
    }

    #[test]
    fn each_unanswered_probe_is_one_miss() {
        let start = Instant::now();
        let mut fast = watching_owner(start);
        let events: Vec<Event> = (0..5)
            .flat_map(|i| fast.poll(at(start, i * 100), &[]))
            .collect();
        let misses = (events.iter())
            .filter(|e| matches!(e, Event::Missed { .. }))
            .count();
        assert_eq!(misses, 4);
    }
}
