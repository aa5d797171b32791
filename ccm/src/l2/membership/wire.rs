//! The datagrams of the gossip port: a message type byte, its payload, and an HMAC-SHA256 tag
//! over both, so that only the holders of the key take part in the membership.

use std::fmt;
use std::net::SocketAddr;

use ring::hmac;
use serde::{Deserialize, Serialize};

use super::MembershipError;

/// The shortest key accepted: 128 bits.
pub(crate) const MIN_KEY_LEN: usize = 16;

/// The length of the tag appended to every datagram.
const TAG_LEN: usize = 32;

/// The speakers' shared secret (the bytes of `--l2-gossip-key-file`, as they are: every speaker
/// reads the same Secret, so a trailing newline is part of everyone's key). Its `Debug` shows
/// nothing of it.
#[derive(Clone)]
pub(crate) struct GossipKey {
    key: hmac::Key,
}

impl GossipKey {
    /// Refuses a key shorter than [`MIN_KEY_LEN`] bytes.
    pub(crate) fn new(bytes: &[u8]) -> Result<Self, MembershipError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(MembershipError::KeyTooShort { len: bytes.len() });
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        })
    }
}

impl fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GossipKey(<redacted>)")
    }
}

/// The keys a speaker holds: it signs with `key` and takes a datagram signed with `key` or
/// with `also` (the Secret's `previous-key`), so that the speakers can move to a new key one
/// by one without a moment in which two of them cannot hear each other.
#[derive(Debug, Clone)]
pub(crate) struct GossipKeys {
    key: GossipKey,
    also: Option<GossipKey>,
}

impl GossipKeys {
    pub(crate) fn new(key: GossipKey, also: Option<GossipKey>) -> Self {
        Self { key, also }
    }

    /// Whether a second key is accepted.
    pub(crate) fn two(&self) -> bool {
        self.also.is_some()
    }
}

impl From<GossipKey> for GossipKeys {
    fn from(key: GossipKey) -> Self {
        Self { key, also: None }
    }
}

/// What a datagram carries, its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A SWIM message, handed to foca as it is.
    Swim = 1,
    /// A message of the successor fast path ([`Probe`]).
    Probe = 2,
    /// One speaker's state ([`super::state::Announcement`]), sent straight to a member that
    /// has just appeared so that it need not wait for the periodic re-broadcast.
    State = 3,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Swim),
            2 => Some(Self::Probe),
            3 => Some(Self::State),
            _ => None,
        }
    }
}

/// Why a datagram was dropped (the `reason` label of `baremetal_ccm_l2_gossip_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rejected {
    /// Too short to hold a type and a tag.
    Short,
    /// The tag does not match: another key, a forgery, or a damaged datagram.
    BadTag,
    /// Authentic, but not a message we can read.
    Malformed,
}

impl Rejected {
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Short => "short",
            Self::BadTag => "bad_tag",
            Self::Malformed => "malformed",
        }
    }
}

/// The datagram carrying `payload` as a message of `kind`, signed with the first key.
pub(super) fn seal(keys: &GossipKeys, kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(1 + payload.len() + TAG_LEN);
    datagram.push(kind as u8);
    datagram.extend_from_slice(payload);
    let tag = hmac::sign(&keys.key.key, &datagram);
    datagram.extend_from_slice(tag.as_ref());
    datagram
}

/// The kind and payload of an authentic datagram (signed with either key).
pub(super) fn open<'a>(
    keys: &GossipKeys,
    datagram: &'a [u8],
) -> Result<(Kind, &'a [u8]), Rejected> {
    if datagram.len() < 1 + TAG_LEN {
        return Err(Rejected::Short);
    }
    let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
    // `verify` compares in constant time; its error carries nothing but the mismatch.
    let verifies = |key: &GossipKey| hmac::verify(&key.key, signed, tag).is_ok();
    if !verifies(&keys.key) && !keys.also.as_ref().is_some_and(verifies) {
        return Err(Rejected::BadTag);
    }
    let (&kind, payload) = signed
        .split_first()
        .expect("a datagram longer than its tag has a type byte");
    let kind = Kind::from_byte(kind).ok_or(Rejected::Malformed)?;
    Ok((kind, payload))
}

/// The successor fast path's messages. The nonce of a probe is random, so an old
/// acknowledgement replayed does not answer a new probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Probe {
    /// Answer with `Ack` to the sender.
    Ping {
        nonce: u64,
    },
    Ack {
        nonce: u64,
    },
    /// The sender asks us to probe `target` for it.
    PingReq {
        nonce: u64,
        target: SocketAddr,
    },
    /// A probe on behalf of `origin`: answer with `IndirectAck` to the sender.
    IndirectPing {
        nonce: u64,
        origin: SocketAddr,
    },
    /// `target` answered our `IndirectPing`: tell `origin` with `ForwardedAck`.
    IndirectAck {
        nonce: u64,
        origin: SocketAddr,
    },
    ForwardedAck {
        nonce: u64,
    },
}

impl Probe {
    pub(super) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encodes a Probe into a Vec")
    }

    pub(super) fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        decode_exactly(payload)
    }
}

/// A payload that is not the message its type says.
#[derive(Debug, thiserror::Error)]
pub(super) enum DecodeError {
    #[error("cannot decode the payload")]
    Postcard(#[source] postcard::Error),
    #[error("{len} bytes follow the message")]
    Trailing { len: usize },
}

/// The value a payload holds, exactly: trailing bytes are an error.
pub(super) fn decode_exactly<T: serde::de::DeserializeOwned>(
    payload: &[u8],
) -> Result<T, DecodeError> {
    match postcard::take_from_bytes(payload) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(DecodeError::Trailing { len: rest.len() }),
        Err(error) => Err(DecodeError::Postcard(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> GossipKey {
        GossipKey::new(&[byte; 32]).unwrap()
    }

    fn keys(byte: u8) -> GossipKeys {
        key(byte).into()
    }

    #[test]
    fn during_a_rotation_either_key_opens_and_the_first_one_signs() {
        let old = keys(1);
        let taking = GossipKeys::new(key(1), Some(key(2)));
        let moved = GossipKeys::new(key(2), Some(key(1)));
        let new = keys(2);
        // Every pair of neighbouring steps hears each other both ways.
        for (a, b) in [(&old, &taking), (&taking, &moved), (&moved, &new)] {
            for (from, to) in [(a, b), (b, a)] {
                let datagram = seal(from, Kind::Swim, b"payload");
                assert_eq!(open(to, &datagram), Ok((Kind::Swim, &b"payload"[..])));
            }
        }
        // Two steps apart they do not: the new key signs only once every speaker accepts it.
        assert_eq!(
            open(&old, &seal(&moved, Kind::Swim, b"payload")),
            Err(Rejected::BadTag)
        );
        assert_eq!(
            open(&new, &seal(&taking, Kind::Swim, b"payload")),
            Err(Rejected::BadTag)
        );
        assert!(moved.two() && !new.two());
        assert_eq!(
            format!("{moved:?}"),
            "GossipKeys { key: GossipKey(<redacted>), also: Some(GossipKey(<redacted>)) }"
        );
    }

    #[test]
    fn a_sealed_datagram_opens_with_the_same_key() {
        let datagram = seal(&keys(1), Kind::Probe, b"payload");
        assert_eq!(
            open(&keys(1), &datagram),
            Ok((Kind::Probe, &b"payload"[..]))
        );
    }

    #[test]
    fn another_key_a_flipped_bit_or_a_cut_datagram_is_a_bad_tag() {
        let datagram = seal(&keys(1), Kind::Swim, b"payload");
        assert_eq!(open(&keys(2), &datagram), Err(Rejected::BadTag));
        let mut flipped = datagram.clone();
        flipped[3] ^= 1;
        assert_eq!(open(&keys(1), &flipped), Err(Rejected::BadTag));
        assert_eq!(
            open(&keys(1), &datagram[..datagram.len() - 1]),
            Err(Rejected::BadTag)
        );
    }

    #[test]
    fn fewer_bytes_than_a_type_and_a_tag_is_short() {
        assert_eq!(open(&keys(1), &[]), Err(Rejected::Short));
        assert_eq!(open(&keys(1), &[1; TAG_LEN]), Err(Rejected::Short));
    }

    #[test]
    fn an_authentic_datagram_of_an_unknown_type_is_malformed() {
        let mut datagram = vec![9];
        datagram.extend_from_slice(hmac::sign(&key(1).key, &[9]).as_ref());
        assert_eq!(open(&keys(1), &datagram), Err(Rejected::Malformed));
    }

    #[test]
    fn a_key_shorter_than_16_bytes_is_refused() {
        let error = GossipKey::new(&[7; 15]).unwrap_err();
        assert!(matches!(error, MembershipError::KeyTooShort { len: 15 }));
        assert!(GossipKey::new(&[7; 16]).is_ok());
        assert_eq!(format!("{:?}", key(1)), "GossipKey(<redacted>)");
    }

    #[test]
    fn a_probe_decodes_exactly() {
        let probe = Probe::PingReq {
            nonce: 42,
            target: "192.0.2.1:7947".parse().unwrap(),
        };
        let bytes = probe.encode();
        assert_eq!(Probe::decode(&bytes).unwrap(), probe);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Probe::decode(&longer),
            Err(DecodeError::Trailing { len: 1 })
        ));
        assert!(matches!(
            Probe::decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Postcard(_))
        ));
    }
}
