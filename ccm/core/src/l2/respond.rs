//! The responder's decision for one frame read on an announcing interface (design 0003, "The
//! responder"): answer it, report another MAC claiming an address we own, or ignore it and say
//! why in a bounded reason the metrics can count. Also the frames of one gratuitous
//! announcement round and of the probe before a first announcement. Pure: the socket adapter
//! reads a frame, calls [`respond`], and sends what it returns.

use std::collections::{BTreeSet, HashSet};
use std::hash::BuildHasher;
use std::net::IpAddr;

use super::frame::ndp::{self, Solicitor};
use super::frame::{
    ArpKind, ArpOperation, ArpPacket, Ethernet, Frame, Mac, NdpMessage, NdpPacket, ParseError,
    Payload, arp,
};

/// The interface a frame was read on, as the responder needs it.
///
/// Our advertisements are sent from the address they advertise, as Linux sends its own
/// (to everyone else on the link that address is this node's), not from the interface's
/// link-local address: some tools (ndisc6) take an answer only from the address they asked
/// for, and the interface need not have IPv6 at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: Mac,
}

/// Which addresses we own on the interface a frame was read on.
pub trait Owned {
    fn owns(&self, address: IpAddr) -> bool;
}

impl<F: Fn(IpAddr) -> bool> Owned for F {
    fn owns(&self, address: IpAddr) -> bool {
        self(address)
    }
}

impl Owned for BTreeSet<IpAddr> {
    fn owns(&self, address: IpAddr) -> bool {
        self.contains(&address)
    }
}

impl<S: BuildHasher> Owned for HashSet<IpAddr, S> {
    fn owns(&self, address: IpAddr) -> bool {
        self.contains(&address)
    }
}

/// What to do with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send these bytes on the interface the frame came in on.
    Reply(Vec<u8>),
    /// Another MAC claims `address`, which we own. Whether that MAC is another speaker's
    /// (the lower-ranked one withdraws) or a stranger's (`AddressConflict`) is the caller's
    /// to decide.
    Conflict {
        address: IpAddr,
        mac: Mac,
        kind: ClaimKind,
    },
    /// Nothing to do.
    Ignore(Ignored),
}

/// How another MAC claimed an owned address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimKind {
    /// An ARP request sent from the address (RFC 5227 §2.4: any ARP packet whose sender is
    /// our address and whose sender MAC is not ours is a conflict).
    ArpRequest,
    ArpReply,
    /// A gratuitous ARP, request or reply form.
    GratuitousArp,
    NeighborAdvertisement,
}

impl ClaimKind {
    /// A metric label value.
    pub fn label(self) -> &'static str {
        match self {
            ClaimKind::ArpRequest => "arp_request",
            ClaimKind::ArpReply => "arp_reply",
            ClaimKind::GratuitousArp => "gratuitous_arp",
            ClaimKind::NeighborAdvertisement => "neighbor_advertisement",
        }
    }
}

/// Why a frame needs nothing from us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// Broken, or invalid by RFC 4861 §7.1 (a bad checksum, a hop limit other than 255…).
    Malformed(ParseError),
    /// Well formed, but not ARP for IPv4 or an NS or NA without extension headers.
    Unsupported(ParseError),
    /// The frame carries an 802.1Q tag (this VLAN id): it belongs to another VLAN than the
    /// interface's own, and answering it would announce where no pool selected.
    VlanTagged(u16),
    /// Sent from our MAC: our own frame, looped back.
    OwnFrame,
    /// A request unicast to another MAC (seen in promiscuous mode).
    OtherDestination,
    /// A request for an address we do not own.
    NotOurs,
    /// A reply or advertisement that claims nothing of ours.
    NotARequest,
}

impl Ignored {
    /// A metric label value: one per variant, never the error's text.
    pub fn label(&self) -> &'static str {
        match self {
            Ignored::Malformed(_) => "malformed",
            Ignored::Unsupported(_) => "unsupported",
            Ignored::VlanTagged(_) => "vlan_tagged",
            Ignored::OwnFrame => "own_frame",
            Ignored::OtherDestination => "other_destination",
            Ignored::NotOurs => "not_ours",
            Ignored::NotARequest => "not_a_request",
        }
    }
}

/// What to do with `bytes`, read on `interface`.
pub fn respond(bytes: &[u8], interface: &Interface, owned: &impl Owned) -> Decision {
    match Frame::parse(bytes) {
        Ok(frame) => decide(&frame, interface, owned),
        Err(error) if error.is_unsupported() => Decision::Ignore(Ignored::Unsupported(error)),
        Err(error) => Decision::Ignore(Ignored::Malformed(error)),
    }
}

/// What to do with a parsed `frame`, read on `interface`. A claim on an owned address is
/// looked for first, whatever the frame's destination: evidence of a conflict counts wherever
/// it was addressed.
pub fn decide(frame: &Frame, interface: &Interface, owned: &impl Owned) -> Decision {
    if let Some(tag) = frame.ethernet.vlan {
        return Decision::Ignore(Ignored::VlanTagged(tag.id));
    }
    if frame.ethernet.source == interface.mac {
        return Decision::Ignore(Ignored::OwnFrame);
    }
    match &frame.payload {
        Payload::Arp(packet) => decide_arp(&frame.ethernet, packet, interface, owned),
        Payload::Ndp(packet) => decide_ndp(&frame.ethernet, packet, interface, owned),
    }
}

fn decide_arp(
    ethernet: &Ethernet,
    packet: &ArpPacket,
    interface: &Interface,
    owned: &impl Owned,
) -> Decision {
    if packet.sender_mac == interface.mac {
        return Decision::Ignore(Ignored::OwnFrame);
    }
    // A probe's sender address 0.0.0.0 claims nothing; RFC 5227 §2.1.1 has the owner answer
    // it like any request, which tells the prober the address is taken.
    let sender = IpAddr::V4(packet.sender_ip);
    if !packet.sender_ip.is_unspecified() && owned.owns(sender) {
        let kind = match packet.kind() {
            ArpKind::GratuitousRequest | ArpKind::GratuitousReply => ClaimKind::GratuitousArp,
            ArpKind::Reply => ClaimKind::ArpReply,
            ArpKind::Request | ArpKind::Probe => ClaimKind::ArpRequest,
        };
        return Decision::Conflict {
            address: sender,
            mac: packet.sender_mac,
            kind,
        };
    }
    if packet.operation == ArpOperation::Reply {
        return Decision::Ignore(Ignored::NotARequest);
    }
    // Unicast requests (a neighbour revalidating its entry) are answered like broadcast ones.
    if ethernet.destination != Mac::BROADCAST && ethernet.destination != interface.mac {
        return Decision::Ignore(Ignored::OtherDestination);
    }
    if !owned.owns(IpAddr::V4(packet.target_ip)) {
        return Decision::Ignore(Ignored::NotOurs);
    }
    Decision::Reply(arp::reply(interface.mac, packet).to_bytes())
}

fn decide_ndp(
    ethernet: &Ethernet,
    packet: &NdpPacket,
    interface: &Interface,
    owned: &impl Owned,
) -> Decision {
    match &packet.message {
        NdpMessage::Advertisement(advertisement) => {
            let target = IpAddr::V6(advertisement.target);
            // Without the option, the advertisement speaks for the MAC that sent it.
            let mac = (advertisement.target_link_address).unwrap_or(ethernet.source);
            if !owned.owns(target) || mac == interface.mac {
                return Decision::Ignore(Ignored::NotARequest);
            }
            Decision::Conflict {
                address: target,
                mac,
                kind: ClaimKind::NeighborAdvertisement,
            }
        }
        NdpMessage::Solicitation(solicitation) => {
            if solicitation.source_link_address == Some(interface.mac) {
                return Decision::Ignore(Ignored::OwnFrame);
            }
            // Multicast to a solicited-node group, or unicast to us (neighbour unreachability
            // detection, which a responder on an ICMPv6 socket never sees: metallb#2920).
            let destination = ethernet.destination;
            if !destination.is_multicast() && destination != interface.mac {
                return Decision::Ignore(Ignored::OtherDestination);
            }
            if !owned.owns(IpAddr::V6(solicitation.target)) {
                return Decision::Ignore(Ignored::NotOurs);
            }
            let solicitor = Solicitor {
                address: packet.source,
                mac: (solicitation.source_link_address).unwrap_or(ethernet.source),
            };
            let answer = ndp::solicited_advertisement(
                interface.mac,
                solicitation.target,
                solicitation.target,
                solicitor,
            );
            Decision::Reply(answer.to_bytes())
        }
    }
}

/// The frames one interface sends in one gratuitous round for an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub interface: String,
    /// In sending order.
    pub frames: Vec<Vec<u8>>,
}

/// One gratuitous round for `address` on each of `interfaces`: for IPv4 the request form,
/// then the reply form (neighbours that honour only one of them, design 0003); for IPv6 one
/// unsolicited advertisement with Override set.
pub fn announcement_round(address: IpAddr, interfaces: &[Interface]) -> Vec<Announcement> {
    let round = |interface: &Interface| match address {
        IpAddr::V4(address) => vec![
            arp::gratuitous_request(interface.mac, address).to_bytes(),
            arp::gratuitous_reply(interface.mac, address).to_bytes(),
        ],
        IpAddr::V6(address) => {
            vec![ndp::unsolicited_advertisement(interface.mac, address, address).to_bytes()]
        }
    };
    interfaces
        .iter()
        .map(|interface| Announcement {
            interface: interface.name.clone(),
            frames: round(interface),
        })
        .collect()
}

/// The frame that asks whether anyone already uses `address` before we first announce it:
/// an RFC 5227 probe, or a DAD solicitation (RFC 4862 §5.4.2). While it waits for answers the
/// caller counts the address as owned, so that a reply or advertisement for it from another
/// MAC reads as a [`Decision::Conflict`].
pub fn first_probe(address: IpAddr, interface: &Interface) -> Vec<u8> {
    match address {
        IpAddr::V4(address) => arp::probe(interface.mac, address).to_bytes(),
        IpAddr::V6(address) => ndp::dad_solicitation(interface.mac, address).to_bytes(),
    }
}

#[cfg(test)]
mod tests;
