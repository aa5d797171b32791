//! The ICMPv6 checksum (RFC 4443 §2.3): the ones' complement of the ones' complement sum of
//! the IPv6 pseudo-header (RFC 8200 §8.1) and the message.

use std::net::Ipv6Addr;

use super::{NEXT_HEADER_ICMPV6, NdpError};

/// The ICMPv6 checksum (RFC 4443 §2.3) of `message`, whose checksum field is zero, sent from
/// `source` to `destination`: the ones' complement of the ones' complement sum of the IPv6
/// pseudo-header (RFC 8200 §8.1) and the message.
pub fn checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    !fold(sum(source, destination, message.len(), &[message]))
}

/// Accepts the checksum the sender computed, or its other ones' complement form of zero.
pub(super) fn verify_checksum(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    message: &[u8],
) -> Result<(), NdpError> {
    let Some((&[kind, code, high, low], rest)) = message.split_first_chunk::<4>() else {
        return Err(NdpError::MessageLength(message.len()));
    };
    let found = u16::from_be_bytes([high, low]);
    let expected = !fold(sum(
        source,
        destination,
        message.len(),
        &[&[kind, code], rest],
    ));
    if found == expected || (expected == 0 && found == 0xffff) {
        Ok(())
    } else {
        Err(NdpError::Checksum { found, expected })
    }
}

/// The sum of the pseudo-header and of `pieces` as one run of 16-bit words (every piece but
/// the last has an even length). At most 64 KiB of input: no overflow in 64 bits.
fn sum(source: Ipv6Addr, destination: Ipv6Addr, length: usize, pieces: &[&[u8]]) -> u64 {
    let mut sum = words(&source.octets()) + words(&destination.octets());
    sum += length as u64 + u64::from(NEXT_HEADER_ICMPV6);
    for piece in pieces {
        sum += words(piece);
    }
    sum
}

fn words(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(2);
    let mut sum = 0;
    for pair in &mut chunks {
        if let &[high, low] = pair {
            sum += u64::from(u16::from_be_bytes([high, low]));
        }
    }
    if let &[last] = chunks.remainder() {
        sum += u64::from(last) << 8;
    }
    sum
}

/// Adds the carries back in until 16 bits are left.
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves at most 16 bits.
    sum as u16
}
