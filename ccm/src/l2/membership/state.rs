//! Each speaker's own state (ready, settling, leaving, its interfaces), gossiped as foca custom
//! broadcasts: the latest (generation, version) of each node wins.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use baremetal_ccm_core::l2::election::Interface;
use serde::{Deserialize, Serialize};

use super::identity::Speaker;
use super::wire::{DecodeError, decode_exactly};

/// What a speaker says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemberState {
    /// The speaker can answer for addresses.
    pub(crate) ready: bool,
    /// Just joined or rejoined: owns an address only when no settled node can.
    pub(crate) settling: bool,
    /// Shutting down: its successors take over.
    pub(crate) leaving: bool,
    /// Its node's interfaces, as the election reads them.
    pub(crate) interfaces: Vec<Interface>,
    /// Addresses it found held by a machine outside the cluster (it answered the probe before
    /// the first announcement, or claimed the address on the wire): not announced by this
    /// speaker; the controller reports them on the Service (`AddressConflict`).
    pub(crate) conflicts: Vec<Conflict>,
    /// The host problems its checks found (`l2::host::Problem` labels); the controller
    /// reports them as an Event on the Node.
    pub(crate) host_problems: Vec<String>,
}

/// An address and the outside machine that holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Conflict {
    pub(crate) address: IpAddr,
    /// The interface it was seen on.
    pub(crate) interface: String,
    /// The other machine's MAC.
    pub(crate) mac: [u8; 6],
}

/// A state as it travels: whose, and how recent. A restarted speaker starts its versions
/// again from 1, so the generation of its identity comes first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Announcement {
    pub(super) node: String,
    pub(super) generation: u64,
    pub(super) version: u64,
    pub(super) state: MemberState,
}

impl Announcement {
    pub(super) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encodes an Announcement into a Vec")
    }

    fn rank(&self) -> (u64, u64) {
        (self.generation, self.version)
    }
}

/// The latest state heard of each node, ours included.
#[derive(Debug)]
pub(super) struct Book {
    own: String,
    states: BTreeMap<String, Announcement>,
}

impl Book {
    pub(super) fn new(own: String) -> Self {
        Self {
            own,
            states: BTreeMap::new(),
        }
    }

    pub(super) fn state(&self, node: &str) -> Option<&MemberState> {
        self.states.get(node).map(|a| &a.state)
    }

    /// Keeps `announcement` if it is news; says whether it was. Only we speak for ourselves:
    /// our own state is taken only from us (`own`), never back from the others, who may
    /// still relay a previous life's.
    pub(super) fn accept(&mut self, announcement: Announcement, own: bool) -> bool {
        if (announcement.node == self.own) != own {
            return false;
        }
        let newer = self
            .states
            .get(&announcement.node)
            .is_none_or(|known| announcement.rank() > known.rank());
        // Our own is re-broadcast periodically with the same version: it is news each time.
        if newer || own {
            self.states.insert(announcement.node.clone(), announcement);
        }
        newer || own
    }

    /// Forgets the state of a node foca has forgotten.
    pub(super) fn forget(&mut self, node: &str) {
        if node != self.own {
            self.states.remove(node);
        }
    }
}

/// The book, shared between foca's broadcast handler and the task that drives foca (foca
/// owns its handler and lends it to no one). Both live on the one membership task, so the
/// lock is never contended.
#[derive(Debug, Clone)]
pub(super) struct SharedBook(Arc<Mutex<Book>>);

impl SharedBook {
    pub(super) fn new(own: String) -> Self {
        Self(Arc::new(Mutex::new(Book::new(own))))
    }

    /// A panic while holding the lock leaves the book as consistent as any single insert,
    /// so a poisoned lock is used as it is.
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut Book) -> R) -> R {
        let mut book = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut book)
    }
}

/// What foca keeps disseminating: one entry per node, a newer one replaces an older one.
#[derive(Debug)]
pub(super) struct Key {
    node: String,
    rank: (u64, u64),
}

impl foca::Invalidates for Key {
    fn invalidates(&self, other: &Self) -> bool {
        self.node == other.node && self.rank >= other.rank
    }
}

/// foca's custom broadcast handler over the shared book.
#[derive(Debug)]
pub(super) struct Handler {
    pub(super) book: SharedBook,
}

impl foca::BroadcastHandler<Speaker> for Handler {
    type Key = Key;
    type Error = DecodeError;

    /// `sender` is `None` for what we add ourselves, which is only ever our own state.
    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&Speaker>,
    ) -> Result<Option<Key>, DecodeError> {
        let announcement: Announcement = decode_exactly(data)?;
        let key = Key {
            node: announcement.node.clone(),
            rank: announcement.rank(),
        };
        let news = self
            .book
            .with(|book| book.accept(announcement, sender.is_none()));
        Ok(news.then_some(key))
    }
}

#[cfg(test)]
mod tests {
    use foca::BroadcastHandler as _;

    use super::*;

    fn announcement(node: &str, generation: u64, version: u64, ready: bool) -> Announcement {
        Announcement {
            node: node.to_owned(),
            generation,
            version,
            state: MemberState {
                ready,
                ..MemberState::default()
            },
        }
    }

    fn handler() -> Handler {
        Handler {
            book: SharedBook::new("self".to_owned()),
        }
    }

    fn sender() -> Speaker {
        Speaker::seed("192.0.2.9:7947".parse().unwrap())
    }

    fn ready(handler: &Handler, node: &str) -> Option<bool> {
        handler.book.with(|b| b.state(node).map(|s| s.ready))
    }

    #[test]
    fn a_newer_version_replaces_an_older_one_and_an_older_one_is_no_news() {
        let mut handler = handler();
        let from = Some(&sender());
        let first = announcement("a", 1, 1, false).encode();
        let second = announcement("a", 1, 2, true).encode();
        assert!(handler.receive_item(&first, from).unwrap().is_some());
        assert!(handler.receive_item(&second, from).unwrap().is_some());
        assert_eq!(ready(&handler, "a"), Some(true));
        assert!(handler.receive_item(&first, from).unwrap().is_none());
        assert!(handler.receive_item(&second, from).unwrap().is_none());
        assert_eq!(ready(&handler, "a"), Some(true));
    }

    #[test]
    fn a_restarted_speakers_first_version_wins_over_its_previous_lifes_last() {
        let mut handler = handler();
        let from = Some(&sender());
        let old = announcement("a", 1, 57, true).encode();
        let restarted = announcement("a", 2, 1, false).encode();
        assert!(handler.receive_item(&old, from).unwrap().is_some());
        assert!(handler.receive_item(&restarted, from).unwrap().is_some());
        assert_eq!(ready(&handler, "a"), Some(false));
    }

    #[test]
    fn our_own_state_comes_only_from_us_and_is_news_every_time() {
        let mut handler = handler();
        let ours = announcement("self", 1, 1, true).encode();
        assert!(handler.receive_item(&ours, None).unwrap().is_some());
        assert!(handler.receive_item(&ours, None).unwrap().is_some());
        let relayed = announcement("self", 1, 9, false).encode();
        assert!(
            handler
                .receive_item(&relayed, Some(&sender()))
                .unwrap()
                .is_none()
        );
        assert_eq!(ready(&handler, "self"), Some(true));
    }

    #[test]
    fn garbage_is_an_error_not_a_state() {
        let mut handler = handler();
        assert!(handler.receive_item(&[0xff; 3], Some(&sender())).is_err());
        let mut longer = announcement("a", 1, 1, true).encode();
        longer.push(0);
        assert!(handler.receive_item(&longer, Some(&sender())).is_err());
        assert_eq!(ready(&handler, "a"), None);
    }

    #[test]
    fn a_state_with_the_most_conflicts_kept_fits_a_gossip_datagram_with_room_to_spare() {
        use baremetal_ccm_core::l2::conflict::MAX_CONFLICTS;
        let interface = |name: &str| Interface {
            name: name.to_owned(),
            up: true,
            mac: [2, 0, 0, 0, 0, 1],
            addresses: vec![
                "192.0.2.11/24".parse().unwrap(),
                "2001:db8:aaaa:bbbb::11/64".parse().unwrap(),
            ],
        };
        let conflicts = (0..MAX_CONFLICTS)
            .map(|i| Conflict {
                address: IpAddr::from(std::net::Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0xaaaa,
                    0xbbbb,
                    0xcccc,
                    0xdddd,
                    0xeeee,
                    u16::try_from(i).unwrap(),
                )),
                interface: "enp129s0f1.4094".to_owned(),
                mac: [2, 0, 0, 0, 0, 0x99],
            })
            .collect();
        let mut state = announcement("node-with-a-rather-long-name-0042", 1, 1, true);
        state.state.interfaces = ["eth0", "eth1", "bond0.100", "vlan4094"]
            .map(interface)
            .into();
        state.state.conflicts = conflicts;
        // foca's packets are at most 1400 bytes, its own header and the tag included.
        let len = state.encode().len();
        assert!(len < 1_000, "{len} bytes");
    }

    #[test]
    fn a_newer_key_invalidates_an_older_one_of_the_same_node_only() {
        use foca::Invalidates as _;
        let key = |node: &str, version| Key {
            node: node.to_owned(),
            rank: (1, version),
        };
        assert!(key("a", 2).invalidates(&key("a", 1)));
        assert!(!key("a", 1).invalidates(&key("a", 2)));
        assert!(!key("a", 2).invalidates(&key("b", 1)));
    }
}
