//! Tests of turning a VM into node metadata and a machine state.

use super::*;
use crate::provider::opennebula::config::Credentials;
use crate::provider::opennebula::fixtures::{VmBuilder as _, nic, vm};

fn default_mapping() -> Mapping {
    Mapping::from_config(&Config::new(
        "http://one/RPC2",
        Credentials::File("/x".into()),
    ))
}

fn internal(ip: &str) -> NodeAddress {
    NodeAddress::new(AddressType::InternalIP, ip)
}

fn external(ip: &str) -> NodeAddress {
    NodeAddress::new(AddressType::ExternalIP, ip)
}

fn dual_stack_nic(network: &str, ip: &str, global: &str) -> Nic {
    Nic {
        ip6_global: Some(global.into()),
        ip6_link: Some("fe80::1".into()),
        ..nic(network, ip)
    }
}

#[test]
fn the_provider_id_is_one_scheme_and_vm_id() {
    let metadata = default_mapping()
        .metadata(&vm(42, "worker-1"))
        .expect("maps");
    assert_eq!(metadata.provider_id, "one://42");
}

#[test]
fn ipv4_addresses_come_first_then_ipv6_and_link_local_is_skipped() {
    let worker = vm(1, "w")
        .with_nic(dual_stack_nic("private", "192.0.2.10", "2001:db8::10"))
        .with_nic(Nic {
            ip: None,
            ip6: Some("2001:db8:1::5".into()),
            ip6_ula: Some("fd00::5".into()),
            ..nic("v6only", "unused")
        });
    let addresses = default_mapping().addresses(&worker).expect("maps");
    assert_eq!(
        addresses,
        [
            internal("192.0.2.10"),
            internal("2001:db8::10"),
            internal("2001:db8:1::5"),
            internal("fd00::5"),
        ]
    );
}

#[test]
fn nics_on_external_networks_give_external_ips_by_name_or_id() {
    let mut mapping = default_mapping();
    mapping.addresses.external_networks = vec!["public".into(), "7".into()];
    let worker = vm(1, "w")
        .with_nic(nic("private", "192.0.2.10"))
        .with_nic(nic("public", "198.51.100.7"))
        .with_nic(Nic {
            network_id: Some("7".into()),
            ..nic("elastic", "203.0.113.9")
        });
    let addresses = mapping.addresses(&worker).expect("maps");
    assert_eq!(
        addresses,
        [
            internal("192.0.2.10"),
            external("198.51.100.7"),
            external("203.0.113.9"),
        ]
    );
}

#[test]
fn aliases_add_addresses_unless_turned_off() {
    let worker = vm(1, "w")
        .with_nic(nic("private", "192.0.2.10"))
        .with_nic(Nic {
            alias: true,
            ..nic("private", "192.0.2.11")
        });
    let mut mapping = default_mapping();
    assert_eq!(
        mapping.addresses(&worker).expect("maps"),
        [internal("192.0.2.10"), internal("192.0.2.11")]
    );
    mapping.addresses.aliases = false;
    assert_eq!(
        mapping.addresses(&worker).expect("maps"),
        [internal("192.0.2.10")]
    );
}

#[test]
fn ipv6_can_be_turned_off_and_networks_ignored() {
    let worker = vm(1, "w")
        .with_nic(dual_stack_nic("private", "192.0.2.10", "2001:db8::10"))
        .with_nic(nic("storage", "203.0.113.50"));
    let mut mapping = default_mapping();
    mapping.addresses.ipv6 = false;
    mapping.addresses.ignored_networks = vec!["storage".into()];
    assert_eq!(
        mapping.addresses(&worker).expect("maps"),
        [internal("192.0.2.10")]
    );
}

#[test]
fn an_address_on_two_nics_is_listed_once() {
    let worker = vm(1, "w")
        .with_nic(nic("a", "192.0.2.10"))
        .with_nic(nic("b", "192.0.2.10"));
    assert_eq!(
        default_mapping().addresses(&worker).expect("maps"),
        [internal("192.0.2.10")]
    );
}

#[test]
fn an_ipv4_link_local_address_is_skipped() {
    let worker = vm(1, "w").with_nic(nic("a", "169.254.3.4"));
    assert_eq!(default_mapping().addresses(&worker).expect("maps"), []);
}

#[test]
fn a_garbled_address_is_an_error_naming_vm_nic_and_field() {
    let worker = vm(9, "w").with_nic(Nic {
        nic_id: Some("1".into()),
        ..nic("a", "192.0.2.300")
    });
    let error = default_mapping().addresses(&worker).expect_err("not an IP");
    let message = error.to_string();
    assert!(
        message.contains("VM 9") && message.contains("NIC 1") && message.contains("IP"),
        "{message}"
    );
}

#[test]
fn by_default_zone_is_the_cluster_and_instance_type_the_user_template_attribute() {
    let worker = vm(1, "w")
        .with_attribute("HISTORY_RECORDS/HISTORY/CID", "100")
        .with_attribute("USER_TEMPLATE/INSTANCE_TYPE", "m1.large");
    let metadata = default_mapping().metadata(&worker).expect("maps");
    assert_eq!(metadata.zone.as_deref(), Some("100"));
    assert_eq!(metadata.instance_type.as_deref(), Some("m1.large"));
    assert_eq!(metadata.region, None);
}

#[test]
fn absent_attributes_leave_labels_unset() {
    let metadata = default_mapping().metadata(&vm(1, "w")).expect("maps");
    assert_eq!(
        (metadata.zone, metadata.region, metadata.instance_type),
        (None, None, None)
    );
}

#[test]
fn literal_values_and_other_attributes_can_be_configured() {
    let mut mapping = default_mapping();
    mapping.region = Some(LabelSource::Value("eu-west".into()));
    mapping.zone = Some(LabelSource::Attribute(AttributePath::new(
        "HISTORY_RECORDS/HISTORY/HOSTNAME",
    )));
    mapping.instance_type = None;
    let worker = vm(1, "w")
        .with_attribute("HISTORY_RECORDS/HISTORY/HOSTNAME", "kvm-b")
        .with_attribute("USER_TEMPLATE/INSTANCE_TYPE", "ignored");
    let metadata = mapping.metadata(&worker).expect("maps");
    assert_eq!(metadata.region.as_deref(), Some("eu-west"));
    assert_eq!(metadata.zone.as_deref(), Some("kvm-b"));
    assert_eq!(metadata.instance_type, None);
    assert_eq!(
        mapping.attribute_paths(),
        [AttributePath::new("HISTORY_RECORDS/HISTORY/HOSTNAME")]
    );
}

#[test]
fn an_attribute_that_is_no_valid_label_value_is_an_error() {
    let worker = vm(3, "w").with_attribute("USER_TEMPLATE/INSTANCE_TYPE", "large (8 cores)");
    let error = default_mapping()
        .metadata(&worker)
        .expect_err("invalid label");
    assert!(
        matches!(
            &error,
            MappingError::Label {
                vm: 3,
                label: "instanceType",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn poweroff_and_undeployed_are_shut_down_done_is_gone_the_rest_exists() {
    let cases = [
        (VmState::Active, InstanceState::Running),
        (VmState::Pending, InstanceState::Running),
        (VmState::Hold, InstanceState::Running),
        (VmState::Stopped, InstanceState::Running),
        (VmState::Suspended, InstanceState::Running),
        (VmState::Poweroff, InstanceState::ShutDown),
        (VmState::Undeployed, InstanceState::ShutDown),
        (VmState::Done, InstanceState::Gone),
        (VmState::Other(42), InstanceState::Running),
    ];
    for (state, expected) in cases {
        assert_eq!(
            instance_state(&vm(1, "w").in_state(state)),
            expected,
            "{state:?}"
        );
    }
}

#[test]
fn an_empty_attribute_is_a_valid_label_value_that_sets_no_label() {
    let worker = vm(3, "w").with_attribute("USER_TEMPLATE/INSTANCE_TYPE", "");
    let metadata = default_mapping().metadata(&worker).expect("valid");
    assert_eq!(metadata.instance_type, None);
}
