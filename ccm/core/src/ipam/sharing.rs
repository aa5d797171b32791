//! Address sharing between Services: the sharing profile kept per holder, and the rule that
//! Services may share an address only with the same key and disjoint (protocol, port) sets.

use std::fmt;
use std::sync::Arc;

use super::request::{self, Protocol, RequestError, ServiceRequest};

/// What sharing needs to know about a holder; kept only for Services with a sharing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sharing {
    pub(crate) key: Arc<str>,
    /// Sorted, without duplicates.
    pub(crate) ports: Box<[(Protocol, u16)]>,
}

impl Sharing {
    /// The profile of `request`, `None` without a sharing key.
    pub(crate) fn of(request: &ServiceRequest) -> Result<Option<Box<Sharing>>, RequestError> {
        let Some(key) = &request.sharing_key else {
            return Ok(None);
        };
        request::validate_sharing_key(key)?;
        let mut ports = request.ports.clone();
        ports.sort_unstable();
        ports.dedup();
        Ok(Some(Box::new(Sharing {
            key: key.as_str().into(),
            ports: ports.into_boxed_slice(),
        })))
    }

    /// The profile to record for `request` whatever its validity: a malformed sharing key
    /// cannot share with anyone (the malformation itself is reported by `assign`).
    pub(crate) fn recorded(request: &ServiceRequest) -> Option<Box<Sharing>> {
        Sharing::of(request).unwrap_or_default()
    }

    /// The lowest (protocol, port) both use.
    fn common_port(&self, other: &Sharing) -> Option<(Protocol, u16)> {
        let (mut a, mut b) = (self.ports.iter().peekable(), other.ports.iter().peekable());
        while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
            match x.cmp(y) {
                std::cmp::Ordering::Less => {
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    b.next();
                }
                std::cmp::Ordering::Equal => return Some(**x),
            }
        }
        None
    }
}

/// Why two Services may not share an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clash {
    /// One has no sharing key, or the keys differ.
    NotShareable,
    /// Same key, but both use this (protocol, port).
    Port(Protocol, u16),
}

impl fmt::Display for Clash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Clash::NotShareable => f.write_str("they do not have the same sharing key"),
            Clash::Port(protocol, port) => write!(f, "both use {protocol}/{port}"),
        }
    }
}

/// Whether two holders' profiles forbid sharing, whatever the namespaces and pool.
pub(crate) fn clash(a: Option<&Sharing>, b: Option<&Sharing>) -> Option<Clash> {
    match (a, b) {
        (Some(a), Some(b)) if a.key == b.key => a.common_port(b).map(|(p, n)| Clash::Port(p, n)),
        _ => Some(Clash::NotShareable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::request::ServiceKey;

    fn profile(key: Option<&str>, ports: &[(Protocol, u16)]) -> Option<Box<Sharing>> {
        let mut r = ServiceRequest::new(ServiceKey::new("ns", "svc"), 0);
        r.sharing_key = key.map(Into::into);
        r.ports = ports.to_vec();
        Sharing::of(&r).unwrap()
    }

    #[test]
    fn same_key_and_disjoint_ports_share() {
        let dns_udp = profile(Some("dns"), &[(Protocol::Udp, 53)]);
        let dns_tcp = profile(Some("dns"), &[(Protocol::Tcp, 53), (Protocol::Tcp, 53)]);
        assert_eq!(clash(dns_udp.as_deref(), dns_tcp.as_deref()), None);
        assert_eq!(
            dns_tcp.as_ref().map(|s| s.ports.len()),
            Some(1),
            "deduplicated"
        );
    }

    #[test]
    fn a_common_port_or_a_different_key_forbids_sharing() {
        let a = profile(Some("web"), &[(Protocol::Tcp, 80), (Protocol::Tcp, 443)]);
        let b = profile(Some("web"), &[(Protocol::Tcp, 443), (Protocol::Udp, 443)]);
        assert_eq!(
            clash(a.as_deref(), b.as_deref()),
            Some(Clash::Port(Protocol::Tcp, 443))
        );
        let other = profile(Some("api"), &[(Protocol::Tcp, 8080)]);
        assert_eq!(
            clash(a.as_deref(), other.as_deref()),
            Some(Clash::NotShareable)
        );
        assert_eq!(clash(None, a.as_deref()), Some(Clash::NotShareable));
        assert_eq!(clash(None, None), Some(Clash::NotShareable));
    }
}
