//! Golden tests: frames the Linux kernel, arping 2.23 and ndisc6 1.0.5 put on a veth pair,
//! captured with tcpdump by `../testdata/capture.sh` (each `.hex` file names its command).
//! Each is parsed and its fields checked; where the kernel answered a request, our answer to
//! the same request from the same MAC is compared with the kernel's byte for byte, and every
//! difference is named and explained.
//!
//! Namespace A: 02:00:00:00:00:0a, 192.0.2.1, 2001:db8::1, fe80::ff:fe00:a.
//! Namespace B: 02:00:00:00:00:0b, 192.0.2.2, 2001:db8::2 and ::3, fe80::ff:fe00:b.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::{Ipv4Addr, Ipv6Addr};

use super::ndp::{self, NdpMessage, NeighborAdvertisement, NeighborSolicitation, Solicitor};
use super::{ArpKind, ArpOperation, ArpPacket, Frame, Mac, NdpPacket, Payload, VlanTag, arp};

const A_MAC: Mac = Mac([2, 0, 0, 0, 0, 0x0a]);
const B_MAC: Mac = Mac([2, 0, 0, 0, 0, 0x0b]);
const A_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const A_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const B_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const B_IP6_3: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3);
const A_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0xa);

macro_rules! captured {
    ($($name:literal),* $(,)?) => {
        /// Every captured frame: its file name and its text.
        pub(super) const ALL: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../testdata/", $name, ".hex")))),*
        ];
    };
}

captured!(
    "arp-kernel-garp-request",
    "arp-kernel-probe-reply",
    "arp-kernel-reply-to-unicast",
    "arp-kernel-reply",
    "arp-kernel-request",
    "arp-kernel-unicast-request",
    "arping-garp-reply",
    "arping-garp-request",
    "arping-probe",
    "arping-request",
    "arping-unicast-request",
    "arping-vlan-request",
    "ndisc6-ns",
    "ndp-kernel-dad-defence-na",
    "ndp-kernel-dad-ns-nonce",
    "ndp-kernel-dad-ns",
    "ndp-kernel-na-to-ndisc6",
    "ndp-kernel-na-to-unicast",
    "ndp-kernel-na",
    "ndp-kernel-ns",
    "ndp-kernel-unicast-ns",
    "ndp-kernel-unsolicited-na",
);

/// The bytes of a `.hex` text: `#` lines are comments, the rest hex pairs.
pub(super) fn bytes_of(text: &str) -> Vec<u8> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(|pair| u8::from_str_radix(pair, 16).unwrap())
        .collect()
}

/// The bytes of the captured frame `name`.
pub(crate) fn captured(name: &str) -> Vec<u8> {
    let (_, text) = ALL.iter().find(|(file, _)| *file == name).unwrap();
    bytes_of(text)
}

fn arp_of(name: &str) -> (Frame, ArpPacket) {
    let frame = Frame::parse(&captured(name)).unwrap();
    let packet = frame.payload_arp();
    (frame, packet)
}

fn ndp_of(name: &str) -> (Frame, NdpPacket) {
    let frame = Frame::parse(&captured(name)).unwrap();
    let packet = frame.payload_ndp().clone();
    (frame, packet)
}

/// The ICMPv6 checksum of the IPv6 packet in an Ethernet frame, computed apart from the
/// module's code: the pseudo-header laid out in memory, 16-bit words added with the carry
/// folded back at every step (RFC 1071 §4.1).
pub(crate) fn independent_checksum(frame: &[u8]) -> u16 {
    let ipv6 = &frame[14..];
    let length = u32::from(u16::from_be_bytes([ipv6[4], ipv6[5]]));
    let mut message = ipv6[40..40 + length as usize].to_vec();
    message[2] = 0;
    message[3] = 0;
    let mut data = Vec::new();
    data.extend_from_slice(&ipv6[8..40]);
    data.extend_from_slice(&length.to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, 58]);
    data.extend_from_slice(&message);
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut sum: u32 = 0;
    for word in data.chunks(2) {
        sum += u32::from(word[0]) << 8 | u32::from(word[1]);
        if sum > 0xffff {
            sum -= 0xffff;
        }
    }
    !(sum as u16)
}

fn checksum_field(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[56], frame[57]])
}

#[test]
fn every_captured_frame_parses() {
    for (name, text) in ALL {
        let parsed = Frame::parse(&bytes_of(text));
        assert!(parsed.is_ok(), "{name}: {parsed:?}");
    }
}

#[test]
fn the_kernels_broadcast_request_is_read_and_answered_as_the_kernel_answers_it() {
    let (frame, request) = arp_of("arp-kernel-request");
    assert_eq!(frame.ethernet.destination, Mac::BROADCAST);
    assert_eq!(frame.ethernet.source, A_MAC);
    assert_eq!(frame.ethernet.vlan, None);
    assert_eq!(
        request,
        ArpPacket {
            operation: ArpOperation::Request,
            sender_mac: A_MAC,
            sender_ip: A_IP,
            target_mac: Mac::ZERO,
            target_ip: B_IP,
        }
    );
    assert_eq!(request.kind(), ArpKind::Request);
    let ours = arp::reply(B_MAC, &request);
    assert_eq!(ours.to_bytes(), captured("arp-kernel-reply"));
    assert_eq!(ours.payload_arp().kind(), ArpKind::Reply);
}

#[test]
fn the_kernels_unicast_revalidation_is_answered_as_the_kernel_answers_it() {
    let (frame, request) = arp_of("arp-kernel-unicast-request");
    assert_eq!(frame.ethernet.destination, B_MAC);
    assert_eq!(request.kind(), ArpKind::Request);
    assert_eq!((request.target_mac, request.target_ip), (Mac::ZERO, B_IP));
    let ours = arp::reply(B_MAC, &request).to_bytes();
    assert_eq!(ours, captured("arp-kernel-reply-to-unicast"));
}

#[test]
fn arpings_requests_are_read_with_their_padding_ignored() {
    let (frame, broadcast) = arp_of("arping-request");
    assert_eq!(captured("arping-request").len(), 58);
    assert_eq!(frame.ethernet.destination, Mac::BROADCAST);
    assert_eq!((broadcast.sender_ip, broadcast.target_ip), (A_IP, B_IP));
    assert_eq!(broadcast.kind(), ArpKind::Request);

    let (frame, unicast) = arp_of("arping-unicast-request");
    assert_eq!(frame.ethernet.destination, B_MAC);
    assert_eq!(unicast, broadcast);
    // Answered like the kernel's own request: the same reply bytes.
    assert_eq!(
        arp::reply(B_MAC, &unicast).to_bytes(),
        captured("arp-kernel-reply")
    );
}

#[test]
fn a_probe_is_recognised_and_answered_as_the_kernel_answers_it() {
    let (_, probe) = arp_of("arping-probe");
    assert_eq!(probe.kind(), ArpKind::Probe);
    assert_eq!(
        (probe.sender_ip, probe.target_mac, probe.target_ip),
        (Ipv4Addr::UNSPECIFIED, Mac::ZERO, B_IP)
    );
    let ours = arp::reply(B_MAC, &probe);
    assert_eq!(ours.to_bytes(), captured("arp-kernel-probe-reply"));
    assert_eq!(ours.payload_arp().target_ip, Ipv4Addr::UNSPECIFIED);
    // And our own probe is arping's without arping's 16 bytes of padding.
    assert_eq!(
        arp::probe(A_MAC, B_IP).to_bytes(),
        captured("arping-probe")[..42]
    );
}

#[test]
fn our_gratuitous_request_is_the_kernels() {
    let (frame, garp) = arp_of("arp-kernel-garp-request");
    assert_eq!(frame.ethernet.destination, Mac::BROADCAST);
    assert_eq!(garp.kind(), ArpKind::GratuitousRequest);
    assert_eq!(garp.target_mac, Mac::ZERO);
    assert_eq!(
        arp::gratuitous_request(A_MAC, A_IP).to_bytes(),
        captured("arp-kernel-garp-request")
    );
}

#[test]
fn arpings_gratuitous_forms_are_recognised_and_ours_differ_only_as_explained() {
    let arping_request = captured("arping-garp-request");
    let (_, garp) = arp_of("arping-garp-request");
    assert_eq!(garp.kind(), ArpKind::GratuitousRequest);
    // arping fills the request's target MAC with broadcast; we leave it zero as the kernel
    // does (RFC 5227 §2.3 says it is ignored). That, and arping's padding, is the difference.
    assert_eq!(garp.target_mac, Mac::BROADCAST);
    let mut ours = arp::gratuitous_request(A_MAC, A_IP).to_bytes();
    ours[32..38].copy_from_slice(&Mac::BROADCAST.0);
    assert_eq!(ours, arping_request[..42]);
    assert!(arping_request[42..].iter().all(|byte| *byte == 0));

    let (frame, garp) = arp_of("arping-garp-reply");
    assert_eq!(frame.ethernet.destination, Mac::BROADCAST);
    assert_eq!(garp.kind(), ArpKind::GratuitousReply);
    assert_eq!(garp.target_mac, Mac::BROADCAST);
    assert_eq!(
        arp::gratuitous_reply(A_MAC, A_IP).to_bytes(),
        captured("arping-garp-reply")[..42]
    );
}

#[test]
fn a_tagged_request_reports_its_vlan() {
    let (frame, request) = arp_of("arping-vlan-request");
    assert_eq!(
        frame.ethernet.vlan,
        Some(VlanTag {
            priority: 0,
            drop_eligible: false,
            id: 100
        })
    );
    assert_eq!((request.sender_ip, request.target_ip), (A_IP, B_IP));
    assert_eq!(request.kind(), ArpKind::Request);
}

/// Who sent a captured solicitation, as the responder reads it.
fn solicitor_of(frame: &Frame, packet: &NdpPacket) -> Solicitor {
    let NdpMessage::Solicitation(solicitation) = packet.message else {
        panic!("not a solicitation: {packet:?}");
    };
    Solicitor {
        address: packet.source,
        mac: solicitation
            .source_link_address
            .unwrap_or(frame.ethernet.source),
    }
}

#[test]
fn the_kernels_solicitation_is_read_and_answered_as_the_kernel_answers_it() {
    let (frame, packet) = ndp_of("ndp-kernel-ns");
    assert_eq!(
        frame.ethernet.destination,
        ndp::multicast_mac(ndp::solicited_node(B_IP6))
    );
    assert_eq!(
        packet,
        NdpPacket {
            source: A_IP6,
            destination: ndp::solicited_node(B_IP6),
            message: NdpMessage::Solicitation(NeighborSolicitation {
                target: B_IP6,
                source_link_address: Some(A_MAC),
            }),
        }
    );
    // The kernel answers from the target address itself, and so do we (design 0003): our
    // bytes are the kernel's.
    let ours = ndp::solicited_advertisement(B_MAC, B_IP6, B_IP6, solicitor_of(&frame, &packet));
    assert_eq!(ours.to_bytes(), captured("ndp-kernel-na"));
    let (_, kernels) = ndp_of("ndp-kernel-na");
    let NdpMessage::Advertisement(advertisement) = kernels.message else {
        panic!("not an advertisement: {kernels:?}");
    };
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
}

#[test]
fn ndisc6s_solicitation_from_a_link_local_address_is_answered_as_the_kernel_answers_it() {
    let (frame, packet) = ndp_of("ndisc6-ns");
    // The source Linux derived from A's MAC is the fallback we derive from it.
    assert_eq!(packet.source, A_LINK_LOCAL);
    assert_eq!(ndp::link_local_from_mac(A_MAC), A_LINK_LOCAL);
    let ours = ndp::solicited_advertisement(B_MAC, B_IP6, B_IP6, solicitor_of(&frame, &packet));
    assert_eq!(ours.to_bytes(), captured("ndp-kernel-na-to-ndisc6"));
}

#[test]
fn a_unicast_solicitation_is_answered_with_override_and_the_option_unlike_the_kernel() {
    let (frame, packet) = ndp_of("ndp-kernel-unicast-ns");
    assert_eq!(frame.ethernet.destination, B_MAC);
    assert_eq!((packet.source, packet.destination), (A_LINK_LOCAL, B_IP6));
    let ours = ndp::solicited_advertisement(B_MAC, B_IP6, B_IP6, solicitor_of(&frame, &packet));
    // Linux answers a unicast NS with O=0 and no Target Link-Layer Address option (RFC 4861
    // §7.2.4 allows leaving it out): it only confirms the MAC the asker already has. We set
    // O=1 and include the option, as design 0003 says, so that an asker whose entry still
    // holds a previous owner's MAC is corrected by any answer. Nothing else differs.
    let (kernel_frame, kernels) = ndp_of("ndp-kernel-na-to-unicast");
    assert_eq!(ours.ethernet, kernel_frame.ethernet);
    let ours = ours.payload_ndp();
    assert_eq!(
        (ours.source, ours.destination),
        (kernels.source, kernels.destination)
    );
    let (NdpMessage::Advertisement(ours), NdpMessage::Advertisement(kernels)) =
        (ours.message.clone(), kernels.message)
    else {
        panic!("both are advertisements");
    };
    assert_eq!(
        (kernels.overrides, kernels.target_link_address),
        (false, None)
    );
    assert_eq!(
        (ours.overrides, ours.target_link_address),
        (true, Some(B_MAC))
    );
    assert_eq!(
        NeighborAdvertisement {
            overrides: false,
            target_link_address: None,
            ..ours
        },
        kernels
    );
}

#[test]
fn our_dad_solicitation_is_the_kernels_without_enhanced_dad() {
    let (frame, packet) = ndp_of("ndp-kernel-dad-ns");
    assert_eq!(packet.source, Ipv6Addr::UNSPECIFIED);
    assert_eq!(
        ndp::dad_solicitation(B_MAC, B_IP6_3).to_bytes(),
        captured("ndp-kernel-dad-ns")
    );
    assert_eq!(frame, ndp::dad_solicitation(B_MAC, B_IP6_3));
}

#[test]
fn a_dad_solicitation_with_a_nonce_reads_as_one_without() {
    // Linux's enhanced DAD (RFC 7527) adds a nonce option, which we skip and do not send.
    let (frame, packet) = ndp_of("ndp-kernel-dad-ns-nonce");
    assert_eq!(captured("ndp-kernel-dad-ns-nonce")[78..80], [14, 1]);
    assert_eq!(frame, ndp::dad_solicitation(B_MAC, B_IP6));
    assert_eq!(
        packet.message,
        NdpMessage::Solicitation(NeighborSolicitation {
            target: B_IP6,
            source_link_address: None,
        })
    );
}

#[test]
fn our_defence_against_a_dad_solicitation_is_the_kernels() {
    // B tried 2001:db8::1, which A holds; A's kernel answered to all nodes with S=0.
    let ours = ndp::solicited_advertisement(
        A_MAC,
        A_IP6,
        A_IP6,
        Solicitor {
            address: Ipv6Addr::UNSPECIFIED,
            mac: B_MAC,
        },
    );
    assert_eq!(ours.to_bytes(), captured("ndp-kernel-dad-defence-na"));
}

#[test]
fn our_unsolicited_advertisement_is_the_kernels() {
    let ours = ndp::unsolicited_advertisement(A_MAC, A_IP6, A_IP6);
    assert_eq!(ours.to_bytes(), captured("ndp-kernel-unsolicited-na"));
    let (frame, _) = ndp_of("ndp-kernel-unsolicited-na");
    assert_eq!(frame, ours);
    let Payload::Ndp(NdpPacket {
        message: NdpMessage::Advertisement(advertisement),
        ..
    }) = frame.payload
    else {
        panic!("not an advertisement");
    };
    assert!(!advertisement.solicited && advertisement.overrides && !advertisement.router);
}

#[test]
fn captured_checksums_match_an_independent_computation() {
    let ndp_frames = ALL.iter().filter(|(name, _)| name.starts_with("nd"));
    let mut count = 0;
    for (name, text) in ndp_frames {
        let bytes = bytes_of(text);
        assert_eq!(
            independent_checksum(&bytes),
            checksum_field(&bytes),
            "{name}"
        );
        count += 1;
    }
    assert_eq!(count, 10);
}

#[test]
fn built_checksums_match_an_independent_computation() {
    let solicitor = Solicitor {
        address: A_LINK_LOCAL,
        mac: A_MAC,
    };
    let link_local = ndp::link_local_from_mac(B_MAC);
    let built = [
        ndp::solicited_advertisement(B_MAC, link_local, B_IP6, solicitor),
        ndp::unsolicited_advertisement(B_MAC, link_local, B_IP6),
        ndp::dad_solicitation(B_MAC, B_IP6),
    ];
    for frame in built {
        let bytes = frame.to_bytes();
        assert_eq!(
            independent_checksum(&bytes),
            checksum_field(&bytes),
            "{frame:?}"
        );
    }
}
