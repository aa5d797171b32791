//! ARP for IPv4 over Ethernet (RFC 826): the packet, what kind of request or reply it is
//! (RFC 5227 probes and announcements, gratuitous replies), and the frames the responder
//! sends.

use std::net::Ipv4Addr;

use super::{Ethernet, Frame, Mac, Payload, Reader, Truncated};

/// Hardware type Ethernet (RFC 826's `ares_hrd$Ethernet`).
const HARDWARE_ETHERNET: u16 = 1;
/// Protocol type IPv4: the ethertype of the protocol being resolved.
const PROTOCOL_IPV4: u16 = 0x0800;
const OPERATION_REQUEST: u16 = 1;
const OPERATION_REPLY: u16 = 2;

/// An ARP packet resolving an IPv4 address to an Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    pub operation: ArpOperation,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

/// The ARP operation (opcode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOperation {
    Request,
    Reply,
}

/// What an ARP packet means, from its operation and addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpKind {
    /// Who has the target address? (The target MAC is ignored, as RFC 826 ignores it.)
    Request,
    /// The sender has the sender address.
    Reply,
    /// RFC 5227 §2.1.1 probe: a request with sender address 0.0.0.0, from a host about to use
    /// the target address. The target MAC is not checked: the RFC says receivers ignore it.
    Probe,
    /// A gratuitous ARP in request form (RFC 5227's announcement): sender address = target
    /// address. Whatever the target MAC holds (zero from Linux, broadcast from some tools).
    GratuitousRequest,
    /// A gratuitous ARP in reply form: sender address = target address. The target MAC is
    /// not checked: RFC 5944 §4.6 sets it to the sender's MAC, others use broadcast, and
    /// either way the sender claims the address.
    GratuitousReply,
}

/// An ARP packet this module does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArpError {
    #[error("truncated ARP packet")]
    Truncated(#[from] Truncated),
    #[error("hardware type {0} is not Ethernet (1)")]
    HardwareType(u16),
    #[error("protocol type {0:#06x} is not IPv4 (0x0800)")]
    ProtocolType(u16),
    #[error("hardware address length {0} is not Ethernet's 6")]
    HardwareLength(u8),
    #[error("protocol address length {0} is not IPv4's 4")]
    ProtocolLength(u8),
    #[error("operation {0} is neither request (1) nor reply (2)")]
    Operation(u16),
}

impl ArpError {
    /// Another hardware, protocol or operation (RARP, InARP), as opposed to a broken packet.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            ArpError::HardwareType(_) | ArpError::ProtocolType(_) | ArpError::Operation(_)
        )
    }
}

impl ArpPacket {
    /// The length of an ARP packet for IPv4 over Ethernet.
    pub const LEN: usize = 28;

    /// Reads the packet; the types and lengths are checked in the order they come, so the
    /// error names the first field that is not IPv4 over Ethernet. Bytes after the packet
    /// (Ethernet padding) are ignored.
    pub(super) fn parse(bytes: &[u8]) -> Result<ArpPacket, ArpError> {
        if bytes.len() < Self::LEN {
            return Err(Truncated {
                len: bytes.len(),
                needed: Self::LEN,
            }
            .into());
        }
        let mut reader = Reader::new(bytes);
        let hardware = reader.u16()?;
        if hardware != HARDWARE_ETHERNET {
            return Err(ArpError::HardwareType(hardware));
        }
        let protocol = reader.u16()?;
        if protocol != PROTOCOL_IPV4 {
            return Err(ArpError::ProtocolType(protocol));
        }
        let hardware_length = reader.u8()?;
        if hardware_length != 6 {
            return Err(ArpError::HardwareLength(hardware_length));
        }
        let protocol_length = reader.u8()?;
        if protocol_length != 4 {
            return Err(ArpError::ProtocolLength(protocol_length));
        }
        let operation = match reader.u16()? {
            OPERATION_REQUEST => ArpOperation::Request,
            OPERATION_REPLY => ArpOperation::Reply,
            other => return Err(ArpError::Operation(other)),
        };
        Ok(ArpPacket {
            operation,
            sender_mac: reader.mac()?,
            sender_ip: reader.ipv4()?,
            target_mac: reader.mac()?,
            target_ip: reader.ipv4()?,
        })
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) {
        let operation = match self.operation {
            ArpOperation::Request => OPERATION_REQUEST,
            ArpOperation::Reply => OPERATION_REPLY,
        };
        out.extend_from_slice(&HARDWARE_ETHERNET.to_be_bytes());
        out.extend_from_slice(&PROTOCOL_IPV4.to_be_bytes());
        out.extend_from_slice(&[6, 4]);
        out.extend_from_slice(&operation.to_be_bytes());
        out.extend_from_slice(&self.sender_mac.0);
        out.extend_from_slice(&self.sender_ip.octets());
        out.extend_from_slice(&self.target_mac.0);
        out.extend_from_slice(&self.target_ip.octets());
    }

    /// What the packet means.
    pub fn kind(&self) -> ArpKind {
        let claims_own_address =
            self.sender_ip == self.target_ip && !self.sender_ip.is_unspecified();
        match self.operation {
            ArpOperation::Request if self.sender_ip.is_unspecified() => ArpKind::Probe,
            ArpOperation::Request if claims_own_address => ArpKind::GratuitousRequest,
            ArpOperation::Request => ArpKind::Request,
            ArpOperation::Reply if claims_own_address => ArpKind::GratuitousReply,
            ArpOperation::Reply => ArpKind::Reply,
        }
    }
}

/// The reply to `request` from the owner of its target address: unicast to the requester's
/// MAC (the packet's sender MAC, as Linux answers), sender = (`our_mac`, the requested
/// address), target = the requester. A probe's reply goes to target address 0.0.0.0, as
/// RFC 5227 §2.1.1 expects and Linux does.
pub fn reply(our_mac: Mac, request: &ArpPacket) -> Frame {
    frame(
        request.sender_mac,
        our_mac,
        ArpPacket {
            operation: ArpOperation::Reply,
            sender_mac: our_mac,
            sender_ip: request.target_ip,
            target_mac: request.sender_mac,
            target_ip: request.sender_ip,
        },
    )
}

/// A gratuitous ARP in request form (RFC 5227 §3 announcement) to broadcast: sender and
/// target address = `address`, target MAC zero — the form Linux sends itself (`arp_notify`).
pub fn gratuitous_request(our_mac: Mac, address: Ipv4Addr) -> Frame {
    frame(
        Mac::BROADCAST,
        our_mac,
        ArpPacket {
            operation: ArpOperation::Request,
            sender_mac: our_mac,
            sender_ip: address,
            target_mac: Mac::ZERO,
            target_ip: address,
        },
    )
}

/// A gratuitous ARP in reply form to broadcast: sender and target address = `address`,
/// target MAC broadcast. For the neighbours that update their caches from replies only;
/// Linux accepts a reply-form GARP whose target MAC is broadcast or the sender's.
pub fn gratuitous_reply(our_mac: Mac, address: Ipv4Addr) -> Frame {
    frame(
        Mac::BROADCAST,
        our_mac,
        ArpPacket {
            operation: ArpOperation::Reply,
            sender_mac: our_mac,
            sender_ip: address,
            target_mac: Mac::BROADCAST,
            target_ip: address,
        },
    )
}

/// An RFC 5227 §2.1.1 probe for `address` to broadcast: sender address 0.0.0.0 (so no
/// neighbour learns anything from it), target MAC zero.
pub fn probe(our_mac: Mac, address: Ipv4Addr) -> Frame {
    frame(
        Mac::BROADCAST,
        our_mac,
        ArpPacket {
            operation: ArpOperation::Request,
            sender_mac: our_mac,
            sender_ip: Ipv4Addr::UNSPECIFIED,
            target_mac: Mac::ZERO,
            target_ip: address,
        },
    )
}

fn frame(destination: Mac, source: Mac, packet: ArpPacket) -> Frame {
    Frame {
        ethernet: Ethernet {
            destination,
            source,
            vlan: None,
        },
        payload: Payload::Arp(packet),
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a failed unwrap is a failed test"
    )]

    use super::*;

    const OURS: Mac = Mac([2, 0, 0, 0, 0, 0x0b]);
    const ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

    fn request_bytes() -> Vec<u8> {
        let mut bytes = Vec::new();
        probe(OURS, ADDRESS).payload_arp().write(&mut bytes);
        bytes
    }

    #[test]
    fn each_field_that_is_not_ipv4_over_ethernet_is_named() {
        let cases: [(usize, &[u8], ArpError); 5] = [
            (0, &[0, 6], ArpError::HardwareType(6)),
            (2, &[0x86, 0xdd], ArpError::ProtocolType(0x86dd)),
            (4, &[8], ArpError::HardwareLength(8)),
            (5, &[16], ArpError::ProtocolLength(16)),
            (6, &[0, 3], ArpError::Operation(3)),
        ];
        for (offset, value, expected) in cases {
            let mut bytes = request_bytes();
            bytes[offset..offset + value.len()].copy_from_slice(value);
            assert_eq!(ArpPacket::parse(&bytes), Err(expected.clone()));
        }
        assert!(ArpError::Operation(3).is_unsupported());
        assert!(!ArpError::HardwareLength(8).is_unsupported());
    }

    #[test]
    fn a_packet_shorter_than_28_bytes_is_truncated_and_padding_is_ignored() {
        let bytes = request_bytes();
        assert_eq!(
            ArpPacket::parse(&bytes[..27]),
            Err(ArpError::Truncated(Truncated {
                len: 27,
                needed: 28
            }))
        );
        let padded = [bytes.as_slice(), &[0; 18]].concat();
        assert_eq!(ArpPacket::parse(&padded), ArpPacket::parse(&bytes));
    }

    #[test]
    fn kinds_follow_from_the_operation_and_the_addresses() {
        let request = ArpPacket {
            operation: ArpOperation::Request,
            sender_mac: Mac([2, 0, 0, 0, 0, 0x0a]),
            sender_ip: Ipv4Addr::new(192, 0, 2, 1),
            target_mac: Mac::ZERO,
            target_ip: ADDRESS,
        };
        assert_eq!(request.kind(), ArpKind::Request);
        assert_eq!(reply(OURS, &request).payload_arp().kind(), ArpKind::Reply);
        assert_eq!(probe(OURS, ADDRESS).payload_arp().kind(), ArpKind::Probe);
        let announcement = gratuitous_request(OURS, ADDRESS).payload_arp();
        assert_eq!(announcement.kind(), ArpKind::GratuitousRequest);
        let gratuitous_reply = gratuitous_reply(OURS, ADDRESS).payload_arp();
        assert_eq!(gratuitous_reply.kind(), ArpKind::GratuitousReply);
        // A reply-form GARP with the sender's MAC as target (RFC 5944 §4.6) is one too.
        let rfc_5944 = ArpPacket {
            target_mac: OURS,
            ..gratuitous_reply
        };
        assert_eq!(rfc_5944.kind(), ArpKind::GratuitousReply);
        // 0.0.0.0 asking for 0.0.0.0 is a probe, not an announcement of nothing.
        let empty = ArpPacket {
            target_ip: Ipv4Addr::UNSPECIFIED,
            ..probe(OURS, ADDRESS).payload_arp()
        };
        assert_eq!(empty.kind(), ArpKind::Probe);
    }

    #[test]
    fn a_reply_to_a_probe_goes_to_the_prober_with_target_address_zero() {
        let prober = Mac([2, 0, 0, 0, 0, 0x0a]);
        let frame = reply(OURS, &probe(prober, ADDRESS).payload_arp());
        assert_eq!(frame.ethernet.destination, prober);
        assert_eq!(frame.ethernet.source, OURS);
        assert_eq!(
            frame.payload_arp(),
            ArpPacket {
                operation: ArpOperation::Reply,
                sender_mac: OURS,
                sender_ip: ADDRESS,
                target_mac: prober,
                target_ip: Ipv4Addr::UNSPECIFIED,
            }
        );
    }
}
