//! Ethernet II frames carrying ARP for IPv4 (RFC 826, RFC 5227) or IPv6 Neighbor Discovery
//! (RFC 4861): parsed from the bytes a packet socket reads, built as the bytes the responder
//! sends. Parsing reads fixed-size fields through one checked reader, so no input makes it
//! panic, and it allocates nothing.
//!
//! **802.1Q tags are accepted and reported, one deep.** A packet socket bound to a VLAN device
//! reads its frames untagged, and Linux moves the tag of a frame read on the parent device
//! into the packet's auxiliary data (`PACKET_AUXDATA`), not the bytes; but a tag can still be
//! in the bytes (capture files, which put it back; drivers without VLAN offload on some paths).
//! Reporting it, rather than failing the frame, lets the responder say why it ignores the
//! frame (answering it, tagged or not, would announce on a VLAN nobody selected) and lets tests
//! read captured tagged frames. Two tags (QinQ) or an 802.1ad outer tag are refused: nothing we
//! bind to should see them, and reading deeper would be guessing.

pub mod arp;
pub mod ndp;

#[cfg(test)]
pub(crate) mod golden;
#[cfg(test)]
mod props;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

pub use arp::{ArpError, ArpKind, ArpOperation, ArpPacket};
pub use ndp::{
    NdpError, NdpMessage, NdpPacket, NeighborAdvertisement, NeighborSolicitation, Solicitor,
};

/// The ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// The ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// The ethertype (TPID) of an 802.1Q tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// The ethertype (TPID) of an 802.1ad service tag (QinQ outer tag).
const ETHERTYPE_SERVICE_VLAN: u16 = 0x88a8;

/// An Ethernet (EUI-48) address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    /// 00:00:00:00:00:00, what an ARP request carries as the target MAC it does not know.
    pub const ZERO: Mac = Mac([0; 6]);

    /// The group bit (the first octet's lowest bit): multicast, broadcast included.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An 802.1Q tag's control information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    /// Priority code point, 0–7.
    pub priority: u8,
    pub drop_eligible: bool,
    /// VLAN identifier, 0–4095.
    pub id: u16,
}

impl VlanTag {
    fn from_tci(tci: u16) -> VlanTag {
        VlanTag {
            // Three bits after the shift: the cast keeps all of them.
            priority: (tci >> 13) as u8,
            drop_eligible: tci & 0x1000 != 0,
            id: tci & 0x0fff,
        }
    }

    fn tci(self) -> u16 {
        (u16::from(self.priority & 0x7) << 13)
            | (u16::from(self.drop_eligible) << 12)
            | (self.id & 0x0fff)
    }
}

/// An Ethernet II header; the ethertype follows from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ethernet {
    pub destination: Mac,
    pub source: Mac,
    /// The 802.1Q tag, if the frame carried one.
    pub vlan: Option<VlanTag>,
}

/// What a frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Arp(ArpPacket),
    Ndp(NdpPacket),
}

/// An Ethernet frame carrying ARP or a Neighbor Solicitation or Advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub ethernet: Ethernet,
    pub payload: Payload,
}

/// Fewer bytes than a header or message needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{len} bytes where at least {needed} are needed")]
pub struct Truncated {
    pub len: usize,
    pub needed: usize,
}

/// A frame that is not one this module reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("truncated Ethernet header")]
    Ethernet(#[from] Truncated),
    #[error("ethertype {0:#06x} is neither ARP nor IPv6")]
    Ethertype(u16),
    #[error("a second VLAN tag (TPID {0:#06x}) inside the first: stacked tags are not read")]
    StackedVlanTags(u16),
    #[error("invalid ARP packet")]
    Arp(#[from] ArpError),
    #[error("invalid neighbor discovery packet")]
    Ndp(#[from] NdpError),
}

impl ParseError {
    /// Whether the frame is well formed but of a kind the responder does not handle (another
    /// protocol, hardware type or message type), as opposed to broken.
    pub fn is_unsupported(&self) -> bool {
        match self {
            ParseError::Ethernet(_) => false,
            ParseError::Ethertype(_) | ParseError::StackedVlanTags(_) => true,
            ParseError::Arp(error) => error.is_unsupported(),
            ParseError::Ndp(error) => error.is_unsupported(),
        }
    }
}

impl Frame {
    /// Reads a frame. Bytes after the ARP packet or the IPv6 payload (Ethernet padding) are
    /// ignored, as the kernel ignores them.
    pub fn parse(bytes: &[u8]) -> Result<Frame, ParseError> {
        let mut reader = Reader::new(bytes);
        let (ethernet, ethertype) = read_ethernet(&mut reader)?;
        let payload = match ethertype {
            ETHERTYPE_ARP => Payload::Arp(ArpPacket::parse(reader.rest())?),
            ETHERTYPE_IPV6 => Payload::Ndp(NdpPacket::parse(reader.rest())?),
            other => return Err(ParseError::Ethertype(other)),
        };
        Ok(Frame { ethernet, payload })
    }

    /// The frame's bytes, as sent: no padding (the driver pads short frames, as it does the
    /// kernel's own 42-byte ARP frames).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(90);
        out.extend_from_slice(&self.ethernet.destination.0);
        out.extend_from_slice(&self.ethernet.source.0);
        if let Some(tag) = self.ethernet.vlan {
            out.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            out.extend_from_slice(&tag.tci().to_be_bytes());
        }
        match &self.payload {
            Payload::Arp(packet) => {
                out.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
                packet.write(&mut out);
            }
            Payload::Ndp(packet) => {
                out.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
                packet.write(&mut out);
            }
        }
        out
    }
}

#[cfg(test)]
impl Frame {
    /// The ARP packet, for tests.
    pub(crate) fn payload_arp(&self) -> ArpPacket {
        match &self.payload {
            Payload::Arp(packet) => *packet,
            Payload::Ndp(packet) => panic!("not ARP: {packet:?}"),
        }
    }

    /// The NDP packet, for tests.
    pub(crate) fn payload_ndp(&self) -> &NdpPacket {
        match &self.payload {
            Payload::Ndp(packet) => packet,
            Payload::Arp(packet) => panic!("not NDP: {packet:?}"),
        }
    }
}

/// The header and the payload's ethertype.
fn read_ethernet(reader: &mut Reader<'_>) -> Result<(Ethernet, u16), ParseError> {
    let destination = reader.mac()?;
    let source = reader.mac()?;
    let mut ethertype = reader.u16()?;
    let mut vlan = None;
    if ethertype == ETHERTYPE_VLAN {
        vlan = Some(VlanTag::from_tci(reader.u16()?));
        ethertype = reader.u16()?;
        if matches!(ethertype, ETHERTYPE_VLAN | ETHERTYPE_SERVICE_VLAN) {
            return Err(ParseError::StackedVlanTags(ethertype));
        }
    }
    let ethernet = Ethernet {
        destination,
        source,
        vlan,
    };
    Ok((ethernet, ethertype))
}

/// Reads fixed-size big-endian fields off the front of a byte slice. Every read is checked
/// against what is left, so no input can make a parser panic or read out of bounds.
#[derive(Debug)]
struct Reader<'a> {
    bytes: &'a [u8],
    len: usize,
    taken: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader {
            bytes,
            len: bytes.len(),
            taken: 0,
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let Some((head, rest)) = self.bytes.split_first_chunk::<N>() else {
            return Err(Truncated {
                len: self.len,
                needed: self.taken + N,
            });
        };
        self.bytes = rest;
        self.taken += N;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, Truncated> {
        let [byte] = self.take::<1>()?;
        Ok(byte)
    }

    fn u16(&mut self) -> Result<u16, Truncated> {
        self.take().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, Truncated> {
        self.take().map(u32::from_be_bytes)
    }

    fn mac(&mut self) -> Result<Mac, Truncated> {
        self.take().map(Mac)
    }

    fn ipv4(&mut self) -> Result<Ipv4Addr, Truncated> {
        self.take::<4>().map(Ipv4Addr::from)
    }

    fn ipv6(&mut self) -> Result<Ipv6Addr, Truncated> {
        self.take::<16>().map(Ipv6Addr::from)
    }

    /// What is left unread.
    fn rest(&self) -> &'a [u8] {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a failed unwrap is a failed test"
    )]

    use super::*;

    #[test]
    fn a_mac_reads_as_six_lowercase_hex_pairs() {
        let mac = Mac([0x02, 0x00, 0x5e, 0xab, 0xcd, 0x0f]);
        assert_eq!(mac.to_string(), "02:00:5e:ab:cd:0f");
        assert_eq!(format!("{mac:?}"), "02:00:5e:ab:cd:0f");
        assert!(!mac.is_multicast());
        assert!(Mac::BROADCAST.is_multicast());
        assert!(Mac([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
    }

    #[test]
    fn a_vlan_tag_keeps_every_field_of_its_control_information() {
        let tag = VlanTag {
            priority: 5,
            drop_eligible: true,
            id: 4094,
        };
        assert_eq!(tag.tci(), 0xbffe);
        assert_eq!(VlanTag::from_tci(0xbffe), tag);
    }

    #[test]
    fn a_short_header_says_how_many_bytes_it_needed() {
        let error = Frame::parse(&[0xff; 13]).unwrap_err();
        assert_eq!(
            error,
            ParseError::Ethernet(Truncated {
                len: 13,
                needed: 14
            })
        );
        let tagged = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x81, 0, 0,
        ];
        assert_eq!(
            Frame::parse(&tagged).unwrap_err(),
            ParseError::Ethernet(Truncated {
                len: 15,
                needed: 16
            })
        );
    }

    #[test]
    fn other_ethertypes_and_stacked_tags_are_unsupported_not_malformed() {
        let mut ipv4 = vec![0xff; 12];
        ipv4.extend_from_slice(&[0x08, 0x00, 0x45]);
        let error = Frame::parse(&ipv4).unwrap_err();
        assert_eq!(error, ParseError::Ethertype(0x0800));
        assert!(error.is_unsupported());

        let mut qinq = vec![0xff; 12];
        qinq.extend_from_slice(&[0x81, 0x00, 0x00, 0x64, 0x81, 0x00, 0x00, 0x65, 0x08, 0x06]);
        let error = Frame::parse(&qinq).unwrap_err();
        assert_eq!(error, ParseError::StackedVlanTags(0x8100));
        assert!(error.is_unsupported());

        let mut service_tag = vec![0xff; 12];
        service_tag.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x08, 0x06]);
        assert_eq!(
            Frame::parse(&service_tag).unwrap_err(),
            ParseError::Ethertype(0x88a8)
        );
    }
}
