//! What one speaker does for layer 2, from everything it knows (design 0003): for every
//! address of a `mode: l2` pool a Service holds, the election's outcome; from those, the
//! addresses this node answers for on each of its interfaces (its duties), and the owners it
//! succeeds (the nodes it probes directly). Pure: the speaker feeds it the membership view and
//! its API caches, and hands the result to its responders and its membership.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt as _;

use super::election::{self, Address, LocalEndpoints, Ownership, View};
use super::schedule::Cadence;
use crate::announce::inputs::ServiceInput;
use crate::crd::ippool::L2Announcement;

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service by namespace and name.
pub type ServiceKey = (String, String);

/// What the speaker knows.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// This speaker's node.
    pub node: &'a str,
    pub view: &'a View,
    /// The `mode: l2` pools whose options are valid, by name.
    pub pools: &'a BTreeMap<String, L2Announcement>,
    /// The Services the service-lb controller addressed (any pool: others are skipped).
    pub services: &'a [ServiceInput],
    /// Where each Service has endpoints ([`local_endpoints`]).
    pub endpoints: &'a BTreeMap<ServiceKey, LocalEndpoints>,
}

/// The election of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elected {
    pub service: ServiceKey,
    pub pool: String,
    pub ownership: Ownership,
}

/// What this speaker does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// For each interface of this node, the addresses it answers for and their cadence.
    pub duties: BTreeMap<String, BTreeMap<IpAddr, Cadence>>,
    /// The owners of the addresses this node is next in line for.
    pub watched: BTreeSet<String>,
    /// Every address's election, this node's part or not (for status and Events).
    pub elections: BTreeMap<IpAddr, Elected>,
}

/// Plans this speaker's part. An address two Services share (a sharing key) is elected once:
/// the outcome depends only on the address, the pool and the nodes, except under
/// `externalTrafficPolicy: Local`, where the first Service by name decides (sharing Services
/// must agree on their endpoints anyway).
pub fn plan(inputs: Inputs<'_>) -> Plan {
    let mut plan = Plan::default();
    let none = LocalEndpoints::default();
    let mut services: Vec<&ServiceInput> = inputs.services.iter().collect();
    services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    for service in services {
        let key = (service.namespace.clone(), service.name.clone());
        for (address, pool) in &service.addresses {
            let Some(options) = inputs.pools.get(pool) else {
                continue;
            };
            if plan.elections.contains_key(address) {
                continue;
            }
            let local = service
                .local_only
                .then(|| inputs.endpoints.get(&key).unwrap_or(&none));
            let ownership = election::elect(
                inputs.view,
                &Address {
                    address: *address,
                    options,
                    local,
                },
            );
            take_part(&mut plan, inputs.node, *address, options, &ownership);
            plan.elections.insert(
                *address,
                Elected {
                    service: key.clone(),
                    pool: pool.clone(),
                    ownership,
                },
            );
        }
    }
    plan
}

fn take_part(
    plan: &mut Plan,
    node: &str,
    address: IpAddr,
    options: &L2Announcement,
    ownership: &Ownership,
) {
    let Some(owner) = ownership.owner() else {
        return;
    };
    if owner.node == node {
        let cadence = Cadence {
            count: options.count,
            interval: options.interval,
            refresh: options.refresh,
        };
        for interface in &owner.interfaces {
            (plan.duties.entry(interface.clone()).or_default()).insert(address, cadence);
        }
    } else if ownership.successor().is_some_and(|s| s.node == node) {
        plan.watched.insert(owner.node.clone());
    }
}

/// Where each Service has endpoints, by node: ready ones, and serving-and-terminating ones
/// (kube-proxy sends traffic to those when a node has no ready one). An endpoint without
/// conditions counts as ready and serving, as the API defines it; one without a node name
/// counts nowhere.
pub fn local_endpoints<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> BTreeMap<ServiceKey, LocalEndpoints> {
    let mut endpoints: BTreeMap<ServiceKey, LocalEndpoints> = BTreeMap::new();
    for slice in slices {
        let Some(service) = slice.labels().get(SERVICE_NAME_LABEL) else {
            continue;
        };
        let key = (slice.namespace().unwrap_or_default(), service.clone());
        let entry = endpoints.entry(key).or_default();
        for endpoint in slice.endpoints.iter().flatten() {
            let Some(node) = endpoint.node_name.as_ref() else {
                continue;
            };
            let conditions = endpoint.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            if ready {
                entry.ready.insert(node.clone());
            } else if serving && terminating {
                entry.serving_terminating.insert(node.clone());
            }
        }
    }
    endpoints
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ipnet::IpNet;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::l2::election::{Interface, Liveness, Member, NodeFacts};

    fn member(subnet: &str) -> Member {
        Member {
            liveness: Liveness::Alive,
            ready: true,
            settling: false,
            interfaces: vec![Interface {
                name: "eth0".into(),
                up: true,
                mac: [2, 0, 0, 0, 0, 1],
                addresses: vec![subnet.parse::<IpNet>().unwrap()],
            }],
            conflicts: BTreeSet::new(),
        }
    }

    fn view(nodes: &[&str]) -> View {
        let mut view = View::default();
        for (i, node) in nodes.iter().enumerate() {
            view.members
                .insert(node.to_string(), member(&format!("192.0.2.{}/24", i + 1)));
            view.nodes.insert(node.to_string(), NodeFacts::default());
        }
        view
    }

    fn service(name: &str, addresses: &[(&str, &str)], local_only: bool) -> ServiceInput {
        ServiceInput {
            namespace: "default".into(),
            name: name.into(),
            addresses: (addresses.iter())
                .map(|(a, p)| (a.parse().unwrap(), p.to_string()))
                .collect(),
            local_only,
        }
    }

    fn pools() -> BTreeMap<String, L2Announcement> {
        [("l2".to_string(), L2Announcement::default())].into()
    }

    fn plan_for(node: &str, view: &View, services: &[ServiceInput]) -> Plan {
        plan(Inputs {
            node,
            view,
            pools: &pools(),
            services,
            endpoints: &BTreeMap::new(),
        })
    }

    #[test]
    fn exactly_one_node_has_each_address_as_a_duty_and_its_successor_watches_it() {
        let view = view(&["n1", "n2", "n3"]);
        let services: Vec<_> = (0..20)
            .map(|i| {
                service(
                    &format!("s{i}"),
                    &[(&format!("192.0.2.{}", 100 + i), "l2")],
                    false,
                )
            })
            .collect();
        let plans: BTreeMap<&str, Plan> = ["n1", "n2", "n3"]
            .iter()
            .map(|n| (*n, plan_for(n, &view, &services)))
            .collect();
        for i in 0..20 {
            let address: IpAddr = format!("192.0.2.{}", 100 + i).parse().unwrap();
            let owners: Vec<&str> = (plans.iter())
                .filter(|(_, p)| {
                    p.duties
                        .get("eth0")
                        .is_some_and(|d| d.contains_key(&address))
                })
                .map(|(n, _)| *n)
                .collect();
            assert_eq!(owners.len(), 1, "{address}: {owners:?}");
            let ownership = &plans["n1"].elections[&address].ownership;
            let successor = ownership.successor().unwrap().node.as_str();
            assert!(plans[successor].watched.contains(owners[0]));
        }
        assert!(plans.values().all(|p| p.elections == plans["n1"].elections));
    }

    #[test]
    fn addresses_of_other_pools_are_not_ours() {
        let view = view(&["n1"]);
        let services = [service("s", &[("192.0.2.50", "bgp-pool")], false)];
        let plan = plan_for("n1", &view, &services);
        assert!(plan.duties.is_empty() && plan.elections.is_empty());
    }

    #[test]
    fn a_local_service_is_owned_by_a_node_with_a_ready_endpoint() {
        let view = view(&["n1", "n2", "n3"]);
        let services = [service("web", &[("192.0.2.60", "l2")], true)];
        let endpoints: BTreeMap<ServiceKey, LocalEndpoints> = [(
            ("default".to_string(), "web".to_string()),
            LocalEndpoints {
                ready: ["n2".to_string()].into(),
                serving_terminating: BTreeSet::new(),
            },
        )]
        .into();
        for node in ["n1", "n2", "n3"] {
            let plan = plan(Inputs {
                node,
                view: &view,
                pools: &pools(),
                services: &services,
                endpoints: &endpoints,
            });
            assert_eq!(plan.duties.is_empty(), node != "n2", "{node}");
        }
    }

    #[test]
    fn a_local_service_without_endpoints_is_announced_by_nobody() {
        let view = view(&["n1", "n2"]);
        let services = [service("web", &[("192.0.2.61", "l2")], true)];
        let plan = plan_for("n1", &view, &services);
        let elected = &plan.elections[&"192.0.2.61".parse::<IpAddr>().unwrap()];
        assert!(matches!(elected.ownership, Ownership::NoEligibleNode(_)));
        assert!(plan.duties.is_empty() && plan.watched.is_empty());
    }

    #[test]
    fn the_cadence_is_the_pools() {
        let view = view(&["n1"]);
        let options = L2Announcement {
            count: 2,
            interval: Duration::from_millis(300),
            refresh: None,
            ..L2Announcement::default()
        };
        let pools = [("l2".to_string(), options)].into();
        let services = [service("s", &[("192.0.2.70", "l2")], false)];
        let plan = plan(Inputs {
            node: "n1",
            view: &view,
            pools: &pools,
            services: &services,
            endpoints: &BTreeMap::new(),
        });
        let cadence = plan.duties["eth0"][&"192.0.2.70".parse::<IpAddr>().unwrap()];
        assert_eq!(
            cadence,
            Cadence {
                count: 2,
                interval: Duration::from_millis(300),
                refresh: None
            }
        );
    }

    fn endpoint(node: &str, ready: bool, serving: bool, terminating: bool) -> Endpoint {
        Endpoint {
            addresses: vec!["10.0.0.1".into()],
            node_name: Some(node.into()),
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn endpoints_are_read_as_kube_proxy_reads_them() {
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some("default".into()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: Some(vec![
                endpoint("n1", true, true, false),
                endpoint("n2", false, true, true),
                endpoint("n3", false, false, true),
                Endpoint {
                    node_name: Some("n4".into()),
                    conditions: None,
                    ..Default::default()
                },
            ]),
            ports: None,
        };
        let endpoints = local_endpoints([&slice]);
        let web = &endpoints[&("default".to_string(), "web".to_string())];
        assert_eq!(web.ready, ["n1".to_string(), "n4".to_string()].into());
        assert_eq!(web.serving_terminating, ["n2".to_string()].into());
    }

    #[test]
    fn an_address_a_speaker_finds_held_outside_the_cluster_is_nobodys_duty_nor_watched() {
        let mut view = view(&["n1", "n2", "n3"]);
        let address: IpAddr = "192.0.2.100".parse().unwrap();
        let services = [service(
            "s",
            &[("192.0.2.100", "l2"), ("192.0.2.101", "l2")],
            false,
        )];
        let owner = plan_for("n1", &view, &services).elections[&address]
            .ownership
            .owner()
            .unwrap()
            .node
            .clone();
        // Not the owner: any live speaker's finding keeps everyone off it.
        let finder = ["n1", "n2", "n3"]
            .into_iter()
            .find(|n| *n != owner)
            .unwrap();
        (view.members.get_mut(finder).unwrap().conflicts).insert(address);
        for node in ["n1", "n2", "n3"] {
            let plan = plan_for(node, &view, &services);
            let duties: BTreeSet<IpAddr> = plan
                .duties
                .values()
                .flat_map(|d| d.keys().copied())
                .collect();
            assert!(!duties.contains(&address), "{node} announces {address}");
            assert!(matches!(
                plan.elections[&address].ownership,
                Ownership::NoEligibleNode(election::NoEligibleNode::AddressConflict)
            ));
            assert!(
                plan.elections[&"192.0.2.101".parse().unwrap()]
                    .ownership
                    .owner()
                    .is_some()
            );
        }
    }
}
