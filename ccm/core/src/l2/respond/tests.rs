//! The responder's decisions, mostly on frames captured from Linux (see
//! `frame/golden.rs`): A is 02:00:00:00:00:0a with 192.0.2.1 / 2001:db8::1, B is
//! 02:00:00:00:00:0b with 192.0.2.2 / 2001:db8::2. "We" are B unless a test says otherwise.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::l2::frame::golden::{captured, independent_checksum};
use crate::l2::frame::{NdpError, NeighborAdvertisement};

const A_MAC: Mac = Mac([2, 0, 0, 0, 0, 0x0a]);
const B_MAC: Mac = Mac([2, 0, 0, 0, 0, 0x0b]);
/// A third machine, for when the captured frames' sender must not be us.
const C_MAC: Mac = Mac([2, 0, 0, 0, 0, 0x0c]);
const A_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const A_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const B_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const A_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0xa);

fn interface(mac: Mac) -> Interface {
    Interface {
        name: "eth1".to_owned(),
        mac,
    }
}

fn owning(addresses: &[IpAddr]) -> BTreeSet<IpAddr> {
    addresses.iter().copied().collect()
}

fn reply_frame(decision: Decision) -> Frame {
    let Decision::Reply(bytes) = decision else {
        panic!("not a reply: {decision:?}");
    };
    Frame::parse(&bytes).unwrap()
}

fn advertisement_in(frame: &Frame) -> (&NdpPacket, NeighborAdvertisement) {
    let packet = frame.payload_ndp();
    let NdpMessage::Advertisement(advertisement) = packet.message else {
        panic!("not an advertisement: {packet:?}");
    };
    (packet, advertisement)
}

#[test]
fn a_broadcast_request_for_an_owned_address_is_answered_unicast_to_the_requester() {
    let decision = respond(
        &captured("arp-kernel-request"),
        &interface(B_MAC),
        &owning(&[B_IP.into()]),
    );
    // What B's kernel answered, byte for byte.
    assert_eq!(decision, Decision::Reply(captured("arp-kernel-reply")));
}

#[test]
fn a_unicast_request_to_our_mac_is_answered_as_a_broadcast_one_is() {
    let owned = owning(&[B_IP.into()]);
    for request in ["arp-kernel-unicast-request", "arping-unicast-request"] {
        let decision = respond(&captured(request), &interface(B_MAC), &owned);
        assert_eq!(
            decision,
            Decision::Reply(captured("arp-kernel-reply")),
            "{request}"
        );
    }
}

#[test]
fn a_request_unicast_to_another_mac_is_left_to_it() {
    // We are C and own 192.0.2.2 too, but the request went to B's MAC.
    let decision = respond(
        &captured("arp-kernel-unicast-request"),
        &interface(C_MAC),
        &owning(&[B_IP.into()]),
    );
    assert_eq!(decision, Decision::Ignore(Ignored::OtherDestination));
}

#[test]
fn a_probe_for_an_owned_address_is_answered_not_taken_for_a_conflict() {
    let decision = respond(
        &captured("arping-probe"),
        &interface(B_MAC),
        &owning(&[B_IP.into()]),
    );
    assert_eq!(
        decision,
        Decision::Reply(captured("arp-kernel-probe-reply"))
    );
    // Its sender address 0.0.0.0 claims nothing, even to a lookup that would say it is ours.
    let everything = |_: IpAddr| true;
    let decision = respond(&captured("arping-probe"), &interface(B_MAC), &everything);
    assert_eq!(
        decision,
        Decision::Reply(captured("arp-kernel-probe-reply"))
    );
}

#[test]
fn a_request_for_an_address_we_do_not_own_is_ignored() {
    let decision = respond(
        &captured("arp-kernel-request"),
        &interface(B_MAC),
        &owning(&[Ipv4Addr::new(192, 0, 2, 3).into()]),
    );
    assert_eq!(decision, Decision::Ignore(Ignored::NotOurs));
}

#[test]
fn a_gratuitous_arp_from_a_foreign_mac_for_an_owned_address_is_a_conflict() {
    // We are B and own 192.0.2.1, which A announces in all three captured forms.
    let owned = owning(&[A_IP.into()]);
    for garp in [
        "arp-kernel-garp-request",
        "arping-garp-request",
        "arping-garp-reply",
    ] {
        let decision = respond(&captured(garp), &interface(B_MAC), &owned);
        assert_eq!(
            decision,
            Decision::Conflict {
                address: A_IP.into(),
                mac: A_MAC,
                kind: ClaimKind::GratuitousArp,
            },
            "{garp}"
        );
    }
}

#[test]
fn a_reply_from_a_foreign_mac_for_an_owned_address_is_a_conflict() {
    // We are C, owning 192.0.2.2, and B answers for it.
    let decision = respond(
        &captured("arp-kernel-reply"),
        &interface(C_MAC),
        &owning(&[B_IP.into()]),
    );
    assert_eq!(
        decision,
        Decision::Conflict {
            address: B_IP.into(),
            mac: B_MAC,
            kind: ClaimKind::ArpReply,
        }
    );
}

#[test]
fn a_request_sent_from_an_owned_address_by_another_mac_is_a_conflict() {
    // RFC 5227 §2.4: A asks for 192.0.2.2 from 192.0.2.1, which we (B) own.
    let decision = respond(
        &captured("arp-kernel-request"),
        &interface(B_MAC),
        &owning(&[A_IP.into(), B_IP.into()]),
    );
    assert_eq!(
        decision,
        Decision::Conflict {
            address: A_IP.into(),
            mac: A_MAC,
            kind: ClaimKind::ArpRequest,
        }
    );
}

#[test]
fn a_reply_that_claims_nothing_of_ours_is_not_a_request() {
    let decision = respond(
        &captured("arp-kernel-reply"),
        &interface(A_MAC),
        &owning(&[A_IP.into()]),
    );
    assert_eq!(decision, Decision::Ignore(Ignored::NotARequest));
}

#[test]
fn our_own_frames_are_ignored() {
    let owned = owning(&[A_IP.into(), A_IP6.into()]);
    for own in ["arp-kernel-garp-request", "ndp-kernel-unsolicited-na"] {
        let decision = respond(&captured(own), &interface(A_MAC), &owned);
        assert_eq!(decision, Decision::Ignore(Ignored::OwnFrame), "{own}");
    }
    // Our MAC as the ARP sender behind another Ethernet source (a reflecting bridge).
    let mut reflected = arp::gratuitous_request(A_MAC, A_IP);
    reflected.ethernet.source = C_MAC;
    let decision = decide(&reflected, &interface(A_MAC), &owned);
    assert_eq!(decision, Decision::Ignore(Ignored::OwnFrame));
}

#[test]
fn a_tagged_frame_is_ignored_with_its_vlan() {
    let decision = respond(
        &captured("arping-vlan-request"),
        &interface(B_MAC),
        &owning(&[B_IP.into()]),
    );
    assert_eq!(decision, Decision::Ignore(Ignored::VlanTagged(100)));
    assert_eq!(Ignored::VlanTagged(100).label(), "vlan_tagged");
}

#[test]
fn a_multicast_solicitation_is_answered_from_the_address_itself_as_the_kernel_answers_it() {
    let decision = respond(
        &captured("ndp-kernel-ns"),
        &interface(B_MAC),
        &owning(&[B_IP6.into()]),
    );
    let frame = reply_frame(decision);
    assert_eq!(frame.ethernet.destination, A_MAC);
    assert_eq!(frame.ethernet.source, B_MAC);
    let (packet, advertisement) = advertisement_in(&frame);
    assert_eq!((packet.source, packet.destination), (B_IP6, A_IP6));
    assert_eq!(
        advertisement,
        NeighborAdvertisement {
            router: false,
            solicited: true,
            overrides: true,
            target: B_IP6,
            target_link_address: Some(B_MAC),
        }
    );
    let bytes = frame.to_bytes();
    assert_eq!(
        bytes,
        captured("ndp-kernel-na"),
        "the kernel's own answer, byte for byte"
    );
    assert_eq!(
        independent_checksum(&bytes),
        u16::from_be_bytes([bytes[56], bytes[57]])
    );
}

#[test]
fn a_unicast_solicitation_without_the_option_is_answered_to_the_ethernet_source() {
    // A's revalidation carries a Source Link-Layer option; without it we answer the frame's
    // source MAC.
    let mut solicitation = Frame::parse(&captured("ndp-kernel-unicast-ns")).unwrap();
    let Payload::Ndp(NdpPacket {
        message: NdpMessage::Solicitation(ref mut inner),
        ..
    }) = solicitation.payload
    else {
        panic!("a solicitation");
    };
    inner.source_link_address = None;
    let decision = respond(
        &solicitation.to_bytes(),
        &interface(B_MAC),
        &owning(&[B_IP6.into()]),
    );
    let frame = reply_frame(decision);
    assert_eq!(frame.ethernet.destination, A_MAC);
    let (packet, advertisement) = advertisement_in(&frame);
    assert_eq!(packet.destination, A_LINK_LOCAL);
    assert!(advertisement.solicited && advertisement.overrides);
}

#[test]
fn a_dad_solicitation_for_an_owned_address_is_answered_to_all_nodes_with_s_0() {
    // B checks 2001:db8::2, which we (C) own.
    let decision = respond(
        &captured("ndp-kernel-dad-ns-nonce"),
        &interface(C_MAC),
        &owning(&[B_IP6.into()]),
    );
    let frame = reply_frame(decision);
    assert_eq!(frame.ethernet.destination, Mac([0x33, 0x33, 0, 0, 0, 1]));
    let (packet, advertisement) = advertisement_in(&frame);
    assert_eq!(packet.destination, ndp::ALL_NODES);
    assert!(!advertisement.solicited && advertisement.overrides);
    assert_eq!(advertisement.target_link_address, Some(C_MAC));
}

#[test]
fn a_solicitation_with_a_bad_checksum_is_ignored_as_malformed() {
    let mut bytes = captured("ndp-kernel-ns");
    bytes[57] ^= 0xff;
    let decision = respond(&bytes, &interface(B_MAC), &owning(&[B_IP6.into()]));
    let Decision::Ignore(ignored @ Ignored::Malformed(ParseError::Ndp(NdpError::Checksum { .. }))) =
        decision
    else {
        panic!("not ignored as a bad checksum: {decision:?}");
    };
    assert_eq!(ignored.label(), "malformed");
}

#[test]
fn a_solicitation_for_an_address_we_do_not_own_is_ignored() {
    let decision = respond(
        &captured("ndisc6-ns"),
        &interface(B_MAC),
        &owning(&[A_IP6.into()]),
    );
    assert_eq!(decision, Decision::Ignore(Ignored::NotOurs));
}

#[test]
fn an_advertisement_from_a_foreign_mac_for_an_owned_target_is_a_conflict() {
    // A announces 2001:db8::1, which we (B) own.
    let decision = respond(
        &captured("ndp-kernel-unsolicited-na"),
        &interface(B_MAC),
        &owning(&[A_IP6.into()]),
    );
    assert_eq!(
        decision,
        Decision::Conflict {
            address: A_IP6.into(),
            mac: A_MAC,
            kind: ClaimKind::NeighborAdvertisement,
        }
    );
}

#[test]
fn an_advertisement_without_the_option_claims_for_its_ethernet_source() {
    // B's answer to a unicast NS has no Target Link-Layer option; we are C and own ::2.
    let decision = respond(
        &captured("ndp-kernel-na-to-unicast"),
        &interface(C_MAC),
        &owning(&[B_IP6.into()]),
    );
    assert_eq!(
        decision,
        Decision::Conflict {
            address: B_IP6.into(),
            mac: B_MAC,
            kind: ClaimKind::NeighborAdvertisement,
        }
    );
}

#[test]
fn an_advertisement_of_someone_elses_address_is_not_a_request() {
    let decision = respond(
        &captured("ndp-kernel-na"),
        &interface(A_MAC),
        &owning(&[A_IP6.into()]),
    );
    assert_eq!(decision, Decision::Ignore(Ignored::NotARequest));
}

#[test]
fn other_protocols_are_unsupported_and_truncated_frames_malformed() {
    let mut echo = captured("ndp-kernel-ns");
    echo[54] = 128;
    let decision = respond(&echo, &interface(B_MAC), &owning(&[B_IP6.into()]));
    assert_eq!(
        decision,
        Decision::Ignore(Ignored::Unsupported(ParseError::Ndp(NdpError::IcmpType(
            128
        ))))
    );
    let cut = &captured("arp-kernel-request")[..30];
    let decision = respond(cut, &interface(B_MAC), &owning(&[B_IP.into()]));
    let Decision::Ignore(ignored @ Ignored::Malformed(_)) = decision else {
        panic!("a cut frame is malformed: {decision:?}");
    };
    assert_eq!(ignored.label(), "malformed");
}

#[test]
fn ownership_can_be_a_set_or_a_closure() {
    let request = captured("arp-kernel-request");
    let expected = Decision::Reply(captured("arp-kernel-reply"));
    let hashed: HashSet<IpAddr> = [IpAddr::V4(B_IP)].into();
    assert_eq!(respond(&request, &interface(B_MAC), &hashed), expected);
    let closure = |address: IpAddr| address == IpAddr::V4(B_IP);
    assert_eq!(respond(&request, &interface(B_MAC), &closure), expected);
}

#[test]
fn an_ipv4_round_is_the_request_form_then_the_reply_form_on_every_interface() {
    let interfaces = [
        interface(A_MAC),
        Interface {
            name: "vlan7".to_owned(),
            ..interface(C_MAC)
        },
    ];
    let round = announcement_round(A_IP.into(), &interfaces);
    assert_eq!(
        round,
        vec![
            Announcement {
                interface: "eth1".to_owned(),
                frames: vec![
                    captured("arp-kernel-garp-request"),
                    arp::gratuitous_reply(A_MAC, A_IP).to_bytes(),
                ],
            },
            Announcement {
                interface: "vlan7".to_owned(),
                frames: vec![
                    arp::gratuitous_request(C_MAC, A_IP).to_bytes(),
                    arp::gratuitous_reply(C_MAC, A_IP).to_bytes(),
                ],
            },
        ]
    );
}

#[test]
fn an_ipv6_round_is_one_unsolicited_advertisement_from_the_address_itself() {
    let round = announcement_round(A_IP6.into(), &[interface(A_MAC)]);
    assert_eq!(
        round,
        vec![Announcement {
            interface: "eth1".to_owned(),
            frames: vec![ndp::unsolicited_advertisement(A_MAC, A_IP6, A_IP6).to_bytes()],
        }]
    );
    assert!(announcement_round(A_IP6.into(), &[]).is_empty());
}

#[test]
fn the_first_probe_is_an_arp_probe_or_a_dad_solicitation() {
    assert_eq!(
        first_probe(B_IP.into(), &interface(A_MAC)),
        captured("arping-probe")[..42]
    );
    let solicitation = first_probe("2001:db8::3".parse().unwrap(), &interface(B_MAC));
    assert_eq!(solicitation, captured("ndp-kernel-dad-ns"));
}

#[test]
fn a_reply_to_our_probe_from_another_mac_is_a_conflict() {
    // We (C) probe 192.0.2.2 and count it as ours while we wait; B answers.
    let decision = respond(
        &captured("arp-kernel-probe-reply"),
        &interface(C_MAC),
        &owning(&[B_IP.into()]),
    );
    assert!(matches!(
        decision,
        Decision::Conflict {
            kind: ClaimKind::ArpReply,
            mac: B_MAC,
            ..
        }
    ));
}

#[test]
fn labels_are_distinct_and_bounded() {
    let ignored = [
        Ignored::Malformed(ParseError::Ethertype(0)),
        Ignored::Unsupported(ParseError::Ethertype(0)),
        Ignored::VlanTagged(1),
        Ignored::OwnFrame,
        Ignored::OtherDestination,
        Ignored::NotOurs,
        Ignored::NotARequest,
    ];
    let labels: BTreeSet<&str> = ignored.iter().map(Ignored::label).collect();
    assert_eq!(labels.len(), ignored.len());
    let kinds = [
        ClaimKind::ArpRequest,
        ClaimKind::ArpReply,
        ClaimKind::GratuitousArp,
        ClaimKind::NeighborAdvertisement,
    ];
    let labels: BTreeSet<&str> = kinds.iter().map(|kind| kind.label()).collect();
    assert_eq!(labels.len(), kinds.len());
}
