//! Address families, address ranges (`192.0.2.0/24`, `192.0.2.10-192.0.2.20`) and the counting
//! arithmetic over them. Addresses are `u128` within their family so that ranges are compared,
//! intersected and counted, never iterated.

use std::fmt;
use std::net::{AddrParseError, IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use thiserror::Error;

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// Both families, in index order.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The other family.
    pub fn other(self) -> Family {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }

    /// The largest address of the family as a number.
    pub fn max_value(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }

    /// Number of bits of an address of the family.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 1,
        }
    }
}

/// Kubernetes spelling: `IPv4`, `IPv6`.
impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// A family name that is neither `IPv4` nor `IPv6`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown IP family {0:?} (expected IPv4 or IPv6)")]
pub struct UnknownFamily(pub String);

/// Parses the Kubernetes spelling (`IPv4`, `IPv6`), as in `spec.ipFamilies`.
impl FromStr for Family {
    type Err = UnknownFamily;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "IPv4" => Ok(Family::V4),
            "IPv6" => Ok(Family::V6),
            other => Err(UnknownFamily(other.to_owned())),
        }
    }
}

/// `ip` as its family and its number within the family.
pub(crate) fn to_number(ip: IpAddr) -> (Family, u128) {
    match ip {
        IpAddr::V4(v4) => (Family::V4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (Family::V6, u128::from(v6)),
    }
}

/// The address numbered `value` in `family`. IPv4 numbers above `u32::MAX` do not occur: every
/// IPv4 number in this module comes from an IPv4 address or from arithmetic bounded by
/// [`Family::max_value`].
pub(crate) fn to_ip(family: Family, value: u128) -> IpAddr {
    match family {
        Family::V4 => {
            let v4 = u32::try_from(value).expect("IPv4 numbers are bounded by u32::MAX");
            IpAddr::V4(Ipv4Addr::from(v4))
        }
        Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// Whether an IPv4 number ends in `.0` or `.255`, the addresses `avoidBuggyIPs` excludes.
pub(crate) fn is_buggy_v4(value: u128) -> bool {
    matches!(value & 0xff, 0 | 0xff)
}

/// Number of values `v` in `0..=n` with `v % 256 == residue`.
fn congruent_up_to(n: u128, residue: u128) -> u128 {
    if n < residue {
        0
    } else {
        (n - residue) / 256 + 1
    }
}

/// Number of addresses in `start..=end` (requires `start <= end`), leaving out the `.0` and
/// `.255` IPv4 addresses when `avoid_buggy` is set. The whole IPv6 space (2^128 addresses) does
/// not fit a `u128`; counts saturate at `u128::MAX`.
pub(crate) fn count(family: Family, start: u128, end: u128, avoid_buggy: bool) -> u128 {
    let all = (end - start).saturating_add(1);
    if family == Family::V6 || !avoid_buggy {
        return all;
    }
    let below = |residue| match start.checked_sub(1) {
        Some(before) => congruent_up_to(before, residue),
        None => 0,
    };
    let zeros = congruent_up_to(end, 0) - below(0);
    let broadcasts = congruent_up_to(end, 255) - below(255);
    all - zeros - broadcasts
}

/// An inclusive span `start..=end` of address numbers within one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub start: u128,
    pub end: u128,
}

impl Span {
    /// The common part of two spans, if any.
    pub fn intersect(self, other: Span) -> Option<Span> {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start <= end).then_some(Span { start, end })
    }

    pub fn contains(self, value: u128) -> bool {
        self.start <= value && value <= self.end
    }
}

/// Sorts `spans` and merges overlapping and adjacent ones.
pub(crate) fn merge_spans(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_unstable();
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last)
                if last
                    .end
                    .checked_add(1)
                    .is_none_or(|next| span.start <= next) =>
            {
                last.end = last.end.max(span.end);
            }
            _ => merged.push(span),
        }
    }
    merged
}

/// A parsed pool entry: a CIDR or an `a-b` range of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressRange {
    family: Family,
    span: Span,
}

/// Why a pool entry is not an address range.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RangeError {
    #[error("empty address range")]
    Empty,
    #[error("{text:?} is not an IP address")]
    InvalidAddress {
        text: String,
        #[source]
        source: AddrParseError,
    },
    #[error("{text:?} is not a prefix length")]
    InvalidPrefixLength { text: String },
    #[error("prefix length {length} is longer than the {max} bits of an {family} address")]
    PrefixTooLong {
        length: u32,
        max: u8,
        family: Family,
    },
    #[error("{given} has host bits set; the network is {canonical}")]
    HostBitsSet { given: String, canonical: String },
    #[error("range {start}-{end} mixes IPv4 and IPv6")]
    MixedFamilies { start: IpAddr, end: IpAddr },
    #[error("range {start}-{end} ends before it starts")]
    Reversed { start: IpAddr, end: IpAddr },
}

impl AddressRange {
    /// The range `start..=end`; both ends of one family, `start <= end`.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<Self, RangeError> {
        let (family, first) = to_number(start);
        let (end_family, last) = to_number(end);
        if family != end_family {
            return Err(RangeError::MixedFamilies { start, end });
        }
        if first > last {
            return Err(RangeError::Reversed { start, end });
        }
        Ok(AddressRange {
            family,
            span: Span {
                start: first,
                end: last,
            },
        })
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn span(&self) -> Span {
        self.span
    }

    pub fn first(&self) -> IpAddr {
        to_ip(self.family, self.span.start)
    }

    pub fn last(&self) -> IpAddr {
        to_ip(self.family, self.span.end)
    }

    /// Number of addresses, saturating at `u128::MAX` for `::/0`.
    pub fn size(&self) -> u128 {
        count(self.family, self.span.start, self.span.end, false)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (family, value) = to_number(ip);
        family == self.family && self.span.contains(value)
    }

    fn parse_cidr(text: &str, address: &str, length: &str) -> Result<Self, RangeError> {
        let ip = parse_ip(address)?;
        let (family, value) = to_number(ip);
        let invalid = || RangeError::InvalidPrefixLength {
            text: length.to_owned(),
        };
        if !(1..=3).contains(&length.len()) || !length.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let length = length
            .bytes()
            .fold(0u32, |n, digit| n * 10 + u32::from(digit - b'0'));
        let bits = family.bits();
        if length > u32::from(bits) {
            return Err(RangeError::PrefixTooLong {
                length,
                max: bits,
                family,
            });
        }
        let host_bits = u32::from(bits) - length;
        let host_mask = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let network = value & !host_mask;
        if network != value {
            return Err(RangeError::HostBitsSet {
                given: text.to_owned(),
                canonical: format!("{}/{length}", to_ip(family, network)),
            });
        }
        Ok(AddressRange {
            family,
            span: Span {
                start: network,
                end: network | host_mask,
            },
        })
    }
}

fn parse_ip(text: &str) -> Result<IpAddr, RangeError> {
    text.parse().map_err(|source| RangeError::InvalidAddress {
        text: text.to_owned(),
        source,
    })
}

/// Parses `192.0.2.0/24`, `2001:db8::/64` (no host bits set) or `192.0.2.10-192.0.2.20`
/// (spaces around `-` allowed).
impl FromStr for AddressRange {
    type Err = RangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(RangeError::Empty);
        }
        if let Some((start, end)) = trimmed.split_once('-') {
            return AddressRange::new(parse_ip(start.trim())?, parse_ip(end.trim())?);
        }
        match trimmed.split_once('/') {
            Some((address, length)) => AddressRange::parse_cidr(trimmed, address, length),
            None => {
                let ip = parse_ip(trimmed)?;
                AddressRange::new(ip, ip)
            }
        }
    }
}

/// A CIDR when the range is exactly one, else `first-last`.
impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Span { start, end } = self.span;
        let prefix = match (end - start).checked_add(1) {
            None => Some(0),
            Some(size) if size.is_power_of_two() && start % size == 0 => {
                Some(u32::from(self.family.bits()) - size.trailing_zeros())
            }
            Some(_) => None,
        };
        if let Some(length) = prefix {
            write!(f, "{}/{length}", self.first())
        } else {
            write!(f, "{}-{}", self.first(), self.last())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> AddressRange {
        text.parse().unwrap()
    }

    #[test]
    fn a_cidr_covers_its_network() {
        let r = range("192.0.2.0/24");
        assert_eq!(r.first(), "192.0.2.0".parse::<IpAddr>().unwrap());
        assert_eq!(r.last(), "192.0.2.255".parse::<IpAddr>().unwrap());
        assert_eq!(r.size(), 256);
        assert_eq!(range("2001:db8::/64").size(), 1u128 << 64);
        assert_eq!(range("0.0.0.0/0").size(), 1u128 << 32);
        assert_eq!(range("::/0").size(), u128::MAX, "saturates");
        assert_eq!(range("192.0.2.7/32").size(), 1);
    }

    #[test]
    fn a_cidr_with_host_bits_names_the_network() {
        let err = "192.0.2.1/24".parse::<AddressRange>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "192.0.2.1/24 has host bits set; the network is 192.0.2.0/24"
        );
        let err = "2001:db8::1/64".parse::<AddressRange>().unwrap_err();
        assert!(err.to_string().ends_with("the network is 2001:db8::/64"));
    }

    #[test]
    fn a_dash_range_allows_spaces_and_checks_order_and_family() {
        let r = range("192.0.2.10 - 192.0.2.20");
        assert_eq!(r.size(), 11);
        assert_eq!(r.to_string(), "192.0.2.10-192.0.2.20");
        assert!(matches!(
            "192.0.2.20-192.0.2.10".parse::<AddressRange>(),
            Err(RangeError::Reversed { .. })
        ));
        assert!(matches!(
            "192.0.2.1-2001:db8::1".parse::<AddressRange>(),
            Err(RangeError::MixedFamilies { .. })
        ));
        assert_eq!(range("2001:db8::1-2001:db8::ff").size(), 255);
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "",
            "  ",
            "192.0.2.0/",
            "192.0.2.0/+4",
            "192.0.2.0/33",
            "2001:db8::/129",
            "192.0.2.0/24/1",
            "300.0.0.1",
            "192.0.2.1-",
            "a-b",
            "192.0.2.0/2x",
        ] {
            assert!(bad.parse::<AddressRange>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn display_round_trips_cidrs() {
        for text in [
            "192.0.2.0/24",
            "2001:db8::/64",
            "::/0",
            "0.0.0.0/0",
            "192.0.2.9/32",
        ] {
            assert_eq!(range(text).to_string(), text);
        }
    }

    #[test]
    fn avoid_buggy_ips_counting_leaves_out_dot_zero_and_dot_255() {
        let r = range("192.0.2.0/24").span();
        assert_eq!(count(Family::V4, r.start, r.end, true), 254);
        let r = range("10.0.0.0/8").span();
        assert_eq!(count(Family::V4, r.start, r.end, true), (1 << 16) * 254);
        let r = range("192.0.2.255-192.0.3.0").span();
        assert_eq!(count(Family::V4, r.start, r.end, true), 0);
        let r = range("0.0.0.0/0").span();
        assert_eq!(count(Family::V4, r.start, r.end, true), (1 << 24) * 254);
        let naive = |s: u128, e: u128| (s..=e).filter(|v| !is_buggy_v4(*v)).count() as u128;
        for (s, e) in [(0, 0), (0, 1), (1, 254), (250, 520), (255, 256), (3, 3)] {
            assert_eq!(count(Family::V4, s, e, true), naive(s, e), "{s}..={e}");
        }
    }

    #[test]
    fn merging_spans_joins_overlapping_and_adjacent() {
        let s = |start, end| Span { start, end };
        assert_eq!(
            merge_spans(vec![s(10, 20), s(0, 4), s(5, 6), s(15, 30), s(40, 41)]),
            [s(0, 6), s(10, 30), s(40, 41)]
        );
        assert_eq!(
            merge_spans(vec![s(0, u128::MAX), s(3, 4)]),
            [s(0, u128::MAX)]
        );
    }
}
