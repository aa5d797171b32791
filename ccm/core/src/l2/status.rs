//! What the operator reads about layer 2 on a Service: the condition
//! `baremetal-ccm.io/L2Announced` (design 0003, "What the operator sees"). Its message says,
//! for each address that has an owner, one clause in a fixed form; the speakers read it back
//! for one fact: an address with a clause has been announced before, so taking it over needs
//! no probe (a probe on the failover path would cost a second).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

/// The condition's type.
pub const CONDITION: &str = "baremetal-ccm.io/L2Announced";

/// The clause naming an address's owner: `<address> by node <node> on <interface> (<mac>)`.
pub fn owner_clause(address: IpAddr, node: &str, interface: &str, mac: [u8; 6]) -> String {
    let mac: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{address} by node {node} on {interface} ({})",
        mac.join(":")
    )
}

/// Whether the Service's condition names an owner of `address`: it was announced before.
pub fn announced_before(service: &Service, address: IpAddr) -> bool {
    let prefix = format!("{address} by node ");
    (service.status.iter())
        .flat_map(|status| status.conditions.iter().flatten())
        .filter(|condition| condition.type_ == CONDITION)
        .any(|condition| (condition.message.split("; ")).any(|clause| clause.starts_with(&prefix)))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ServiceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn with_condition(type_: &str, message: String) -> Service {
        Service {
            status: Some(ServiceStatus {
                conditions: Some(vec![Condition {
                    type_: type_.to_owned(),
                    status: "True".to_owned(),
                    reason: "Announced".to_owned(),
                    message,
                    observed_generation: None,
                    last_transition_time: Time(Timestamp::UNIX_EPOCH),
                }]),
                ..ServiceStatus::default()
            }),
            ..Service::default()
        }
    }

    #[test]
    fn an_address_named_as_owned_was_announced_and_a_prefix_of_it_was_not() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let message = [
            owner_clause(v4, "node-a", "eth0", [2, 0, 0, 0, 0, 0xa]),
            owner_clause(v6, "node-b", "eth0.10", [2, 0, 0, 0, 0, 0xb]),
        ]
        .join("; ");
        assert_eq!(
            message,
            "192.0.2.1 by node node-a on eth0 (02:00:00:00:00:0a); \
             2001:db8::1 by node node-b on eth0.10 (02:00:00:00:00:0b)"
        );
        let service = with_condition(CONDITION, message.clone());
        assert!(announced_before(&service, v4));
        assert!(announced_before(&service, v6));
        // 192.0.2.1 is a prefix of 192.0.2.10's text; the clause's form tells them apart.
        assert!(!announced_before(&service, "192.0.2.10".parse().unwrap()));
        assert!(!announced_before(&with_condition("Other", message), v4));
        assert!(!announced_before(&Service::default(), v4));
    }
}
