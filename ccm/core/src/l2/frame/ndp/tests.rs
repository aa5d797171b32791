#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use super::*;
use crate::l2::frame::{Frame, Payload};

const OURS: Mac = Mac([2, 0, 0, 0, 0, 0x0b]);
const THEIRS: Mac = Mac([2, 0, 0, 0, 0, 0x0a]);
const LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0xb);
const TARGET: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 1, 0x2345, 0x6789);
const ASKER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// An IPv6 packet (no Ethernet header) carrying `packet`.
fn ipv6_bytes(packet: NdpPacket) -> Vec<u8> {
    let mut bytes = Vec::new();
    packet.write(&mut bytes);
    bytes
}

/// A solicitation from `ASKER` for `TARGET` with a Source Link-Layer Address option.
fn solicitation() -> NdpPacket {
    NdpPacket {
        source: ASKER,
        destination: solicited_node(TARGET),
        message: NdpMessage::Solicitation(NeighborSolicitation {
            target: TARGET,
            source_link_address: Some(THEIRS),
        }),
    }
}

/// Recomputes the checksum of an IPv6 packet whose message was edited, so that a test reaches
/// the check after the checksum.
fn fix_checksum(bytes: &mut [u8]) {
    let source = Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[8..24]).unwrap());
    let destination = Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[24..40]).unwrap());
    bytes[42..44].fill(0);
    let sum = checksum(source, destination, &bytes[40..]);
    bytes[42..44].copy_from_slice(&sum.to_be_bytes());
}

#[test]
fn the_solicited_node_group_keeps_the_low_24_bits() {
    let group = solicited_node(TARGET);
    assert_eq!(group, "ff02::1:ff45:6789".parse::<Ipv6Addr>().unwrap());
    assert!(is_solicited_node(group));
    assert!(!is_solicited_node(ALL_NODES));
    assert!(!is_solicited_node("ff02::1:fe45:6789".parse().unwrap()));
    assert_eq!(
        multicast_mac(group),
        Mac([0x33, 0x33, 0xff, 0x45, 0x67, 0x89])
    );
    assert_eq!(multicast_mac(ALL_NODES), Mac([0x33, 0x33, 0, 0, 0, 1]));
}

#[test]
fn the_fallback_link_local_address_flips_the_universal_local_bit() {
    assert_eq!(link_local_from_mac(OURS), LINK_LOCAL);
    let universal = Mac([0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e]);
    assert_eq!(
        link_local_from_mac(universal),
        "fe80::21b:21ff:fe3c:4d5e".parse::<Ipv6Addr>().unwrap()
    );
}

#[test]
fn a_solicitation_reads_back_with_its_option() {
    let packet = solicitation();
    assert_eq!(NdpPacket::parse(&ipv6_bytes(packet.clone())), Ok(packet));
}

#[test]
fn an_extension_header_or_another_upper_layer_is_refused_by_name() {
    let mut bytes = ipv6_bytes(solicitation());
    bytes[6] = 0;
    let error = NdpPacket::parse(&bytes).unwrap_err();
    assert_eq!(error, NdpError::ExtensionHeader(0));
    assert!(error.is_unsupported());
    bytes[6] = 17;
    assert_eq!(NdpPacket::parse(&bytes), Err(NdpError::NextHeader(17)));
    bytes[6] = 58;
    bytes[0] = 0x45;
    assert_eq!(NdpPacket::parse(&bytes), Err(NdpError::Version(4)));
}

#[test]
fn a_payload_length_past_the_end_is_refused_and_bytes_after_it_are_padding() {
    let mut bytes = ipv6_bytes(solicitation());
    bytes[5] = 33;
    assert_eq!(
        NdpPacket::parse(&bytes),
        Err(NdpError::PayloadLength {
            declared: 33,
            available: 32
        })
    );
    bytes[5] = 32;
    bytes.extend_from_slice(&[0; 6]);
    assert_eq!(NdpPacket::parse(&bytes), Ok(solicitation()));
}

#[test]
fn other_icmpv6_messages_are_unsupported_before_the_hop_limit_is_looked_at() {
    let mut bytes = ipv6_bytes(solicitation());
    bytes[7] = 64;
    bytes[40] = 128;
    let error = NdpPacket::parse(&bytes).unwrap_err();
    assert_eq!(error, NdpError::IcmpType(128));
    assert!(error.is_unsupported());
    bytes[40] = TYPE_SOLICITATION;
    assert_eq!(NdpPacket::parse(&bytes), Err(NdpError::HopLimit(64)));
    bytes[7] = 255;
    bytes[41] = 1;
    assert_eq!(NdpPacket::parse(&bytes), Err(NdpError::IcmpCode(1)));
}

#[test]
fn a_message_shorter_than_24_bytes_is_refused() {
    let mut bytes = ipv6_bytes(solicitation());
    bytes.truncate(40 + 20);
    bytes[5] = 20;
    assert_eq!(NdpPacket::parse(&bytes), Err(NdpError::MessageLength(20)));
}

#[test]
fn a_wrong_checksum_names_both_values() {
    let mut bytes = ipv6_bytes(solicitation());
    let expected = u16::from_be_bytes([bytes[42], bytes[43]]);
    bytes[43] ^= 0x01;
    let found = u16::from_be_bytes([bytes[42], bytes[43]]);
    assert_eq!(
        NdpPacket::parse(&bytes),
        Err(NdpError::Checksum { found, expected })
    );
}

#[test]
fn options_of_length_zero_past_the_end_or_of_the_wrong_size_are_refused() {
    let mut bytes = ipv6_bytes(solicitation());
    bytes[65] = 0;
    fix_checksum(&mut bytes);
    assert_eq!(
        NdpPacket::parse(&bytes),
        Err(NdpError::OptionZeroLength {
            kind: 1,
            offset: 24
        })
    );
    bytes[65] = 2;
    fix_checksum(&mut bytes);
    assert_eq!(
        NdpPacket::parse(&bytes),
        Err(NdpError::OptionOverrun {
            offset: 24,
            left: 8
        })
    );
    // Two units that are there: a well-formed option, but not an Ethernet address.
    bytes.extend_from_slice(&[0; 8]);
    bytes[5] = 40;
    fix_checksum(&mut bytes);
    assert_eq!(
        NdpPacket::parse(&bytes),
        Err(NdpError::LinkLayerOptionLength { kind: 1, units: 2 })
    );
}

#[test]
fn unknown_options_are_skipped_and_the_first_link_layer_option_counts() {
    let mut bytes = ipv6_bytes(solicitation());
    // A nonce (RFC 7527) first, then a second source link-layer option.
    let mut options = vec![14, 1, 1, 2, 3, 4, 5, 6];
    options.extend_from_slice(&bytes[64..72]);
    options.extend_from_slice(&[1, 1, 9, 9, 9, 9, 9, 9]);
    bytes.truncate(64);
    bytes.extend_from_slice(&options);
    bytes[5] = 48;
    fix_checksum(&mut bytes);
    assert_eq!(NdpPacket::parse(&bytes), Ok(solicitation()));
}

#[test]
fn rfc_4861_address_rules_are_applied() {
    let multicast_target = NdpPacket {
        message: NdpMessage::Solicitation(NeighborSolicitation {
            target: ALL_NODES,
            source_link_address: None,
        }),
        ..solicitation()
    };
    let dad_to_unicast = NdpPacket {
        source: Ipv6Addr::UNSPECIFIED,
        destination: TARGET,
        message: NdpMessage::Solicitation(NeighborSolicitation {
            target: TARGET,
            source_link_address: None,
        }),
    };
    let dad_with_option = NdpPacket {
        source: Ipv6Addr::UNSPECIFIED,
        ..solicitation()
    };
    let from_multicast = NdpPacket {
        source: ALL_NODES,
        ..solicitation()
    };
    let cases = [
        (multicast_target, NdpError::MulticastTarget(ALL_NODES)),
        (dad_to_unicast, NdpError::DadDestination(TARGET)),
        (dad_with_option, NdpError::DadWithSourceLinkAddress),
        (from_multicast, NdpError::MulticastSource(ALL_NODES)),
    ];
    for (packet, error) in cases {
        assert_eq!(NdpPacket::parse(&ipv6_bytes(packet)), Err(error));
    }
}

#[test]
fn an_advertisement_from_nowhere_or_solicited_to_a_group_is_refused() {
    let Payload::Ndp(answer) = solicited_advertisement(
        OURS,
        LINK_LOCAL,
        TARGET,
        Solicitor {
            address: ASKER,
            mac: THEIRS,
        },
    )
    .payload
    else {
        panic!("an advertisement is NDP");
    };
    let unspecified = NdpPacket {
        source: Ipv6Addr::UNSPECIFIED,
        ..answer.clone()
    };
    assert_eq!(
        NdpPacket::parse(&ipv6_bytes(unspecified)),
        Err(NdpError::UnspecifiedSource)
    );
    let to_group = NdpPacket {
        destination: ALL_NODES,
        ..answer.clone()
    };
    assert_eq!(
        NdpPacket::parse(&ipv6_bytes(to_group)),
        Err(NdpError::SolicitedToMulticast(ALL_NODES))
    );
    assert_eq!(NdpPacket::parse(&ipv6_bytes(answer.clone())), Ok(answer));
}

#[test]
fn a_solicited_answer_goes_to_the_solicitor_and_a_dad_answer_to_all_nodes() {
    let asked = solicited_advertisement(
        OURS,
        LINK_LOCAL,
        TARGET,
        Solicitor {
            address: ASKER,
            mac: THEIRS,
        },
    );
    assert_eq!(asked.ethernet.destination, THEIRS);
    assert_eq!(asked.ethernet.source, OURS);
    let packet = asked.payload_ndp();
    assert_eq!((packet.source, packet.destination), (LINK_LOCAL, ASKER));
    let NdpMessage::Advertisement(advertisement) = packet.message else {
        panic!("not an advertisement: {packet:?}");
    };
    assert_eq!(
        advertisement,
        NeighborAdvertisement {
            router: false,
            solicited: true,
            overrides: true,
            target: TARGET,
            target_link_address: Some(OURS),
        }
    );

    let dad = solicited_advertisement(
        OURS,
        LINK_LOCAL,
        TARGET,
        Solicitor {
            address: Ipv6Addr::UNSPECIFIED,
            mac: THEIRS,
        },
    );
    assert_eq!(dad.ethernet.destination, Mac([0x33, 0x33, 0, 0, 0, 1]));
    let packet = dad.payload_ndp();
    assert_eq!(packet.destination, ALL_NODES);
    let NdpMessage::Advertisement(advertisement) = packet.message else {
        panic!("not an advertisement: {packet:?}");
    };
    assert!(!advertisement.solicited && advertisement.overrides);
}

#[test]
fn a_dad_solicitation_goes_to_the_targets_group_without_an_option() {
    let frame = dad_solicitation(OURS, TARGET);
    assert_eq!(
        frame.ethernet.destination,
        Mac([0x33, 0x33, 0xff, 0x45, 0x67, 0x89])
    );
    assert_eq!(
        frame.payload_ndp(),
        &NdpPacket {
            source: Ipv6Addr::UNSPECIFIED,
            destination: solicited_node(TARGET),
            message: NdpMessage::Solicitation(NeighborSolicitation {
                target: TARGET,
                source_link_address: None,
            }),
        }
    );
    assert_eq!(Frame::parse(&frame.to_bytes()), Ok(frame));
}
