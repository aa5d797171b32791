//! Two session-lifecycle rules converge applies around the plan, both because of how routers
//! other than gobgpd behave (design 0002):
//!
//! - **BFD only while Established.** FRR re-creates its BFD session when the BGP session comes
//!   up or goes down; gobgpd 4.8.0 takes the old session's AdminDown (or Down) as a failure
//!   and hard-resets the BGP session it belongs to. So a peer's BFD is configured in gobgpd
//!   only once its session is Established (in place, no reset), and removed while it is not:
//!   BFD guards an established session, which is the only time it has anything to protect.
//! - **Stale-path sweep after a fresh start.** A restarted gobgpd allocates new ADD-PATH
//!   identifiers; a graceful-restart router keeps the old ones as stale until End-of-RIB, and
//!   FRR up to 10.x clears only one stale path per prefix per End-of-RIB (FRRouting/frr#17372).
//!   gobgpd sends an End-of-RIB after every soft reset out of a graceful-restart peer, so once
//!   such a session is Established with ADD-PATH, `send-max − 1` more soft resets clear every
//!   stale path the router can hold (it never holds more than send-max paths of a prefix).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use gobgp_api_proto::api;

use baremetal_ccm_core::announce::gobgp::SessionState;

use super::status::peer_status;
use super::{Client, GobgpError, request};
use crate::announce::desired::DesiredDaemon;

/// `desired` with BFD removed from every peer whose session is not Established in
/// `listed` (borrowed unchanged when there is none).
pub(super) fn bfd_while_established<'a>(
    desired: &'a DesiredDaemon,
    listed: &BTreeMap<IpAddr, api::Peer>,
) -> Cow<'a, DesiredDaemon> {
    let established = |address: &IpAddr| {
        listed.get(address).is_some_and(|peer| {
            peer_status(peer, *address, None).session == SessionState::Established
        })
    };
    let held_back: Vec<IpAddr> = (desired.peers.iter())
        .filter(|(address, peer)| peer.bfd.is_some() && !established(address))
        .map(|(address, _)| *address)
        .collect();
    if held_back.is_empty() {
        return Cow::Borrowed(desired);
    }
    let mut adjusted = desired.clone();
    for address in held_back {
        if let Some(peer) = adjusted.peers.get_mut(&address) {
            peer.bfd = None;
        }
    }
    Cow::Owned(adjusted)
}

/// Soft resets owed to peers of a freshly started daemon, by address.
#[derive(Debug, Default)]
pub(super) struct StaleSweep {
    pending: BTreeMap<IpAddr, u8>,
}

impl StaleSweep {
    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// After a converge that started BGP: every graceful-restart peer that may send several
    /// paths per prefix is owed `send-max − 1` End-of-RIBs.
    pub(super) fn arm(&mut self, desired: &DesiredDaemon) {
        self.pending = (desired.peers.iter())
            .filter(|(_, peer)| peer.graceful_restart.is_some() && peer.add_path_send_max > 1)
            .map(|(address, peer)| (*address, peer.add_path_send_max - 1))
            .collect();
    }

    /// Issues the owed soft resets to peers that are now Established; a peer without ADD-PATH
    /// negotiated (one path per prefix: the first End-of-RIB clears it) or no longer desired
    /// owes nothing. Returns how many resets were sent.
    pub(super) async fn run(
        &mut self,
        client: &mut Client,
        desired: &DesiredDaemon,
        listed: &BTreeMap<IpAddr, api::Peer>,
    ) -> Result<usize, GobgpError> {
        self.pending
            .retain(|address, _| desired.peers.contains_key(address));
        let mut sent = 0;
        let ready: Vec<(IpAddr, u8, bool)> = (self.pending.iter())
            .filter_map(|(address, rounds)| {
                let status = peer_status(listed.get(address)?, *address, None);
                (status.session == SessionState::Established).then_some((
                    *address,
                    *rounds,
                    !status.add_path_send.is_empty(),
                ))
            })
            .collect();
        for (address, rounds, add_path) in ready {
            if add_path {
                for _ in 0..rounds {
                    client
                        .reset_peer(request(api::ResetPeerRequest {
                            address: address.to_string(),
                            communication: String::new(),
                            soft: true,
                            direction: api::reset_peer_request::Direction::Out as i32,
                        }))
                        .await
                        .map_err(|source| GobgpError::Call {
                            call: "ResetPeer",
                            source,
                        })?;
                    sent += 1;
                }
                tracing::info!(
                    peer = %address,
                    rounds,
                    "End-of-RIB repeated after a fresh start, so the router drops every stale path"
                );
            }
            self.pending.remove(&address);
        }
        Ok(sent)
    }
}
