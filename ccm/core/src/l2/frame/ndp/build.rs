//! The Neighbor Discovery frames the responder sends.

use std::net::Ipv6Addr;

use super::{
    ALL_NODES, NdpMessage, NdpPacket, NeighborAdvertisement, NeighborSolicitation, Solicitor,
    multicast_mac, solicited_node,
};
use crate::l2::frame::{Ethernet, Frame, Mac, Payload};

/// The answer to a solicitation for `target` from its owner: S=1, O=1 and the Target
/// Link-Layer Address option, unicast to the solicitor; to a DAD solicitation (from `::`),
/// S=0 to all nodes (RFC 4861 §7.2.4). R=0: the address is a Service's, not a router's.
/// `source` is the IPv6 source: the responder uses the target itself, as Linux does for its own
/// addresses.
pub fn solicited_advertisement(
    our_mac: Mac,
    source: Ipv6Addr,
    target: Ipv6Addr,
    solicitor: Solicitor,
) -> Frame {
    let dad = solicitor.address.is_unspecified();
    let (destination, destination_mac) = if dad {
        (ALL_NODES, multicast_mac(ALL_NODES))
    } else {
        (solicitor.address, solicitor.mac)
    };
    advertisement(our_mac, source, destination, destination_mac, target, !dad)
}

/// An unsolicited advertisement of `target` to all nodes: S=0, O=1, the Target Link-Layer
/// Address option (RFC 4861 §7.2.6), so that neighbours replace what they cached.
pub fn unsolicited_advertisement(our_mac: Mac, source: Ipv6Addr, target: Ipv6Addr) -> Frame {
    advertisement(
        our_mac,
        source,
        ALL_NODES,
        multicast_mac(ALL_NODES),
        target,
        false,
    )
}

fn advertisement(
    our_mac: Mac,
    source: Ipv6Addr,
    destination: Ipv6Addr,
    destination_mac: Mac,
    target: Ipv6Addr,
    solicited: bool,
) -> Frame {
    let advertisement = NeighborAdvertisement {
        router: false,
        solicited,
        overrides: true,
        target,
        target_link_address: Some(our_mac),
    };
    frame(
        destination_mac,
        our_mac,
        NdpPacket {
            source,
            destination,
            message: NdpMessage::Advertisement(advertisement),
        },
    )
}

/// A Duplicate Address Detection solicitation for `target` (RFC 4862 §5.4.2): from `::` to
/// the target's solicited-node group, no Source Link-Layer Address option (§7.1.1 forbids it
/// from `::`).
pub fn dad_solicitation(our_mac: Mac, target: Ipv6Addr) -> Frame {
    let group = solicited_node(target);
    frame(
        multicast_mac(group),
        our_mac,
        NdpPacket {
            source: Ipv6Addr::UNSPECIFIED,
            destination: group,
            message: NdpMessage::Solicitation(NeighborSolicitation {
                target,
                source_link_address: None,
            }),
        },
    )
}

fn frame(destination: Mac, source: Mac, packet: NdpPacket) -> Frame {
    Frame {
        ethernet: Ethernet {
            destination,
            source,
            vlan: None,
        },
        payload: Payload::Ndp(packet),
    }
}
