use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::ServiceStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use proptest::prelude::*;

use super::*;
use crate::announce::inputs::ServiceInput;
use crate::crd::ippool::L2Announcement;
use crate::l2::election::fixtures::speaker;
use crate::l2::election::{Interface, Liveness, Member, NodeFacts};
use crate::l2::plan::{self, ServiceKey};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn with_condition(type_: &str, message: String) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
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

fn member(last: u8) -> Member {
    Member {
        interfaces: vec![Interface {
            name: "eth0".into(),
            up: true,
            mac: [2, 0, 0, 0, 0, last],
            addresses: vec![
                format!("192.0.2.{last}/24").parse().unwrap(),
                format!("2001:db8::{last}/64").parse().unwrap(),
            ],
        }],
        ..speaker()
    }
}

/// Nodes n1, n2, n3 (eth0 with MAC 02:00:00:00:00:0<i>), alive, ready and settled.
fn view() -> View {
    let mut view = View::default();
    for i in 1..=3u8 {
        view.members.insert(format!("n{i}"), member(i));
        view.nodes.insert(format!("n{i}"), NodeFacts::default());
    }
    view
}

fn pools() -> BTreeMap<String, L2Announcement> {
    [("l2".to_owned(), L2Announcement::default())].into()
}

fn service(name: &str, addresses: &[&str], local_only: bool) -> ServiceInput {
    ServiceInput {
        namespace: "default".into(),
        name: name.into(),
        addresses: addresses.iter().map(|a| (ip(a), "l2".to_owned())).collect(),
        local_only,
    }
}

/// The observer's plan and the changes since `previous`.
fn observe(
    view: &View,
    services: &[ServiceInput],
    endpoints: &BTreeMap<ServiceKey, LocalEndpoints>,
    previous: &BTreeMap<IpAddr, Option<String>>,
) -> (Plan, Vec<OwnerChange>) {
    let pools = pools();
    let inputs = Inputs {
        node: "observer:ccm",
        view,
        pools: &pools,
        services,
        endpoints,
    };
    let plan = plan::plan(inputs);
    let changes = changes(previous, &inputs, &plan);
    (plan, changes)
}

fn owner_of(plan: &Plan, address: &str) -> String {
    let elected = &plan.elections[&ip(address)];
    elected.ownership.owner().unwrap().node.clone()
}

#[test]
fn an_address_named_as_owned_was_announced_and_a_prefix_of_it_was_not() {
    let v4 = ip("192.0.2.1");
    let v6 = ip("2001:db8::1");
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
    assert!(!announced_before(&service, ip("192.0.2.10")));
    assert!(!announced_before(&with_condition("Other", message), v4));
    assert!(!announced_before(&Service::default(), v4));
}

#[test]
fn a_service_whose_addresses_are_all_owned_is_announced_with_each_owner_its_interface_and_mac() {
    let view = view();
    let services = [service("web", &["192.0.2.100", "2001:db8::100"], false)];
    let (plan, _) = observe(&view, &services, &BTreeMap::new(), &BTreeMap::new());
    let states = address_states(&plan, &view, &[]);
    let want = wanted(&[ip("2001:db8::100"), ip("192.0.2.100")], &states).unwrap();
    assert!(want.status);
    assert_eq!(want.reason, REASON_ANNOUNCED);
    let (v4, v6) = (
        owner_of(&plan, "192.0.2.100"),
        owner_of(&plan, "2001:db8::100"),
    );
    let mac = |node: &str| format!("02:00:00:00:00:0{}", &node[1..]);
    assert_eq!(
        want.message,
        format!(
            "192.0.2.100 by node {v4} on eth0 ({}); 2001:db8::100 by node {v6} on eth0 ({})",
            mac(&v4),
            mac(&v6)
        )
    );
}

#[test]
fn a_dual_stack_service_with_one_address_unannounced_is_false_and_still_names_the_other_owner() {
    let mut view = view();
    // No node has an interface on the IPv6 subnet any more.
    for member in view.members.values_mut() {
        member.interfaces[0]
            .addresses
            .retain(|a| a.addr().is_ipv4());
    }
    let services = [service("web", &["192.0.2.100", "2001:db8::100"], false)];
    let (plan, _) = observe(&view, &services, &BTreeMap::new(), &BTreeMap::new());
    let states = address_states(&plan, &view, &[]);
    let want = wanted(&[ip("192.0.2.100"), ip("2001:db8::100")], &states).unwrap();
    assert!(!want.status);
    assert_eq!(want.reason, REASON_NO_ELIGIBLE_NODE);
    let clauses: Vec<&str> = want.message.split("; ").collect();
    assert_eq!(clauses.len(), 2, "{}", want.message);
    assert!(clauses[0].starts_with("2001:db8::100 is not announced: no eligible node"));
    assert!(clauses[1].starts_with("192.0.2.100 by node "));
    // The speakers read the announced one as announced before, the other not.
    let service = with_condition(CONDITION, want.message.clone());
    assert!(announced_before(&service, ip("192.0.2.100")));
    assert!(!announced_before(&service, ip("2001:db8::100")));
}

#[test]
fn a_conflict_wins_over_the_owner_and_names_the_address_the_node_the_interface_and_the_mac() {
    let view = view();
    let services = [service("web", &["192.0.2.100", "192.0.2.101"], false)];
    let (plan, _) = observe(&view, &services, &BTreeMap::new(), &BTreeMap::new());
    let conflict = Conflict {
        address: ip("192.0.2.101"),
        node: "n2".into(),
        interface: "eth0".into(),
        mac: [0x52, 0x54, 0, 0xab, 0xcd, 0xef],
    };
    let states = address_states(&plan, &view, std::slice::from_ref(&conflict));
    assert_eq!(
        states[&ip("192.0.2.101")],
        AddressState::Conflict(conflict.clone())
    );
    let want = wanted(&[ip("192.0.2.100"), ip("192.0.2.101")], &states).unwrap();
    assert!(!want.status);
    assert_eq!(want.reason, REASON_ADDRESS_CONFLICT);
    assert!(
        want.message.starts_with(
            "192.0.2.101 is held by a machine outside the cluster: node n2 saw \
             52:54:00:ab:cd:ef answer on eth0; 192.0.2.100 by node "
        ),
        "{}",
        want.message
    );
    let event = conflict_event(&conflict);
    assert!(event.warning);
    assert_eq!(event.reason, "AddressConflict");
    assert!(event.note.contains("52:54:00:ab:cd:ef") && event.note.contains("node n2"));
}

#[test]
fn a_service_without_layer_2_addresses_wants_no_condition_and_loses_ours() {
    let states = BTreeMap::new();
    assert_eq!(wanted(&[ip("198.51.100.1")], &states), None);
    let ours = with_condition(
        CONDITION,
        "192.0.2.1 by node n1 on eth0 (02:00:00:00:00:01)".into(),
    );
    let removal = apply_config(&ours, None, Timestamp::UNIX_EPOCH).unwrap();
    assert_eq!(removal["status"]["conditions"], json!([]));
    assert_eq!(removal["metadata"]["name"], "web");
    let others = with_condition("baremetal-ccm.io/Allocated", String::new());
    assert_eq!(apply_config(&others, None, Timestamp::UNIX_EPOCH), None);
}

#[test]
fn the_condition_is_applied_only_when_it_changes_and_its_transition_time_moves_with_its_status() {
    let at = |s| Timestamp::from_second(s).unwrap();
    let announced = WantedCondition {
        type_: CONDITION,
        status: true,
        reason: REASON_ANNOUNCED.into(),
        message: "192.0.2.1 by node n1 on eth0 (02:00:00:00:00:01)".into(),
    };
    let mut service = with_condition("baremetal-ccm.io/Allocated", String::new());
    let first = apply_config(&service, Some(&announced), at(10)).unwrap();
    let written: Condition =
        serde_json::from_value(first["status"]["conditions"][0].clone()).unwrap();
    assert_eq!(written.last_transition_time, Time(at(10)));
    assert_eq!(
        first["status"]["conditions"].as_array().unwrap().len(),
        1,
        "only ours"
    );
    let conditions = service
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap();
    conditions.push(written);
    assert_eq!(apply_config(&service, Some(&announced), at(20)), None);
    let moved = WantedCondition {
        message: "192.0.2.1 by node n2 on eth0 (02:00:00:00:00:02)".into(),
        ..announced.clone()
    };
    let second = apply_config(&service, Some(&moved), at(30)).unwrap();
    assert_eq!(
        second["status"]["conditions"][0]["lastTransitionTime"],
        json!(Time(at(10)))
    );
    let lost = WantedCondition {
        status: false,
        reason: REASON_NO_ELIGIBLE_NODE.into(),
        message: "192.0.2.1 is not announced: no speaker is alive".into(),
        ..announced
    };
    let third = apply_config(&service, Some(&lost), at(40)).unwrap();
    assert_eq!(
        third["status"]["conditions"][0]["lastTransitionTime"],
        json!(Time(at(40)))
    );
    assert_eq!(third["status"]["conditions"][0]["status"], "False");
}

#[test]
fn each_way_of_losing_an_owner_gives_its_reason() {
    let services = [service("web", &["192.0.2.100"], false)];
    let view = view();
    let (plan, none) = observe(&view, &services, &BTreeMap::new(), &BTreeMap::new());
    assert!(
        none.is_empty(),
        "the first round has nothing to compare with"
    );
    let previous = owners(&plan);
    let owner = owner_of(&plan, "192.0.2.100");
    let reason = |change: fn(&mut Member)| {
        let mut after = view.clone();
        change(after.members.get_mut(&owner).unwrap());
        let (_, changes) = observe(&after, &services, &BTreeMap::new(), &previous);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].from.as_deref(), Some(owner.as_str()));
        assert!(changes[0].to.is_some());
        changes[0].reason
    };
    assert_eq!(
        reason(|m| m.liveness = Liveness::Down),
        ChangeReason::NodeFailed
    );
    assert_eq!(
        reason(|m| m.liveness = Liveness::Leaving),
        ChangeReason::Handover
    );
    assert_eq!(
        reason(|m| m.interfaces[0].up = false),
        ChangeReason::LinkDown
    );
    assert_eq!(reason(|m| m.ready = false), ChangeReason::NodeIneligible);
    let (_, unchanged) = observe(&view, &services, &BTreeMap::new(), &previous);
    assert!(unchanged.is_empty());
}

#[test]
fn a_local_services_address_follows_its_endpoints_with_reason_endpoints_moved() {
    let services = [service("web", &["192.0.2.100"], true)];
    let view = view();
    let key = ("default".to_owned(), "web".to_owned());
    let at = |node: &str| {
        let endpoints = LocalEndpoints {
            ready: [node.to_owned()].into(),
            serving_terminating: BTreeSet::new(),
        };
        BTreeMap::from([(key.clone(), endpoints)])
    };
    let (plan, _) = observe(&view, &services, &at("n1"), &BTreeMap::new());
    assert_eq!(owner_of(&plan, "192.0.2.100"), "n1");
    let (plan, changes) = observe(&view, &services, &at("n3"), &owners(&plan));
    assert_eq!(owner_of(&plan, "192.0.2.100"), "n3");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].reason, ChangeReason::EndpointsMoved);
    let event = owner_change_event(&changes[0]);
    assert!(!event.warning);
    assert_eq!(event.reason, "EndpointsMoved");
    assert_eq!(
        event.note,
        "192.0.2.100 moved from node n1 to node n3: the Service's local endpoints moved"
    );
}

#[test]
fn a_failed_owner_and_an_address_nobody_announces_are_warnings() {
    let failed = OwnerChange {
        address: ip("192.0.2.100"),
        from: Some("n1".into()),
        to: Some("n2".into()),
        reason: ChangeReason::NodeFailed,
    };
    let event = owner_change_event(&failed);
    assert!(event.warning);
    assert_eq!(event.reason, "NodeFailed");
    let handed = OwnerChange {
        reason: ChangeReason::Handover,
        ..failed.clone()
    };
    assert!(!owner_change_event(&handed).warning);
    let link = OwnerChange {
        reason: ChangeReason::LinkDown,
        ..failed.clone()
    };
    assert!(owner_change_event(&link).warning);
    let orphaned = OwnerChange { to: None, ..handed };
    let event = owner_change_event(&orphaned);
    assert!(event.warning);
    assert!(event.note.contains("by no other node"), "{}", event.note);
}

#[test]
fn the_observer_is_never_elected_whatever_it_gossips() {
    // Not ready, no interface, and no Node can bear its name: three reasons, each enough.
    let mut view = View::default();
    view.members.insert(
        "observer:ccm".into(),
        Member {
            ready: false,
            ..speaker()
        },
    );
    let services = [service("web", &["192.0.2.100"], false)];
    let (plan, _) = observe(&view, &services, &BTreeMap::new(), &BTreeMap::new());
    assert!(
        plan.elections[&ip("192.0.2.100")]
            .ownership
            .owner()
            .is_none()
    );
    // Even gossiping a ready state with an interface on the subnet, it has no Node.
    view.members.insert("observer:ccm".into(), member(9));
    let (plan, _) = observe(&view, &services, &BTreeMap::new(), &BTreeMap::new());
    assert!(
        plan.elections[&ip("192.0.2.100")]
            .ownership
            .owner()
            .is_none()
    );
}

#[test]
fn a_host_problem_is_reported_once_when_it_appears_and_again_only_after_it_went_away() {
    let problems = |entries: &[(&str, &[&str])]| -> BTreeMap<String, BTreeSet<String>> {
        (entries.iter())
            .map(|(node, labels)| {
                let labels = labels.iter().map(|l| (*l).to_owned()).collect();
                ((*node).to_owned(), labels)
            })
            .collect()
    };
    let none = problems(&[]);
    let proxy = problems(&[("n1", &["proxy_arp"])]);
    let events = host_problem_events(&none, &proxy);
    assert_eq!(events.len(), 1);
    let (node, event) = &events[0];
    assert_eq!(node, "n1");
    assert!(event.warning);
    assert_eq!(event.reason, "L2HostProblem");
    assert!(
        event
            .note
            .starts_with("layer 2 host problem proxy_arp on node n1: ")
            && event.note.contains("turn it off"),
        "{}",
        event.note
    );
    assert!(
        host_problem_events(&proxy, &proxy).is_empty(),
        "not while it lasts"
    );
    let more = problems(&[
        ("n1", &["proxy_arp", "no_net_raw"]),
        ("n2", &["future_problem"]),
    ]);
    let events = host_problem_events(&proxy, &more);
    let labels: Vec<(&str, bool)> = (events.iter())
        .map(|(n, e)| (n.as_str(), e.note.contains("NET_RAW")))
        .collect();
    assert_eq!(labels, [("n1", true), ("n2", false)]);
    assert!(events[1].1.note.contains("does not know"));
    assert_eq!(
        host_problem_events(&none, &proxy).len(),
        1,
        "back after it went away"
    );
}

#[test]
fn a_conflict_is_new_once() {
    let conflict = |node: &str| Conflict {
        address: ip("192.0.2.100"),
        node: node.into(),
        interface: "eth0".into(),
        mac: [2, 0xaa, 0, 0, 0, 1],
    };
    let before = BTreeSet::from([conflict("n1")]);
    let now = BTreeSet::from([conflict("n1"), conflict("n2")]);
    assert_eq!(new_conflicts(&before, &now), [&conflict("n2")]);
    assert!(new_conflicts(&now, &now).is_empty());
}

proptest! {
    /// Whichever nodes are alive: the condition is True exactly when every address has an
    /// owner; each owner clause names the elected owner with its interface's MAC; and the
    /// speakers read exactly the owned addresses back as announced before.
    #[test]
    fn the_condition_says_what_the_election_decided(
        alive in prop::collection::vec(prop::bool::ANY, 3),
        hosts in prop::collection::btree_set(100u8..120, 1..4),
        v6 in prop::bool::ANY,
    ) {
        let mut view = view();
        for (i, up) in alive.iter().enumerate() {
            if !up {
                view.members.get_mut(&format!("n{}", i + 1)).unwrap().liveness = Liveness::Down;
            }
        }
        let mut addresses: Vec<String> = hosts.iter().map(|h| format!("192.0.2.{h}")).collect();
        if v6 {
            addresses.push("2001:db8::100".into());
        }
        let texts: Vec<&str> = addresses.iter().map(String::as_str).collect();
        let services = [service("web", &texts, false)];
        let (plan, _) = observe(&view, &services, &BTreeMap::new(), &BTreeMap::new());
        let states = address_states(&plan, &view, &[]);
        let ips: Vec<IpAddr> = texts.iter().map(|t| ip(t)).collect();
        let want = wanted(&ips, &states).unwrap();
        let all_owned = ips.iter().all(|a| plan.elections[a].ownership.owner().is_some());
        prop_assert_eq!(want.status, all_owned);
        prop_assert_eq!(all_owned, alive.iter().any(|a| *a));
        let service = with_condition(CONDITION, want.message.clone());
        for address in &ips {
            let owner = plan.elections[address].ownership.owner();
            prop_assert_eq!(announced_before(&service, *address), owner.is_some());
            if let Some(owner) = owner {
                let last = owner.node[1..].parse::<u8>().unwrap();
                let clause = owner_clause(*address, &owner.node, "eth0", [2, 0, 0, 0, 0, last]);
                prop_assert!(want.message.contains(&clause), "{} lacks {}", want.message, clause);
            }
        }
    }
}
