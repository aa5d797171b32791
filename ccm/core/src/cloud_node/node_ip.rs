//! The kubelet's node IP: the `alpha.kubernetes.io/provided-node-ip` annotation, parsed
//! strictly, and the ordering of a machine's addresses around it.

use std::net::IpAddr;

use crate::instance::{AddressType, NodeAddress};

/// Set by a kubelet started with `--node-ip` in external cloud-provider mode.
pub const ANNOTATION: &str = "alpha.kubernetes.io/provided-node-ip";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIpError {
    #[error("{ANNOTATION} {value:?}: {part:?} is not an IP address")]
    NotAnIp { value: String, part: String },
    #[error("{ANNOTATION} {value:?}: must be one IP or a dual-stack pair of IPs")]
    NotOneOrAPair { value: String },
    #[error("{ANNOTATION} {value:?}: the unspecified address is not a node IP")]
    Unspecified { value: String },
    #[error("node IP {ip} (from {ANNOTATION}) is not among the instance's addresses ({known})")]
    NotAnInstanceAddress { ip: IpAddr, known: String },
}

/// Parses the annotation the way the CCM contract wants: one IP, or a pair of one IPv4 and one
/// IPv6 address separated by a comma, with no whitespace anywhere.
pub fn parse(value: &str) -> Result<Vec<IpAddr>, NodeIpError> {
    let parts: Vec<&str> = value.split(',').collect();
    if parts.len() > 2 {
        return Err(NodeIpError::NotOneOrAPair {
            value: value.to_owned(),
        });
    }
    let ips = (parts.iter())
        .map(|part| {
            part.parse::<IpAddr>()
                .map_err(|_not_an_ip| NodeIpError::NotAnIp {
                    value: value.to_owned(),
                    part: (*part).to_owned(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let [a, b] = ips[..]
        && a.is_ipv4() == b.is_ipv4()
    {
        return Err(NodeIpError::NotOneOrAPair {
            value: value.to_owned(),
        });
    }
    if ips.iter().any(IpAddr::is_unspecified) {
        return Err(NodeIpError::Unspecified {
            value: value.to_owned(),
        });
    }
    Ok(ips)
}

/// Orders `addresses` for a node whose kubelet claims `node_ips`: every node IP must be one of
/// the addresses; the matching addresses go first (in the annotation's order), other
/// addresses of a type a node IP matched are dropped, the rest follow in their order.
pub fn prefer(
    node_ips: &[IpAddr],
    addresses: Vec<NodeAddress>,
) -> Result<Vec<NodeAddress>, NodeIpError> {
    let is = |address: &NodeAddress, ip: &IpAddr| {
        address.address.parse::<IpAddr>().is_ok_and(|a| a == *ip)
    };
    let mut first = Vec::with_capacity(addresses.len());
    for ip in node_ips {
        let matched = addresses.iter().find(|a| is(a, ip)).ok_or_else(|| {
            NodeIpError::NotAnInstanceAddress {
                ip: *ip,
                known: describe(&addresses),
            }
        })?;
        first.push(matched.clone());
    }
    let matched_types: Vec<AddressType> = first.iter().map(|a| a.kind).collect();
    let rest = addresses
        .into_iter()
        .filter(|a| !matched_types.contains(&a.kind));
    first.extend(rest);
    Ok(first)
}

fn describe(addresses: &[NodeAddress]) -> String {
    if addresses.is_empty() {
        return "it has none".to_owned();
    }
    let listed: Vec<String> = (addresses.iter())
        .map(|a| format!("{} {}", a.kind, a.address))
        .collect();
    listed.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("fixture IPs are valid")
    }

    fn addr(kind: AddressType, address: &str) -> NodeAddress {
        NodeAddress::new(kind, address)
    }

    #[test]
    fn one_ip_or_a_dual_stack_pair_in_either_order_parses() {
        assert_eq!(parse("192.0.2.10").unwrap(), [ip("192.0.2.10")]);
        assert_eq!(
            parse("2001:db8::10,192.0.2.10").unwrap(),
            [ip("2001:db8::10"), ip("192.0.2.10")]
        );
    }

    #[test]
    fn malformed_node_ips_are_refused_with_the_offending_part() {
        let refused = [
            "",
            " 192.0.2.10",
            "192.0.2.10 ",
            "192.0.2.10, 2001:db8::1",
            "192.0.2.010",
            "node-1",
            "192.0.2.10,192.0.2.11",
            "2001:db8::1,2001:db8::2",
            "192.0.2.1,2001:db8::1,192.0.2.2",
            "0.0.0.0",
            "::",
            "192.0.2.0/24",
        ];
        for value in refused {
            assert!(parse(value).is_err(), "{value:?} should be refused");
        }
        assert_eq!(
            parse("192.0.2.10, 2001:db8::1"),
            Err(NodeIpError::NotAnIp {
                value: "192.0.2.10, 2001:db8::1".into(),
                part: " 2001:db8::1".into()
            })
        );
    }

    #[test]
    fn the_node_ip_goes_first_and_other_addresses_of_its_type_are_dropped() {
        let addresses = vec![
            addr(AddressType::InternalIP, "192.0.2.9"),
            addr(AddressType::ExternalIP, "203.0.113.9"),
            addr(AddressType::InternalIP, "192.0.2.10"),
            addr(AddressType::Hostname, "n1"),
        ];
        assert_eq!(
            prefer(&[ip("192.0.2.10")], addresses).unwrap(),
            [
                addr(AddressType::InternalIP, "192.0.2.10"),
                addr(AddressType::ExternalIP, "203.0.113.9"),
                addr(AddressType::Hostname, "n1"),
            ]
        );
    }

    #[test]
    fn dual_stack_node_ips_both_go_first_in_the_annotations_order() {
        let addresses = vec![
            addr(AddressType::InternalIP, "192.0.2.10"),
            addr(AddressType::InternalIP, "2001:db8::10"),
            addr(AddressType::InternalIP, "2001:db8::11"),
            addr(AddressType::Hostname, "n1"),
        ];
        assert_eq!(
            prefer(&[ip("2001:db8::10"), ip("192.0.2.10")], addresses).unwrap(),
            [
                addr(AddressType::InternalIP, "2001:db8::10"),
                addr(AddressType::InternalIP, "192.0.2.10"),
                addr(AddressType::Hostname, "n1"),
            ]
        );
    }

    #[test]
    fn a_node_ip_matches_in_any_spelling_of_the_address() {
        let addresses = vec![addr(AddressType::InternalIP, "2001:db8:0:0::10")];
        let sorted = prefer(&[ip("2001:db8::10")], addresses).unwrap();
        assert_eq!(sorted.len(), 1);
    }

    #[test]
    fn a_node_ip_the_instance_does_not_have_is_an_error_naming_both() {
        let addresses = vec![addr(AddressType::InternalIP, "192.0.2.10")];
        let error = prefer(&[ip("192.0.2.99")], addresses).unwrap_err();
        assert_eq!(
            error.to_string(),
            "node IP 192.0.2.99 (from alpha.kubernetes.io/provided-node-ip) is not among the instance's addresses (InternalIP 192.0.2.10)"
        );
        assert!(prefer(&[ip("192.0.2.99")], Vec::new()).is_err());
    }

    #[test]
    fn without_node_ips_the_addresses_are_kept_as_they_are() {
        let addresses = vec![
            addr(AddressType::ExternalIP, "203.0.113.9"),
            addr(AddressType::InternalIP, "192.0.2.9"),
        ];
        assert_eq!(prefer(&[], addresses.clone()).unwrap(), addresses);
    }
}
