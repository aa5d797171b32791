//! Who a speaker is in SWIM: its node, its gossip address and the generation of its life there.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A speaker's identity in foca. foca keeps one member per gossip address ([`Self::addr`]); a
/// speaker that restarts, or that the others declared down, comes back with a higher
/// generation, which replaces the old identity everywhere instead of waiting for it to be
/// forgotten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Speaker {
    pub(super) node: String,
    pub(super) addr: SocketAddr,
    /// Milliseconds since the Unix epoch when the process started, plus one per renewal.
    pub(super) generation: u64,
}

impl Speaker {
    /// The stand-in for a seed whose identity we do not know yet: foca accepts an announce to
    /// any identity at the receiver's address.
    pub(super) fn seed(addr: SocketAddr) -> Self {
        Self {
            node: String::new(),
            addr,
            generation: 0,
        }
    }
}

impl foca::Identity for Speaker {
    type Addr = SocketAddr;

    /// After being declared down, rejoin at once as the next generation.
    fn renew(&self) -> Option<Self> {
        Some(Self {
            node: self.node.clone(),
            addr: self.addr,
            generation: self.generation.checked_add(1)?,
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Two identities at one gossip address are two lives of the speaker on that node (a
    /// restart, a renewal), or a new node that took over the address of a departed one: in
    /// both cases the later generation is the one running now, so it wins. foca requires a
    /// renewed identity to win over the one it renews, which `generation + 1` does. Equal
    /// generations at one address cannot both be running (one address binds once); the node
    /// name breaks that tie only so that every member decides the same.
    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.generation, &self.node) > (adversary.generation, &adversary.node)
    }
}

#[cfg(test)]
mod tests {
    use foca::Identity as _;

    use super::*;

    fn speaker(node: &str, generation: u64) -> Speaker {
        Speaker {
            node: node.to_owned(),
            addr: "192.0.2.1:7947".parse().unwrap(),
            generation,
        }
    }

    #[test]
    fn a_renewed_identity_wins_over_the_one_it_renews() {
        let old = speaker("a", 10);
        let renewed = old.renew().unwrap();
        assert_eq!(renewed.generation, 11);
        assert!(renewed.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&renewed));
    }

    #[test]
    fn a_later_process_at_the_same_address_wins_whatever_its_name() {
        assert!(speaker("a", 20).win_addr_conflict(&speaker("b", 10)));
        assert!(!speaker("b", 10).win_addr_conflict(&speaker("a", 20)));
    }
}
