//! Unit tests of the announcer's inputs and plan, with builder fixtures.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Node, NodeAddress, NodeCondition, NodeSpec,
    NodeStatus, Service, ServiceSpec, ServiceStatus, Taint,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use proptest::prelude::*;

use super::desired::{Afi, DesiredPath};
use super::inputs::*;
use super::plan::{Inputs, Memory, Plan, Speaker, path_ids, plan, plan_with};
use crate::crd::bgppeer::{BGPPeer, BGPPeerSpec, Placement, SecretKeyRef};
use crate::crd::ippool::{AnnounceMode, BgpAnnounce, pool_with_defaults};

fn ip(text: &str) -> IpAddr {
    text.parse().expect("fixture IPs are valid")
}

struct NodeFixture(Node);

impl NodeFixture {
    fn ready(name: &str, addresses: &[&str]) -> Self {
        Self(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("rack".to_owned(), "r1".to_owned())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                addresses: Some(
                    (addresses.iter())
                        .map(|a| NodeAddress {
                            type_: "InternalIP".into(),
                            address: (*a).into(),
                        })
                        .collect(),
                ),
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
        })
    }

    fn label(mut self, key: &str, value: &str) -> Self {
        (self.0.metadata.labels.get_or_insert_default()).insert(key.into(), value.into());
        self
    }

    fn taint(mut self, key: &str) -> Self {
        let spec = self.0.spec.get_or_insert_default();
        spec.taints.get_or_insert_default().push(Taint {
            key: key.into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        });
        self
    }

    fn not_ready(mut self) -> Self {
        let status = self.0.status.get_or_insert_default();
        status.conditions = Some(vec![NodeCondition {
            type_: "Ready".into(),
            status: "False".into(),
            ..NodeCondition::default()
        }]);
        self
    }

    fn input(&self) -> NodeInput {
        node_input(&self.0)
    }
}

fn lb_service(name: &str, addresses: &[&str], pools: &str, local: bool) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            finalizers: Some(vec!["service.kubernetes.io/load-balancer-cleanup".into()]),
            annotations: Some(
                [(
                    "baremetal-ccm.io/allocated-from".to_owned(),
                    pools.to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            external_traffic_policy: Some(if local { "Local" } else { "Cluster" }.into()),
            ..ServiceSpec::default()
        }),
        status: Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    (addresses.iter())
                        .map(|a| LoadBalancerIngress {
                            ip: Some((*a).into()),
                            ip_mode: Some("VIP".into()),
                            ..LoadBalancerIngress::default()
                        })
                        .collect(),
                ),
            }),
            ..ServiceStatus::default()
        }),
    }
}

fn peer(name: &str, address: &str, placement: Placement) -> BGPPeer {
    BGPPeer::new(
        name,
        BGPPeerSpec {
            peer_address: address.into(),
            peer_asn: 64500,
            local_asn: 64512,
            port: None,
            placement,
            node_selector: None,
            password_secret_ref: None,
            ebgp_multihop_ttl: None,
            hold_time_seconds: None,
            keepalive_seconds: None,
            connect_retry_seconds: None,
            idle_hold_after_reset_seconds: None,
            graceful_restart: None,
            bfd: None,
            families: Vec::new(),
            add_path_send_max: None,
        },
    )
}

fn bgp_pool(name: &str, options: BgpAnnounce) -> PoolInput {
    let mut pool = pool_with_defaults(name, &["192.0.2.0/24"], AnnounceMode::Bgp);
    pool.spec.announce.bgp = Some(options);
    pool_input(&pool)
        .expect("a bgp pool")
        .expect("valid options")
}

struct World {
    pools: Vec<PoolInput>,
    peers: Vec<PeerInput>,
    services: Vec<ServiceInput>,
    endpoints: LocalEndpoints,
    nodes: Vec<NodeInput>,
}

impl World {
    fn three_nodes() -> Self {
        Self {
            pools: vec![bgp_pool("pool-a", BgpAnnounce::default())],
            peers: vec![
                peer_input(&peer("tor-v4", "198.51.100.1", Placement::Central)).unwrap(),
                peer_input(&peer("tor-v6", "2001:db8:ff::1", Placement::Central)).unwrap(),
            ],
            services: Vec::new(),
            endpoints: LocalEndpoints::new(),
            nodes: vec![
                NodeFixture::ready("n1", &["198.51.100.11", "2001:db8:ff::11"]).input(),
                NodeFixture::ready("n2", &["198.51.100.12", "2001:db8:ff::12"]).input(),
                NodeFixture::ready("n3", &["198.51.100.13"]).input(),
            ],
        }
    }

    fn service(mut self, service: &Service) -> Self {
        self.services
            .push(service_input(service).expect("one of ours"));
        self
    }

    fn inputs(&self) -> Inputs<'_> {
        Inputs {
            pools: &self.pools,
            peers: &self.peers,
            services: &self.services,
            endpoints: &self.endpoints,
            nodes: &self.nodes,
        }
    }

    fn plan(&self, speaker: &Speaker) -> Plan {
        plan(speaker, self.inputs(), &|r: &SecretKeyRef| {
            Err(format!("Secret {} is missing", r.name))
        })
    }
}

fn central() -> Speaker {
    Speaker::Central {
        asn: 64512,
        router_id: Ipv4Addr::new(198, 51, 100, 2),
    }
}

fn local(node: &str) -> Speaker {
    Speaker::NodeLocal {
        node: node.into(),
        asn: 64512,
        router_id: Ipv4Addr::new(198, 51, 100, 11),
    }
}

fn next_hops(plan: &Plan, prefix: &str) -> Vec<IpAddr> {
    (plan.daemon.paths.iter())
        .filter(|p| p.prefix.to_string() == prefix)
        .map(|p| p.next_hop)
        .collect()
}

#[test]
fn central_speakers_announce_every_eligible_node_as_a_next_hop_with_its_own_path_id() {
    let world = World::three_nodes().service(&lb_service(
        "web",
        &["192.0.2.5", "2001:db8:5::5"],
        "pool-a,pool-a",
        false,
    ));
    let plan = world.plan(&central());
    let v4: BTreeSet<IpAddr> = next_hops(&plan, "192.0.2.5/32").into_iter().collect();
    assert_eq!(
        v4,
        [
            ip("198.51.100.11"),
            ip("198.51.100.12"),
            ip("198.51.100.13")
        ]
        .into()
    );
    // n3 has no IPv6 address: two next hops for the IPv6 address.
    assert_eq!(next_hops(&plan, "2001:db8:5::5/128").len(), 2);
    let ids: BTreeSet<u32> = (plan.daemon.paths.iter())
        .filter(|p| Afi::of_net(&p.prefix) == Afi::Ipv4)
        .map(|p| p.path_id)
        .collect();
    assert_eq!(ids.len(), 3, "one path identifier per node");
    assert!(!ids.contains(&0));
    assert_eq!(plan.daemon.peers.len(), 2);
    assert_eq!(plan.daemon.global.listen_port, -1);
}

#[test]
fn ineligible_nodes_carry_nothing() {
    let cases = [
        (
            NodeFixture::ready("x", &["198.51.100.20"]).taint(AUTOSCALER_TAINT),
            "marked for deletion by the cluster autoscaler",
        ),
        (
            NodeFixture::ready("x", &["198.51.100.20"]).label(EXCLUDE_LABEL, ""),
            "excluded from external load balancers by label",
        ),
        (
            NodeFixture::ready("x", &["198.51.100.20"]).label(EXCLUDE_LABEL, "true"),
            "excluded from external load balancers by label",
        ),
        (
            NodeFixture::ready("x", &["198.51.100.20"])
                .taint("node.cloudprovider.kubernetes.io/uninitialized"),
            "not initialized",
        ),
        (
            NodeFixture::ready("x", &["198.51.100.20"]).not_ready(),
            "not Ready",
        ),
    ];
    for (fixture, reason) in cases {
        assert_eq!(fixture.input().ineligible, Some(reason));
    }
    let mut deleting = NodeFixture::ready("x", &["198.51.100.20"]);
    deleting.0.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
    assert_eq!(deleting.input().ineligible, Some("being deleted"));
    // A boolean false on the exclusion label includes the node (Kubernetes 1.34+).
    let included = NodeFixture::ready("x", &["198.51.100.20"]).label(EXCLUDE_LABEL, "false");
    assert_eq!(included.input().ineligible, None);

    let mut world =
        World::three_nodes().service(&lb_service("web", &["192.0.2.5"], "pool-a", false));
    world.nodes[1] = NodeFixture::ready("n2", &["198.51.100.12"])
        .not_ready()
        .input();
    let hops = next_hops(&world.plan(&central()), "192.0.2.5/32");
    assert!(!hops.contains(&ip("198.51.100.12")), "{hops:?}");
    assert_eq!(hops.len(), 2);
}

#[test]
fn local_traffic_policy_follows_ready_endpoints() {
    let mut world =
        World::three_nodes().service(&lb_service("web", &["192.0.2.5"], "pool-a", true));
    assert!(
        world.plan(&central()).daemon.paths.is_empty(),
        "no endpoints, no route"
    );
    let slice = EndpointSlice {
        metadata: ObjectMeta {
            name: Some("web-abc".into()),
            namespace: Some("shop".into()),
            labels: Some([("kubernetes.io/service-name".to_owned(), "web".to_owned())].into()),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: Some(vec![
            Endpoint {
                addresses: vec!["10.244.1.5".into()],
                node_name: Some("n1".into()),
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    ..EndpointConditions::default()
                }),
                ..Endpoint::default()
            },
            Endpoint {
                addresses: vec!["10.244.3.5".into()],
                node_name: Some("n3".into()),
                conditions: Some(EndpointConditions {
                    ready: Some(false),
                    ..EndpointConditions::default()
                }),
                ..Endpoint::default()
            },
            // No ready condition: ready, as the API defines it.
            Endpoint {
                addresses: vec!["10.244.2.5".into()],
                node_name: Some("n2".into()),
                ..Endpoint::default()
            },
        ]),
        ports: None,
    };
    world.endpoints = local_endpoints([&slice]);
    let hops: BTreeSet<IpAddr> = next_hops(&world.plan(&central()), "192.0.2.5/32")
        .into_iter()
        .collect();
    assert_eq!(hops, [ip("198.51.100.11"), ip("198.51.100.12")].into());
    let n3 = world.plan(&local("n3"));
    assert!(n3.daemon.paths.is_empty(), "n3's endpoint is not ready");
}

#[test]
fn node_local_speakers_announce_themselves_to_the_peers_that_select_them() {
    let mut world =
        World::three_nodes().service(&lb_service("web", &["192.0.2.5"], "pool-a", false));
    let mut leaf = peer("leaf", "198.51.100.1", Placement::NodeLocal);
    leaf.spec.node_selector = Some(LabelSelector {
        match_labels: Some([("rack".to_owned(), "r1".to_owned())].into()),
        ..LabelSelector::default()
    });
    world.peers = vec![peer_input(&leaf).unwrap(), world.peers[0].clone()];
    let plan = world.plan(&local("n1"));
    assert_eq!(
        plan.daemon.peers.keys().copied().collect::<Vec<_>>(),
        [ip("198.51.100.1")]
    );
    assert_eq!(plan.peer_names[&ip("198.51.100.1")], "leaf");
    assert_eq!(
        plan.daemon.paths.iter().cloned().collect::<Vec<_>>(),
        [DesiredPath {
            prefix: "192.0.2.5/32".parse().unwrap(),
            next_hop: ip("0.0.0.0"),
            path_id: 0
        }]
    );
    // A node the selector does not pick opens no session.
    world.nodes[1] = NodeFixture::ready("n2", &["198.51.100.12"])
        .label("rack", "r2")
        .input();
    assert!(world.plan(&local("n2")).daemon.peers.is_empty());
    // The central speaker ignores node-local peers.
    assert_eq!(world.plan(&central()).daemon.peers.len(), 1);
    // A speaker whose node is unknown announces nothing.
    assert!(world.plan(&local("n9")).daemon.paths.is_empty());
}

#[test]
fn peers_that_cannot_be_configured_are_skipped_with_the_reason() {
    let mut world = World::three_nodes();
    let mut secret = peer("tor-md5", "198.51.100.7", Placement::Central);
    secret.spec.password_secret_ref = Some(SecretKeyRef {
        name: "bgp".into(),
        key: "password".into(),
        namespace: None,
    });
    world.peers.push(peer_input(&secret).unwrap());
    world
        .peers
        .push(peer_input(&peer("tor-z-dup", "198.51.100.1", Placement::Central)).unwrap());
    let plan = world.plan(&central());
    assert_eq!(plan.skipped_peers["tor-md5"], "Secret bgp is missing");
    assert!(plan.skipped_peers["tor-z-dup"].contains("already configured by BGPPeer tor-v4"));
    assert_eq!(plan.daemon.peers.len(), 2);
}

#[test]
fn pool_attributes_and_peer_selectors_become_export_rules() {
    let mut world = World::three_nodes().service(&lb_service(
        "web",
        &["192.0.2.5", "192.0.2.6"],
        "pool-a,pool-b",
        false,
    ));
    let mut tor = peer("tor-v4", "198.51.100.1", Placement::Central);
    tor.metadata.labels = Some([("tier".to_owned(), "edge".to_owned())].into());
    world.peers[0] = peer_input(&tor).unwrap();
    world.pools.push(bgp_pool(
        "pool-b",
        BgpAnnounce {
            communities: vec!["64512:100".into()],
            large_communities: vec!["64512:1:2".into()],
            local_preference: Some(200),
            peer_selector: Some(LabelSelector {
                match_labels: Some([("tier".to_owned(), "edge".to_owned())].into()),
                ..LabelSelector::default()
            }),
            ..BgpAnnounce::default()
        },
    ));
    let plan = world.plan(&central());
    assert_eq!(plan.daemon.export.len(), 1, "pool-a has no rule");
    let rule = &plan.daemon.export[0];
    assert_eq!(rule.name, "pool-b");
    assert_eq!(rule.communities, [64512 << 16 | 100]);
    assert_eq!(rule.large_communities, [(64512, 1, 2)]);
    assert_eq!(rule.local_preference, Some(200));
    assert_eq!(rule.peers, Some([ip("198.51.100.1")].into()));
    assert_eq!(rule.prefixes, ["192.0.2.6/32".parse().unwrap()].into());
}

#[test]
fn aggregation_announces_one_covering_prefix() {
    let mut world = World::three_nodes()
        .service(&lb_service("a", &["192.0.2.5"], "pool-a", false))
        .service(&lb_service("b", &["192.0.2.77"], "pool-a", false));
    world.pools = vec![bgp_pool(
        "pool-a",
        BgpAnnounce {
            aggregation_length: Some(24),
            ..BgpAnnounce::default()
        },
    )];
    let plan = world.plan(&central());
    let prefixes: BTreeSet<String> = plan
        .daemon
        .paths
        .iter()
        .map(|p| p.prefix.to_string())
        .collect();
    assert_eq!(prefixes, ["192.0.2.0/24".to_owned()].into());
    assert_eq!(plan.daemon.paths.len(), 3);
}

#[test]
fn addresses_of_other_pools_and_foreign_services_are_not_announced() {
    let mut foreign = lb_service("other", &["192.0.2.9"], "pool-a", false);
    foreign.metadata.finalizers = None;
    assert_eq!(service_input(&foreign), None);
    let world = World::three_nodes().service(&lb_service("l2", &["192.0.2.8"], "pool-l2", false));
    assert!(world.plan(&central()).daemon.paths.is_empty());
    let mut l2 = pool_with_defaults("pool-l2", &["192.0.2.0/24"], AnnounceMode::L2);
    l2.spec.announce.bgp = None;
    assert!(pool_input(&l2).is_none());
}

#[test]
fn path_ids_are_stable_when_nodes_come_and_go() {
    let nodes: Vec<NodeInput> = (0..50)
        .map(|i| NodeFixture::ready(&format!("node-{i}"), &["198.51.100.1"]).input())
        .collect();
    let all = path_ids(&nodes);
    let some = path_ids(&nodes[10..30]);
    for (name, id) in &some {
        assert_eq!(all[name], *id, "{name}");
    }
    let distinct: BTreeSet<u32> = all.values().copied().collect();
    assert_eq!(distinct.len(), 50);
}

#[test]
fn invalid_peers_and_pool_options_are_named() {
    let mut short = peer("p", "198.51.100.1", Placement::Central);
    short.spec.hold_time_seconds = Some(2);
    assert!(peer_input(&short).unwrap_err().contains("holdTimeSeconds"));
    let mut selector = peer("p", "198.51.100.1", Placement::Central);
    selector.spec.node_selector = Some(LabelSelector::default());
    assert!(peer_input(&selector).unwrap_err().contains("nodeLocal"));
    let mut pool = pool_with_defaults("p", &["192.0.2.0/24"], AnnounceMode::Bgp);
    pool.spec.announce.bgp = Some(BgpAnnounce {
        communities: vec!["70000:1".into()],
        ..BgpAnnounce::default()
    });
    assert!(
        pool_input(&pool)
            .unwrap()
            .unwrap_err()
            .contains("announce.bgp.communities")
    );
    let defaults = peer_input(&peer("p", "2001:db8::1", Placement::Central)).unwrap();
    let defaults = defaults.session;
    assert_eq!(defaults.families, [Afi::Ipv6].into());
    assert_eq!(defaults.connect_retry.as_secs(), 5);
    assert_eq!(
        (defaults.hold_time.as_secs(), defaults.keepalive.as_secs()),
        (90, 30)
    );
    assert_eq!(defaults.add_path_send_max, 16);
}

proptest! {
    /// Every replica computes the same daemon state whatever order its caches list objects in.
    #[test]
    fn the_plan_does_not_depend_on_input_order(seed in any::<u64>()) {
        let mut world = World::three_nodes();
        for i in 0..20u32 {
            let address = format!("192.0.2.{}", i + 1);
            world = world.service(&lb_service(&format!("s{i}"), &[&address], "pool-a", i % 3 == 0));
        }
        world.endpoints = BTreeMap::from([(("shop".to_owned(), "s0".to_owned()), BTreeSet::from(["n2".to_owned()]))]);
        let reference = world.plan(&central());
        let mut shuffled = World { pools: world.pools.clone(), peers: world.peers.clone(), services: world.services.clone(), endpoints: world.endpoints.clone(), nodes: world.nodes.clone() };
        let mut state = seed | 1;
        let mut next = move || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state };
        for i in (1..shuffled.services.len()).rev() {
            let j = usize::try_from(next() % (i as u64 + 1)).unwrap();
            shuffled.services.swap(i, j);
        }
        shuffled.nodes.reverse();
        shuffled.peers.reverse();
        prop_assert_eq!(shuffled.plan(&central()), reference);
    }
}

// ---- bounded central placement (maxNextHops) ----

/// `nodes` ready nodes `n0…` (IPv4 only) and one Service per address of `addresses`, the pool
/// allowing `k` next hops a prefix.
fn bounded_world(nodes: usize, addresses: usize, k: u16) -> World {
    let mut world = World::three_nodes();
    world.nodes = (0..nodes)
        .map(|i| {
            let address = format!("198.51.100.{}", 10 + i);
            NodeFixture::ready(&format!("n{i}"), &[address.as_str()]).input()
        })
        .collect();
    world.pools = vec![bgp_pool(
        "pool-a",
        BgpAnnounce {
            max_next_hops: Some(k),
            ..BgpAnnounce::default()
        },
    )];
    for a in 0..addresses {
        let address = format!("192.0.2.{}", a + 1);
        world = world.service(&lb_service(
            &format!("s{a}"),
            &[address.as_str()],
            "pool-a",
            false,
        ));
    }
    world
}

/// Each prefix's next hops, by prefix.
fn hops_by_prefix(plan: &Plan) -> BTreeMap<String, BTreeSet<IpAddr>> {
    let mut hops: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
    for path in &plan.daemon.paths {
        hops.entry(path.prefix.to_string())
            .or_default()
            .insert(path.next_hop);
    }
    hops
}

#[test]
fn central_placement_gives_each_prefix_at_most_max_next_hops_the_highest_in_rank() {
    let world = bounded_world(10, 50, 3);
    let hops = hops_by_prefix(&world.plan(&central()));
    assert_eq!(hops.len(), 50);
    for (prefix, set) in &hops {
        assert_eq!(set.len(), 3, "{prefix}");
        let address = prefix.trim_end_matches("/32");
        let mut ranked: Vec<&NodeInput> = world.nodes.iter().collect();
        ranked.sort_by_key(|n| std::cmp::Reverse(crate::rendezvous::weight(&n.name, address)));
        let expected: BTreeSet<IpAddr> = (ranked[..3].iter())
            .map(|n| n.address(Afi::Ipv4).unwrap())
            .collect();
        assert_eq!(set, &expected, "{prefix}: the three highest in rank");
    }
    // Fewer eligible nodes than the bound: all of them; the default bound is 16.
    let few = bounded_world(2, 5, 3);
    assert!(
        hops_by_prefix(&few.plan(&central()))
            .values()
            .all(|s| s.len() == 2)
    );
    let mut default = bounded_world(20, 5, 3);
    default.pools = vec![bgp_pool("pool-a", BgpAnnounce::default())];
    assert!(
        hops_by_prefix(&default.plan(&central()))
            .values()
            .all(|s| s.len() == 16)
    );
}

#[test]
fn the_status_says_the_next_hop_cap_in_effect_for_each_central_session() {
    let world = bounded_world(10, 5, 3);
    let plan = world.plan(&central());
    assert_eq!(plan.max_next_hops, Some(3));
    let entries = super::status::entries("ccm-a", &plan, &[], &BTreeMap::new(), false);
    assert_eq!(entries["tor-v4"].max_next_hops, Some(3));
    // ADD-PATH off on the session: the router gets one path a prefix, whatever the pool allows.
    let mut one = bounded_world(10, 5, 3);
    let mut spec = peer("tor-v4", "198.51.100.1", Placement::Central).spec;
    spec.add_path_send_max = Some(0);
    one.peers[0] = peer_input(&BGPPeer::new("tor-v4", spec)).unwrap();
    let plan = one.plan(&central());
    let entries = super::status::entries("ccm-a", &plan, &[], &BTreeMap::new(), false);
    assert_eq!(entries["tor-v4"].max_next_hops, Some(1));
    // Node-local placement: one path per speaker, no cap to report.
    let mut local_world = bounded_world(10, 5, 3);
    local_world.peers =
        vec![peer_input(&peer("tor", "198.51.100.1", Placement::NodeLocal)).unwrap()];
    let plan = local_world.plan(&local("n0"));
    assert_eq!(plan.max_next_hops, None);
    let entries = super::status::entries("n0", &plan, &[], &BTreeMap::new(), false);
    assert_eq!(entries["tor"].max_next_hops, None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A node leaving changes only the prefixes it carried, each by one next hop (it, replaced
    /// by the next in rank); a node joining changes a prefix only by taking one place, and
    /// about K/N of them.
    #[test]
    fn a_node_leaving_or_joining_moves_only_what_the_ranking_says(
        nodes in 4_usize..14,
        k in 1_u16..5,
        gone in 0_usize..14,
    ) {
        let addresses = 60;
        let world = bounded_world(nodes, addresses, k);
        let before = hops_by_prefix(&world.plan(&central()));
        let gone = gone % nodes;
        let gone_address = world.nodes[gone].address(Afi::Ipv4).unwrap();
        let mut smaller = bounded_world(nodes, addresses, k);
        smaller.nodes.remove(gone);
        let after = hops_by_prefix(&smaller.plan(&central()));
        for (prefix, was) in &before {
            let now = &after[prefix];
            if was.contains(&gone_address) {
                prop_assert!(!now.contains(&gone_address));
                prop_assert_eq!(was.difference(now).count(), 1, "{}", prefix);
                prop_assert_eq!(now.len(), was.len().min(nodes - 1));
            } else {
                prop_assert_eq!(was, now, "{} changed though {} carried none of it", prefix, gone_address);
            }
        }
        // Joining: the node back; only prefixes it ranks in the top K change, by one hop.
        let changed = before.iter().filter(|(p, was)| &after[*p] != *was).count();
        let carried = before.values().filter(|s| s.contains(&gone_address)).count();
        prop_assert_eq!(changed, carried);
        let expected = f64::from(u32::from(k).min(u32::try_from(nodes).unwrap())) / nodes as f64;
        let share = carried as f64 / addresses as f64;
        prop_assert!((share - expected).abs() < 0.25, "carried {} of {} (expected about {})", carried, addresses, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A plan made with the rankings the previous plans left is the plan made afresh, through
    /// any sequence of nodes becoming ineligible, eligible again, or leaving.
    #[test]
    fn plans_with_remembered_rankings_equal_fresh_plans(
        steps in proptest::collection::vec(proptest::collection::btree_set(0_usize..12, 0..12), 1..6),
        k in 1_u16..5,
    ) {
        let mut memory = Memory::default();
        for ineligible in steps {
            let mut world = bounded_world(12, 30, k);
            for i in &ineligible {
                world.nodes[*i].ineligible = Some("not Ready");
            }
            // A node that left the cluster altogether.
            if ineligible.contains(&11) {
                world.nodes.pop();
            }
            let password = |r: &SecretKeyRef| Err(format!("Secret {} is missing", r.name));
            let remembered = plan_with(&central(), world.inputs(), &password, &mut memory);
            prop_assert_eq!(remembered, world.plan(&central()));
        }
    }
}
