//! Fuzz-style properties: no input makes the parser panic — random bytes, the captured frames
//! cut at every length, with bits flipped or their tails replaced — and every frame we build,
//! or read and write again, reads back as itself.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::golden::{ALL, bytes_of};
use super::ndp::{self, NdpMessage, NeighborAdvertisement, NeighborSolicitation, Solicitor};
use super::{ArpOperation, ArpPacket, Ethernet, Frame, Mac, NdpPacket, Payload, VlanTag, arp};

/// Whatever parses, written and read again, is the same frame: what we keep of a frame is
/// what we write.
fn check_rewrite(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(frame) = Frame::parse(bytes) {
        prop_assert_eq!(Frame::parse(&frame.to_bytes()), Ok(frame));
    }
    Ok(())
}

#[test]
fn captured_frames_cut_at_every_length_never_panic() {
    for (name, text) in ALL {
        let bytes = bytes_of(text);
        for length in 0..bytes.len() {
            // Only ARP padding can go: a cut inside a header or a message is an error.
            let parsed = Frame::parse(&bytes[..length]);
            if length < 42 || name.starts_with("nd") {
                assert!(parsed.is_err(), "{name} cut to {length}: {parsed:?}");
            }
        }
    }
}

fn mac() -> impl Strategy<Value = Mac> {
    any::<[u8; 6]>().prop_map(Mac)
}

fn unicast_ipv6() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>()
        .prop_map(Ipv6Addr::from)
        .prop_filter("unicast", |address| {
            !address.is_multicast() && !address.is_unspecified()
        })
}

fn vlan() -> impl Strategy<Value = Option<VlanTag>> {
    proptest::option::of((0..8u8, any::<bool>(), 0..4096u16).prop_map(
        |(priority, drop_eligible, id)| VlanTag {
            priority,
            drop_eligible,
            id,
        },
    ))
}

fn arp_frame() -> impl Strategy<Value = Frame> {
    let packet = (any::<bool>(), mac(), any::<u32>(), mac(), any::<u32>()).prop_map(
        |(request, sender_mac, sender_ip, target_mac, target_ip)| ArpPacket {
            operation: if request {
                ArpOperation::Request
            } else {
                ArpOperation::Reply
            },
            sender_mac,
            sender_ip: Ipv4Addr::from(sender_ip),
            target_mac,
            target_ip: Ipv4Addr::from(target_ip),
        },
    );
    (mac(), mac(), vlan(), packet).prop_map(|(destination, source, vlan, packet)| Frame {
        ethernet: Ethernet {
            destination,
            source,
            vlan,
        },
        payload: Payload::Arp(packet),
    })
}

/// Any valid NS or NA (RFC 4861 §7.1's rules hold by construction).
fn ndp_frame() -> impl Strategy<Value = Frame> {
    let solicitation = (
        any::<bool>(),
        unicast_ipv6(),
        unicast_ipv6(),
        unicast_ipv6(),
        proptest::option::of(mac()),
    )
        .prop_map(|(dad, source, destination, target, option)| {
            let message = |source_link_address| {
                NdpMessage::Solicitation(NeighborSolicitation {
                    target,
                    source_link_address,
                })
            };
            if dad {
                NdpPacket {
                    source: Ipv6Addr::UNSPECIFIED,
                    destination: ndp::solicited_node(target),
                    message: message(None),
                }
            } else {
                NdpPacket {
                    source,
                    destination,
                    message: message(option),
                }
            }
        });
    let advertisement = (
        any::<[bool; 4]>(),
        unicast_ipv6(),
        unicast_ipv6(),
        unicast_ipv6(),
        proptest::option::of(mac()),
    )
        .prop_map(
            |([router, solicited, overrides, to_all], source, destination, target, option)| {
                NdpPacket {
                    source,
                    destination: if to_all && !solicited {
                        ndp::ALL_NODES
                    } else {
                        destination
                    },
                    message: NdpMessage::Advertisement(NeighborAdvertisement {
                        router,
                        solicited,
                        overrides,
                        target,
                        target_link_address: option,
                    }),
                }
            },
        );
    let packet = prop_oneof![solicitation, advertisement];
    (mac(), mac(), vlan(), packet).prop_map(|(destination, source, vlan, packet)| Frame {
        ethernet: Ethernet {
            destination,
            source,
            vlan,
        },
        payload: Payload::Ndp(packet),
    })
}

/// The frames the responder builds, from random MACs and addresses.
fn built_frame() -> impl Strategy<Value = Frame> {
    let ipv4 = any::<u32>().prop_map(Ipv4Addr::from);
    (
        0..7usize,
        mac(),
        mac(),
        ipv4.clone(),
        ipv4,
        unicast_ipv6(),
        unicast_ipv6(),
        unicast_ipv6(),
    )
        .prop_map(
            |(which, ours, theirs, v4, their_v4, link_local, v6, their_v6)| {
                let request = arp::probe(theirs, v4).payload_arp();
                let request = ArpPacket {
                    sender_ip: their_v4,
                    ..request
                };
                let solicitor = Solicitor {
                    address: their_v6,
                    mac: theirs,
                };
                let dad = Solicitor {
                    address: Ipv6Addr::UNSPECIFIED,
                    ..solicitor
                };
                match which {
                    0 => arp::reply(ours, &request),
                    1 => arp::gratuitous_request(ours, v4),
                    2 => arp::gratuitous_reply(ours, v4),
                    3 => arp::probe(ours, v4),
                    4 => ndp::solicited_advertisement(ours, link_local, v6, solicitor),
                    5 => ndp::solicited_advertisement(ours, link_local, v6, dad),
                    _ => ndp::dad_solicitation(ours, v6),
                }
            },
        )
}

fn golden_frame() -> impl Strategy<Value = Vec<u8>> {
    (0..ALL.len()).prop_map(|index| bytes_of(ALL[index].1))
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        check_rewrite(&bytes)?;
    }

    #[test]
    fn captured_frames_with_bits_flipped_never_panic(
        frame in golden_frame(),
        flips in proptest::collection::vec(any::<proptest::sample::Index>(), 1..4),
        bits in proptest::collection::vec(0..8u8, 4),
    ) {
        let mut bytes = frame;
        for (flip, bit) in flips.iter().zip(&bits) {
            let at = flip.index(bytes.len());
            bytes[at] ^= 1 << bit;
        }
        check_rewrite(&bytes)?;
    }

    #[test]
    fn captured_frames_with_their_tail_replaced_never_panic(
        frame in golden_frame(),
        cut in any::<proptest::sample::Index>(),
        tail in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut bytes = frame;
        bytes.truncate(cut.index(bytes.len()));
        bytes.extend_from_slice(&tail);
        check_rewrite(&bytes)?;
    }

    #[test]
    fn every_frame_we_build_reads_back_as_built(frame in built_frame()) {
        prop_assert_eq!(Frame::parse(&frame.to_bytes()), Ok(frame));
    }

    #[test]
    fn any_valid_arp_or_ndp_frame_reads_back_as_written(frame in prop_oneof![arp_frame(), ndp_frame()]) {
        prop_assert_eq!(Frame::parse(&frame.to_bytes()), Ok(frame));
    }
}
