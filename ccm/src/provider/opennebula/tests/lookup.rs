//! Tests of matching nodes to VMs.

use super::*;
use crate::provider::opennebula::fixtures::{VmBuilder as _, vm};

fn node(name: &str, uuid: Option<&str>) -> NodeQuery {
    NodeQuery {
        name: name.to_owned(),
        system_uuid: uuid.map(str::to_owned),
        ..NodeQuery::default()
    }
}

fn ids(found: &Match<'_>) -> Vec<u32> {
    match found {
        Match::One(vm, _) => vec![vm.id],
        Match::Several(vms) => vms.iter().map(|vm| vm.id).collect(),
        Match::None => Vec::new(),
    }
}

#[test]
fn a_one_provider_id_carries_the_vm_id() {
    assert_eq!(parse_provider_id("one://0").expect("valid"), 0);
    assert_eq!(parse_provider_id("one://4711").expect("valid"), 4711);
}

#[test]
fn a_provider_id_of_another_scheme_is_foreign() {
    for other in [
        "baremetal://node-1",
        "aws:///eu-west-1a/i-0abc",
        "one:/42",
        "ONE://42",
    ] {
        let error = parse_provider_id(other).expect_err("foreign");
        assert!(
            matches!(&error, ProviderError::ForeignProviderId { provider_id, .. } if provider_id == other),
            "{other}: {error:?}"
        );
    }
}

#[test]
fn a_one_provider_id_without_a_numeric_id_is_refused_clearly() {
    for bad in [
        "one://",
        "one://worker-1",
        "one://-1",
        "one://4 2",
        "one://99999999999",
    ] {
        let error = parse_provider_id(bad).expect_err("no VM ID");
        assert!(
            error.to_string().contains("numeric VM ID") || error.to_string().contains("VM ID ("),
            "{bad}: {error}"
        );
    }
}

#[test]
fn a_node_is_matched_by_its_name_first() {
    let pool = Pool::new(vec![
        vm(1, "worker-1").with_uuid("aaaa"),
        vm(2, "worker-2").with_uuid("bbbb"),
    ]);
    let found = pool.find(&node("worker-1", Some("bbbb")));
    assert_eq!(found, Match::One(pool.by_id(1).expect("VM 1"), By::Name));
}

#[test]
fn without_a_name_match_the_system_uuid_decides_case_insensitively() {
    let pool = Pool::new(vec![
        vm(1, "vm-one").with_uuid("6F1C2D1E-0A5B-4F4E-9B59-3D2C1B0A9F8E"),
        vm(2, "vm-two"),
    ]);
    let found = pool.find(&node(
        "ip-192-0-2-10",
        Some("6f1c2d1e-0a5b-4f4e-9b59-3d2c1b0a9f8e"),
    ));
    assert_eq!(found, Match::One(pool.by_id(1).expect("VM 1"), By::Uuid));
}

#[test]
fn duplicate_names_are_ambiguous_naming_every_candidate() {
    let pool = Pool::new(vec![
        vm(3, "worker-1"),
        vm(5, "worker-2"),
        vm(7, "worker-1"),
    ]);
    let found = pool.find(&node("worker-1", None));
    assert_eq!(ids(&found), [3, 7]);
    let Match::Several(vms) = found else {
        panic!("ambiguous: {found:?}");
    };
    assert_eq!(describe(&vms), "VM 3 (worker-1), VM 7 (worker-1)");
}

#[test]
fn duplicate_names_are_told_apart_by_the_system_uuid() {
    let pool = Pool::new(vec![
        vm(3, "worker-1").with_uuid("aaaa"),
        vm(7, "worker-1").with_uuid("BBBB"),
    ]);
    let found = pool.find(&node("worker-1", Some("bbbb")));
    assert_eq!(
        found,
        Match::One(pool.by_id(7).expect("VM 7"), By::NameAndUuid)
    );
    let unhelpful = pool.find(&node("worker-1", Some("cccc")));
    assert_eq!(
        ids(&unhelpful),
        [3, 7],
        "a UUID that fits neither leaves it ambiguous"
    );
}

#[test]
fn done_vms_never_match_by_name_or_uuid_nor_cause_ambiguity() {
    let pool = Pool::new(vec![
        vm(3, "worker-1").in_state(VmState::Done).with_uuid("aaaa"),
        vm(7, "worker-1"),
    ]);
    assert_eq!(ids(&pool.find(&node("worker-1", None))), [7]);
    assert_eq!(pool.find(&node("other", Some("aaaa"))), Match::None);
    assert!(pool.by_id(3).is_some(), "the ID index still has it");
}

#[test]
fn a_node_that_matches_nothing_matches_nothing() {
    let pool = Pool::new(vec![vm(1, "worker-1").with_uuid("aaaa")]);
    assert_eq!(pool.find(&node("worker-9", None)), Match::None);
    assert_eq!(pool.find(&node("worker-9", Some(""))), Match::None);
    assert_eq!(pool.find(&node("worker-9", Some("bbbb"))), Match::None);
    assert_eq!(
        Pool::new(Vec::new()).find(&node("worker-1", None)),
        Match::None
    );
}

#[test]
fn a_uuid_shared_by_two_vms_is_ambiguous() {
    let pool = Pool::new(vec![
        vm(1, "a").with_uuid("same"),
        vm(2, "b").with_uuid("SAME"),
    ]);
    assert_eq!(ids(&pool.find(&node("c", Some("same")))), [1, 2]);
}
