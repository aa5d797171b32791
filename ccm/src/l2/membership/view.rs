//! The membership as the election reads it: every speaker known, by node name, with its
//! liveness and its latest state.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use foca::State;

use super::identity::Speaker;
use super::state::{Book, MemberState};

/// Every speaker this one knows of, itself included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct View {
    pub(crate) members: BTreeMap<String, Peer>,
    /// How many times this speaker, declared down by the others, rejoined as the side that
    /// had been cut off or stalled: each one starts its hold-down.
    pub(crate) returns: u64,
}

impl View {
    /// The nodes alive and not suspected by this speaker.
    #[cfg(test)]
    pub(crate) fn alive(&self) -> impl Iterator<Item = (&str, &Peer)> {
        (self.members.iter())
            .filter(|(_, p)| p.alive && !p.suspected_by_me)
            .map(|(node, peer)| (node.as_str(), peer))
    }
}

/// One speaker as this one sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peer {
    /// Not declared down by SWIM (a SWIM suspect still counts as alive until it is).
    pub(crate) alive: bool,
    /// Some member suspects it in SWIM.
    pub(crate) suspect: bool,
    /// This speaker's fast path got no answer from it, directly or through others.
    pub(crate) suspected_by_me: bool,
    /// Its gossip address.
    pub(crate) addr: SocketAddr,
    /// Its latest state; not ready, with no interface, until the first arrives.
    pub(crate) state: MemberState,
}

/// What the view is made of, read from foca, the book and the fast path.
pub(super) struct Sources<'a, M> {
    pub(super) own: &'a Speaker,
    pub(super) own_state: &'a MemberState,
    /// foca's whole membership, down members included.
    pub(super) members: M,
    pub(super) book: &'a Book,
    pub(super) suspected: BTreeSet<&'a str>,
}

impl<'a, M: Iterator<Item = &'a foca::Member<Speaker>>> Sources<'a, M> {
    pub(super) fn view(self) -> View {
        // The identity of each node that counts: an active one before a down one, then the
        // latest generation (a node whose address changed is known at both for a while).
        let mut chosen: BTreeMap<&str, &foca::Member<Speaker>> = BTreeMap::new();
        for member in self.members {
            let node = member.id().node.as_str();
            if node == self.own.node || node.is_empty() {
                continue;
            }
            let rank = |m: &foca::Member<Speaker>| (m.state() != State::Down, m.id().generation);
            let better = chosen
                .get(node)
                .is_none_or(|known| rank(member) > rank(known));
            if better {
                chosen.insert(node, member);
            }
        }
        let mut members: BTreeMap<String, Peer> = (chosen.into_iter())
            .map(|(node, member)| {
                let peer = Peer {
                    alive: member.state() != State::Down,
                    suspect: member.state() == State::Suspect,
                    suspected_by_me: self.suspected.contains(node),
                    addr: member.id().addr,
                    state: self.book.state(node).cloned().unwrap_or_default(),
                };
                (node.to_owned(), peer)
            })
            .collect();
        let own = Peer {
            alive: true,
            suspect: false,
            suspected_by_me: false,
            addr: self.own.addr,
            state: self.own_state.clone(),
        };
        members.insert(self.own.node.clone(), own);
        View {
            members,
            returns: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use foca::{Incarnation, Member};

    use super::*;

    fn speaker(node: &str, last: u8, generation: u64) -> Speaker {
        Speaker {
            node: node.to_owned(),
            addr: SocketAddr::from(([192, 0, 2, last], 7947)),
            generation,
        }
    }

    fn member(id: Speaker, state: State) -> Member<Speaker> {
        Member::new(id, Incarnation::default(), state)
    }

    #[test]
    fn a_node_known_at_two_addresses_counts_by_its_active_identity() {
        let own = speaker("self", 1, 1);
        let members = [
            member(speaker("a", 2, 5), State::Alive),
            member(speaker("a", 3, 9), State::Down),
            member(speaker("b", 4, 1), State::Suspect),
            member(speaker("self", 5, 0), State::Down),
        ];
        let book = Book::new("self".to_owned());
        let view = Sources {
            own: &own,
            own_state: &MemberState::default(),
            members: members.iter(),
            book: &book,
            suspected: BTreeSet::from(["b"]),
        }
        .view();
        assert_eq!(view.members.len(), 3);
        let a = &view.members["a"];
        assert!(a.alive && !a.suspect);
        assert_eq!(a.addr, speaker("a", 2, 0).addr);
        let b = &view.members["b"];
        assert!(b.alive && b.suspect && b.suspected_by_me);
        assert_eq!(
            view.members["self"].addr, own.addr,
            "ourselves, not a past life"
        );
        let alive: Vec<&str> = view.alive().map(|(n, _)| n).collect();
        assert_eq!(alive, ["a", "self"]);
    }
}
