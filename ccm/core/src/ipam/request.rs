//! What a Service asks of the allocator, as plain data, and the strict parsers for the
//! annotation values it comes from.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{AddrParseError, IpAddr};
use std::str::FromStr;
use std::sync::Arc;

use thiserror::Error;

use super::range::Family;

/// Identifies a Service: namespace and name. Cheap to clone (shared strings); the allocator
/// interns namespaces so that a key costs no heap of its own beyond the name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ServiceKey {
    pub fn new(namespace: &str, name: &str) -> ServiceKey {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// `namespace/name`.
impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// Parses the Kubernetes spelling: `TCP`, `UDP`, `SCTP`.
impl FromStr for Protocol {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            other => Err(RequestError::UnknownProtocol(excerpt(other))),
        }
    }
}

/// `spec.ipFamilyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum IpFamilyPolicy {
    #[default]
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

impl fmt::Display for IpFamilyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamilyPolicy::SingleStack => "SingleStack",
            IpFamilyPolicy::PreferDualStack => "PreferDualStack",
            IpFamilyPolicy::RequireDualStack => "RequireDualStack",
        })
    }
}

impl FromStr for IpFamilyPolicy {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "SingleStack" => Ok(IpFamilyPolicy::SingleStack),
            "PreferDualStack" => Ok(IpFamilyPolicy::PreferDualStack),
            "RequireDualStack" => Ok(IpFamilyPolicy::RequireDualStack),
            other => Err(RequestError::UnknownFamilyPolicy(excerpt(other))),
        }
    }
}

/// Everything the allocator needs to know about one LoadBalancer Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRequest {
    pub key: ServiceKey,
    /// Creation timestamp in seconds; with the key it orders claimants ("the earlier one wins").
    pub created: i64,
    pub namespace_labels: BTreeMap<String, String>,
    pub service_labels: BTreeMap<String, String>,
    pub ip_family_policy: IpFamilyPolicy,
    /// `spec.ipFamilies` in order; empty means `[IPv4]`.
    pub ip_families: Vec<Family>,
    /// The pool named by the `baremetal-ccm.io/pool` annotation.
    pub pool: Option<String>,
    /// Requested addresses (`baremetal-ccm.io/ips` or `spec.loadBalancerIP`), at most one per
    /// family.
    pub requested: Vec<IpAddr>,
    /// The `baremetal-ccm.io/sharing-key` annotation.
    pub sharing_key: Option<String>,
    pub ports: Vec<(Protocol, u16)>,
}

impl ServiceRequest {
    /// A SingleStack IPv4 request with nothing else asked.
    pub fn new(key: ServiceKey, created: i64) -> ServiceRequest {
        ServiceRequest {
            key,
            created,
            namespace_labels: BTreeMap::new(),
            service_labels: BTreeMap::new(),
            ip_family_policy: IpFamilyPolicy::SingleStack,
            ip_families: Vec::new(),
            pool: None,
            requested: Vec::new(),
            sharing_key: None,
            ports: Vec::new(),
        }
    }

    /// The order among claimants: creation time, then key.
    pub fn order(&self) -> (i64, &ServiceKey) {
        (self.created, &self.key)
    }

    /// The families asked for, in order, and how many of them are required: SingleStack asks
    /// for the first family only; PreferDualStack asks for the listed families and requires the
    /// first; RequireDualStack requires both, the unlisted one last.
    pub fn families(&self) -> Result<FamilyAsk, RequestError> {
        let mut listed: Vec<Family> = Vec::with_capacity(2);
        for family in &self.ip_families {
            if listed.contains(family) {
                return Err(RequestError::DuplicateFamily(*family));
            }
            listed.push(*family);
        }
        let primary = listed.first().copied().unwrap_or(Family::V4);
        let (families, required) = match self.ip_family_policy {
            IpFamilyPolicy::SingleStack => (vec![primary], 1),
            IpFamilyPolicy::PreferDualStack if listed.len() == 2 => (listed, 1),
            IpFamilyPolicy::PreferDualStack => (vec![primary], 1),
            IpFamilyPolicy::RequireDualStack => (vec![primary, primary.other()], 2),
        };
        Ok(FamilyAsk { families, required })
    }

    /// The requested address of each family; more than one per family is an error.
    pub fn requested_by_family(&self) -> Result<[Option<IpAddr>; 2], RequestError> {
        one_per_family(&self.requested)
    }
}

/// `ips` indexed by family; a duplicate or a second address of a family is an error.
fn one_per_family(ips: &[IpAddr]) -> Result<[Option<IpAddr>; 2], RequestError> {
    let mut by_family: [Option<IpAddr>; 2] = [None, None];
    for ip in ips {
        match &mut by_family[Family::of(*ip).index()] {
            Some(first) if first == ip => return Err(RequestError::DuplicateAddress(*ip)),
            Some(first) => {
                return Err(RequestError::SecondAddressOfFamily {
                    family: Family::of(*ip),
                    first: *first,
                    second: *ip,
                });
            }
            slot @ None => *slot = Some(*ip),
        }
    }
    Ok(by_family)
}

/// The families a request asks for: `families[..required]` must be served, the rest (the
/// secondary family of PreferDualStack) when possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyAsk {
    pub families: Vec<Family>,
    pub required: usize,
}

/// Why a request or an annotation value is malformed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error("the address list is empty")]
    NoAddresses,
    #[error("item {position} of the address list is empty")]
    EmptyItem { position: usize },
    #[error("{text:?} is not an IP address")]
    InvalidAddress {
        text: String,
        #[source]
        source: AddrParseError,
    },
    #[error("{0} is listed twice")]
    DuplicateAddress(IpAddr),
    #[error("{first} and {second} are both {family}; at most one address per family")]
    SecondAddressOfFamily {
        family: Family,
        first: IpAddr,
        second: IpAddr,
    },
    #[error("{0} is listed twice in ipFamilies")]
    DuplicateFamily(Family),
    #[error("the sharing key is empty")]
    EmptySharingKey,
    #[error("the sharing key is {0} characters long; at most 63 are allowed")]
    SharingKeyTooLong(usize),
    #[error(
        "the sharing key {key:?} contains {character:?}; only letters, digits, '.', '_' and '-' are allowed"
    )]
    SharingKeyCharacter { key: String, character: char },
    #[error("unknown protocol {0:?} (expected TCP, UDP or SCTP)")]
    UnknownProtocol(String),
    #[error("unknown ipFamilyPolicy {0:?}")]
    UnknownFamilyPolicy(String),
}

/// The longest piece of user input an error message quotes.
const EXCERPT_MAX: usize = 64;

/// `text` as an error message quotes it: whole when short, else its first characters and its
/// length, so that a huge malformed value never grows what we write (issue 10, item 8).
pub fn excerpt(text: &str) -> String {
    if text.len() <= EXCERPT_MAX {
        return text.to_owned();
    }
    let mut end = EXCERPT_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// Parses the `baremetal-ccm.io/ips` annotation: comma-separated addresses (whitespace around
/// items allowed), no empty items, no duplicates, at most one per family.
pub fn parse_requested_ips(value: &str) -> Result<Vec<IpAddr>, RequestError> {
    if value.trim().is_empty() {
        return Err(RequestError::NoAddresses);
    }
    let mut ips = Vec::new();
    for (i, item) in value.split(',').enumerate() {
        let item = item.trim();
        if item.is_empty() {
            return Err(RequestError::EmptyItem { position: i + 1 });
        }
        let ip: IpAddr = item
            .parse()
            .map_err(|source| RequestError::InvalidAddress {
                text: excerpt(item),
                source,
            })?;
        ips.push(ip);
    }
    one_per_family(&ips)?;
    Ok(ips)
}

/// Checks a `baremetal-ccm.io/sharing-key` value: 1 to 63 characters of `[A-Za-z0-9._-]`.
pub fn validate_sharing_key(key: &str) -> Result<(), RequestError> {
    if key.is_empty() {
        return Err(RequestError::EmptySharingKey);
    }
    let length = key.chars().count();
    if length > 63 {
        return Err(RequestError::SharingKeyTooLong(length));
    }
    match key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(character) => Err(RequestError::SharingKeyCharacter {
            key: excerpt(key),
            character,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn requested_ips_parse_one_per_family() {
        assert_eq!(
            parse_requested_ips("192.0.2.10,2001:db8::10").unwrap(),
            [ip("192.0.2.10"), ip("2001:db8::10")]
        );
        assert_eq!(
            parse_requested_ips(" 2001:db8::10 , 192.0.2.10 ").unwrap(),
            [ip("2001:db8::10"), ip("192.0.2.10")]
        );
    }

    #[test]
    fn requested_ips_are_strict() {
        let err = |v| parse_requested_ips(v).unwrap_err().to_string();
        assert_eq!(err(""), "the address list is empty");
        assert_eq!(err("192.0.2.1,"), "item 2 of the address list is empty");
        assert_eq!(err(",192.0.2.1"), "item 1 of the address list is empty");
        assert_eq!(err("192.0.2.1,192.0.2.1"), "192.0.2.1 is listed twice");
        assert_eq!(
            err("192.0.2.1,192.0.2.2"),
            "192.0.2.1 and 192.0.2.2 are both IPv4; at most one address per family"
        );
        assert_eq!(err("192.0.2.300"), "\"192.0.2.300\" is not an IP address");
        assert!(matches!(
            parse_requested_ips("2001:db8::1,2001:db8::2"),
            Err(RequestError::SecondAddressOfFamily {
                family: Family::V6,
                ..
            })
        ));
    }

    #[test]
    fn a_huge_malformed_value_is_quoted_as_a_short_excerpt() {
        let huge = format!("{},192.0.2.1", "x".repeat(200_000));
        let message = parse_requested_ips(&huge).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("(200000 bytes)"), "{message}");
        assert_eq!(excerpt("192.0.2.1"), "192.0.2.1");
    }

    #[test]
    fn sharing_keys_are_short_and_plain() {
        assert!(validate_sharing_key("web.frontend_1-a").is_ok());
        assert_eq!(validate_sharing_key(""), Err(RequestError::EmptySharingKey));
        assert_eq!(
            validate_sharing_key(&"k".repeat(64)),
            Err(RequestError::SharingKeyTooLong(64))
        );
        assert!(validate_sharing_key(&"k".repeat(63)).is_ok());
        assert!(matches!(
            validate_sharing_key("a b"),
            Err(RequestError::SharingKeyCharacter { character: ' ', .. })
        ));
        assert!(validate_sharing_key("ключ").is_err());
    }

    #[test]
    fn families_follow_the_policy() {
        let mut r = ServiceRequest::new(ServiceKey::new("ns", "a"), 0);
        let ask = |r: &ServiceRequest| r.families().unwrap();
        assert_eq!(ask(&r).families, [Family::V4]);
        r.ip_families = vec![Family::V6, Family::V4];
        assert_eq!((ask(&r).families, ask(&r).required), (vec![Family::V6], 1));
        r.ip_family_policy = IpFamilyPolicy::PreferDualStack;
        assert_eq!(
            (ask(&r).families, ask(&r).required),
            (vec![Family::V6, Family::V4], 1)
        );
        r.ip_family_policy = IpFamilyPolicy::RequireDualStack;
        assert_eq!(ask(&r).required, 2);
        r.ip_families = vec![Family::V4];
        assert_eq!(ask(&r).families, [Family::V4, Family::V6]);
        r.ip_families = vec![Family::V4, Family::V4];
        assert_eq!(r.families(), Err(RequestError::DuplicateFamily(Family::V4)));
    }

    #[test]
    fn kubernetes_spellings_parse() {
        assert_eq!("UDP".parse::<Protocol>(), Ok(Protocol::Udp));
        assert!("udp".parse::<Protocol>().is_err());
        assert_eq!(
            "RequireDualStack".parse::<IpFamilyPolicy>(),
            Ok(IpFamilyPolicy::RequireDualStack)
        );
        assert_eq!("IPv6".parse::<Family>(), Ok(Family::V6));
    }
}
