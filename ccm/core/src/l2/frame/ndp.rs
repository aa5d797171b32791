//! IPv6 Neighbor Discovery (RFC 4861) as the responder sees it: Neighbor Solicitations and
//! Advertisements in an IPv6 packet with no extension header, checked as §7.1 says a node
//! checks them; the ICMPv6 checksum (RFC 4443 §2.3); the solicited-node groups and their MACs
//! (RFC 4291 §2.7.1, RFC 2464 §7); the advertisements and solicitations the responder sends.

use std::net::Ipv6Addr;

use super::{Mac, Reader, Truncated};

mod build;
mod checksum;

pub use build::{dad_solicitation, solicited_advertisement, unsolicited_advertisement};
pub use checksum::checksum;
use checksum::verify_checksum;

/// The IPv6 next-header value of ICMPv6.
const NEXT_HEADER_ICMPV6: u8 = 58;
/// The only hop limit a Neighbor Discovery message may arrive with: it proves the sender is on
/// the link (RFC 4861 §7.1).
pub const HOP_LIMIT: u8 = 255;
const TYPE_SOLICITATION: u8 = 135;
const TYPE_ADVERTISEMENT: u8 = 136;
const OPTION_SOURCE_LINK_ADDRESS: u8 = 1;
const OPTION_TARGET_LINK_ADDRESS: u8 = 2;
/// ICMPv6 header (4) + reserved or flags (4) + target (16): what an NS or NA has before its
/// options.
const MESSAGE_MIN: usize = 24;
const FLAG_ROUTER: u32 = 0x8000_0000;
const FLAG_SOLICITED: u32 = 0x4000_0000;
const FLAG_OVERRIDE: u32 = 0x2000_0000;

/// ff02::1, every node on the link.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// An IPv6 packet carrying a Neighbor Solicitation or Advertisement. Its hop limit was 255
/// (or it would not have parsed); traffic class and flow label are not kept, and we send 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NdpPacket {
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
    pub message: NdpMessage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NdpMessage {
    Solicitation(NeighborSolicitation),
    Advertisement(NeighborAdvertisement),
}

/// Who has `target`? From `::` it is Duplicate Address Detection (RFC 4862 §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborSolicitation {
    pub target: Ipv6Addr,
    /// The Source Link-Layer Address option (the first, if several).
    pub source_link_address: Option<Mac>,
}

/// `target` is at `target_link_address` (or at the sender's MAC, when the option is left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborAdvertisement {
    /// R: the sender is a router.
    pub router: bool,
    /// S: an answer to a solicitation.
    pub solicited: bool,
    /// O: replace a cached link-layer address (the owner's answer, not a proxy's).
    pub overrides: bool,
    pub target: Ipv6Addr,
    /// The Target Link-Layer Address option (the first, if several).
    pub target_link_address: Option<Mac>,
}

/// What an advertisement answers: the solicitation's source address (`::` for DAD) and the
/// MAC to send to — its Source Link-Layer Address option, else the frame's Ethernet source
/// (a unicast NS may leave the option out, RFC 4861 §4.3, and we keep no neighbour cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solicitor {
    pub address: Ipv6Addr,
    pub mac: Mac,
}

/// A packet this module does not read, or one RFC 4861 §7.1 says to discard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NdpError {
    #[error("truncated IPv6 packet")]
    Truncated(#[from] Truncated),
    #[error("IP version {0}, not 6")]
    Version(u8),
    #[error(
        "extension header {0} before the upper layer: neighbor discovery is read only directly after the IPv6 header"
    )]
    ExtensionHeader(u8),
    #[error("next header {0} is not ICMPv6 (58)")]
    NextHeader(u8),
    #[error("payload length {declared} but {available} bytes follow the IPv6 header")]
    PayloadLength { declared: usize, available: usize },
    #[error("ICMPv6 type {0} is neither a neighbor solicitation (135) nor an advertisement (136)")]
    IcmpType(u8),
    #[error("hop limit {0}, not 255: the packet did not come from the link")]
    HopLimit(u8),
    #[error("ICMPv6 code {0}, not 0")]
    IcmpCode(u8),
    #[error(
        "an ICMPv6 message of {0} bytes is shorter than a neighbor solicitation or advertisement (24)"
    )]
    MessageLength(usize),
    #[error("ICMPv6 checksum {found:#06x}, expected {expected:#06x}")]
    Checksum { found: u16, expected: u16 },
    #[error("option {kind} at byte {offset} of the message has length 0")]
    OptionZeroLength { kind: u8, offset: usize },
    #[error("option at byte {offset} of the message runs past its end ({left} bytes left)")]
    OptionOverrun { offset: usize, left: usize },
    #[error("link-layer address option {kind} of {units} units, not Ethernet's 1")]
    LinkLayerOptionLength { kind: u8, units: u8 },
    #[error("source {0} is a multicast address")]
    MulticastSource(Ipv6Addr),
    #[error("target {0} is a multicast address")]
    MulticastTarget(Ipv6Addr),
    #[error(
        "a duplicate address detection solicitation (source ::) to {0}, not a solicited-node group"
    )]
    DadDestination(Ipv6Addr),
    #[error(
        "a duplicate address detection solicitation (source ::) with a source link-layer address option"
    )]
    DadWithSourceLinkAddress,
    #[error("an advertisement from the unspecified address")]
    UnspecifiedSource,
    #[error("a solicited advertisement to the multicast address {0}")]
    SolicitedToMulticast(Ipv6Addr),
}

impl NdpError {
    /// Another upper layer or ICMPv6 message, as opposed to a broken or invalid one.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            NdpError::ExtensionHeader(_) | NdpError::NextHeader(_) | NdpError::IcmpType(_)
        )
    }
}

/// The IPv6 extension headers (IANA's "IPv6 Extension Header Types"): hop-by-hop, routing,
/// fragment, ESP, AH, destination options, mobility, HIP, shim6 and the two experimental ones.
fn is_extension_header(next_header: u8) -> bool {
    matches!(
        next_header,
        0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254
    )
}

/// The fixed IPv6 header's fields we use, and the payload it declares.
struct Header<'a> {
    hop_limit: u8,
    source: Ipv6Addr,
    destination: Ipv6Addr,
    payload: &'a [u8],
}

fn read_header(bytes: &[u8]) -> Result<Header<'_>, NdpError> {
    let mut reader = Reader::new(bytes);
    let version = reader.u8()? >> 4;
    if version != 6 {
        return Err(NdpError::Version(version));
    }
    let _traffic_class_and_flow_label = reader.take::<3>()?;
    let payload_length = usize::from(reader.u16()?);
    let next_header = reader.u8()?;
    let hop_limit = reader.u8()?;
    let source = reader.ipv6()?;
    let destination = reader.ipv6()?;
    if next_header != NEXT_HEADER_ICMPV6 {
        return Err(if is_extension_header(next_header) {
            NdpError::ExtensionHeader(next_header)
        } else {
            NdpError::NextHeader(next_header)
        });
    }
    // Bytes after the payload are padding; Linux trims them the same way.
    let rest = reader.rest();
    let Some((payload, _padding)) = rest.split_at_checked(payload_length) else {
        return Err(NdpError::PayloadLength {
            declared: payload_length,
            available: rest.len(),
        });
    };
    Ok(Header {
        hop_limit,
        source,
        destination,
        payload,
    })
}

impl NdpPacket {
    /// Reads an IPv6 packet carrying an NS or NA and applies RFC 4861 §7.1.1 / §7.1.2's
    /// validity checks. The message type is checked before the hop limit, so that other
    /// ICMPv6 traffic reads as unsupported rather than invalid.
    pub(super) fn parse(bytes: &[u8]) -> Result<NdpPacket, NdpError> {
        let header = read_header(bytes)?;
        let message = header.payload;
        let mut reader = Reader::new(message);
        let kind = reader.u8()?;
        if kind != TYPE_SOLICITATION && kind != TYPE_ADVERTISEMENT {
            return Err(NdpError::IcmpType(kind));
        }
        if header.hop_limit != HOP_LIMIT {
            return Err(NdpError::HopLimit(header.hop_limit));
        }
        let code = reader.u8()?;
        if code != 0 {
            return Err(NdpError::IcmpCode(code));
        }
        if message.len() < MESSAGE_MIN {
            return Err(NdpError::MessageLength(message.len()));
        }
        verify_checksum(header.source, header.destination, message)?;
        let _checksum = reader.u16()?;
        let flags = reader.u32()?;
        let target = reader.ipv6()?;
        let options = reader.rest();
        let message = if kind == TYPE_SOLICITATION {
            NdpMessage::Solicitation(NeighborSolicitation {
                target,
                source_link_address: link_address(options, OPTION_SOURCE_LINK_ADDRESS)?,
            })
        } else {
            NdpMessage::Advertisement(NeighborAdvertisement {
                router: flags & FLAG_ROUTER != 0,
                solicited: flags & FLAG_SOLICITED != 0,
                overrides: flags & FLAG_OVERRIDE != 0,
                target,
                target_link_address: link_address(options, OPTION_TARGET_LINK_ADDRESS)?,
            })
        };
        let packet = NdpPacket {
            source: header.source,
            destination: header.destination,
            message,
        };
        packet.validate()?;
        Ok(packet)
    }

    /// RFC 4861 §7.1's checks on addresses and flags (the lengths and the hop limit are
    /// checked while reading).
    fn validate(&self) -> Result<(), NdpError> {
        if self.source.is_multicast() {
            return Err(NdpError::MulticastSource(self.source));
        }
        match &self.message {
            NdpMessage::Solicitation(solicitation) => {
                if solicitation.target.is_multicast() {
                    return Err(NdpError::MulticastTarget(solicitation.target));
                }
                if self.source.is_unspecified() {
                    if !is_solicited_node(self.destination) {
                        return Err(NdpError::DadDestination(self.destination));
                    }
                    if solicitation.source_link_address.is_some() {
                        return Err(NdpError::DadWithSourceLinkAddress);
                    }
                }
            }
            NdpMessage::Advertisement(advertisement) => {
                if advertisement.target.is_multicast() {
                    return Err(NdpError::MulticastTarget(advertisement.target));
                }
                // RFC 4861 §4.4: the source is an address of the sending interface.
                if self.source.is_unspecified() {
                    return Err(NdpError::UnspecifiedSource);
                }
                if advertisement.solicited && self.destination.is_multicast() {
                    return Err(NdpError::SolicitedToMulticast(self.destination));
                }
            }
        }
        Ok(())
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) {
        let (kind, flags, target, option) = match &self.message {
            NdpMessage::Solicitation(solicitation) => (
                TYPE_SOLICITATION,
                0,
                solicitation.target,
                (solicitation.source_link_address).map(|mac| (OPTION_SOURCE_LINK_ADDRESS, mac)),
            ),
            NdpMessage::Advertisement(advertisement) => (
                TYPE_ADVERTISEMENT,
                advertisement.flags(),
                advertisement.target,
                (advertisement.target_link_address).map(|mac| (OPTION_TARGET_LINK_ADDRESS, mac)),
            ),
        };
        // The message is 24 bytes, 32 with the option: the payload length, known up front.
        let length: u16 = if option.is_some() { 32 } else { 24 };
        let mut message = Vec::with_capacity(usize::from(length));
        message.extend_from_slice(&[kind, 0, 0, 0]);
        message.extend_from_slice(&flags.to_be_bytes());
        message.extend_from_slice(&target.octets());
        if let Some((option, mac)) = option {
            message.extend_from_slice(&[option, 1]);
            message.extend_from_slice(&mac.0);
        }
        let checksum = checksum(self.source, self.destination, &message);
        message[2..4].copy_from_slice(&checksum.to_be_bytes());

        out.extend_from_slice(&[0x60, 0, 0, 0]);
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&[NEXT_HEADER_ICMPV6, HOP_LIMIT]);
        out.extend_from_slice(&self.source.octets());
        out.extend_from_slice(&self.destination.octets());
        out.extend_from_slice(&message);
    }
}

impl NeighborAdvertisement {
    fn flags(&self) -> u32 {
        let mut flags = 0;
        if self.router {
            flags |= FLAG_ROUTER;
        }
        if self.solicited {
            flags |= FLAG_SOLICITED;
        }
        if self.overrides {
            flags |= FLAG_OVERRIDE;
        }
        flags
    }
}

/// The first link-layer address option of type `wanted`, after checking that every option
/// has a nonzero length and ends inside the message (RFC 4861 §7.1). Other options (a DAD
/// nonce, RFC 7527) are skipped, as §4.6 says. Each turn consumes at least 8 bytes, so the
/// loop is bounded by the input.
fn link_address(mut options: &[u8], wanted: u8) -> Result<Option<Mac>, NdpError> {
    let mut found = None;
    let mut offset = MESSAGE_MIN;
    while !options.is_empty() {
        let overrun = NdpError::OptionOverrun {
            offset,
            left: options.len(),
        };
        let Some(&[kind, units]) = options.first_chunk::<2>() else {
            return Err(overrun);
        };
        if units == 0 {
            return Err(NdpError::OptionZeroLength { kind, offset });
        }
        let length = usize::from(units) * 8;
        let Some((option, rest)) = options.split_at_checked(length) else {
            return Err(overrun);
        };
        if kind == wanted && found.is_none() {
            // Ethernet's option is 8 bytes: type, length, the 6-byte MAC (RFC 2464 §6).
            let Some(&[_, _, a, b, c, d, e, f]) = option.first_chunk::<8>().filter(|_| units == 1)
            else {
                return Err(NdpError::LinkLayerOptionLength { kind, units });
            };
            found = Some(Mac([a, b, c, d, e, f]));
        }
        options = rest;
        offset += length;
    }
    Ok(found)
}

/// The solicited-node multicast group of `address` (RFC 4291 §2.7.1): ff02::1:ff and the
/// address's low 24 bits. Solicitations for the address go there.
pub fn solicited_node(address: Ipv6Addr) -> Ipv6Addr {
    let [.., a, b, c] = address.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(a),
        u16::from_be_bytes([b, c]),
    )
}

/// Whether `address` is in ff02::1:ff00:0/104.
pub fn is_solicited_node(address: Ipv6Addr) -> bool {
    let [a, b, c, d, e, f, g, _] = address.segments();
    [a, b, c, d, e, f] == [0xff02, 0, 0, 0, 0, 1] && g >> 8 == 0xff
}

/// The Ethernet address of IPv6 multicast `group` (RFC 2464 §7): 33:33 and the group's low
/// 32 bits.
pub fn multicast_mac(group: Ipv6Addr) -> Mac {
    let [.., a, b, c, d] = group.octets();
    Mac([0x33, 0x33, a, b, c, d])
}

/// The link-local address Linux gives an interface with this MAC by default (RFC 4291
/// appendix A, RFC 2464 §5: fe80::/64 and the modified EUI-64 identifier). The golden tests
/// use it to check the captured hosts' addresses.
pub fn link_local_from_mac(mac: Mac) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        a ^ 0x02,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

#[cfg(test)]
mod tests;
