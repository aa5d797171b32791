use super::*;

#[test]
fn the_observers_name_is_no_nodes_name() {
    let name = member_name("ccm-a");
    assert_eq!(name, "controller:ccm-a");
    // A Node's name is a DNS subdomain: lower-case letters, digits, '-' and '.'.
    let node_like = |n: &str| {
        n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    };
    assert!(!node_like(&name));
    assert!(node_like("n1"));
}

mod with_an_api_server {
    //! The observer against a real API server and a speaker's real membership on loopback,
    //! whose gossiped state the test sets: the conflicts and host problems a speaker reports
    //! reach the Service and the Node, and service-lb's own writes leave the condition alone.

    use std::net::SocketAddr;

    use baremetal_ccm_core::contract::FINALIZER;
    use baremetal_ccm_core::l2::election::Interface;
    use baremetal_ccm_core::service_lb::status::{self as lb_status, Desired, WantedCondition};
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Api, Patch, PatchParams, PostParams};
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::registry::Registry;
    use rig::service::{condition, events_for, wait_condition, wait_event};

    use super::super::super::membership::{
        self, Conflict, GossipKey, GossipKeys, MemberState, Membership,
    };
    use super::super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const ADDRESS: &str = "192.0.2.100";
    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn speaker_state() -> MemberState {
        MemberState {
            ready: true,
            interfaces: vec![Interface {
                name: "eth0".into(),
                up: true,
                mac: MAC,
                addresses: vec!["192.0.2.11/24".parse().unwrap()],
            }],
            host_problems: vec!["proxy_arp".into()],
            ..MemberState::default()
        }
    }

    /// A Service as service-lb leaves it: finalizer, pool annotation, the address in status.
    async fn allocated_service(api: &Api<Service>) {
        let service: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "finalizers": [FINALIZER],
                "annotations": {"baremetal-ccm.io/allocated-from": "l2"}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        }))
        .unwrap();
        api.create(&PostParams::default(), &service).await.unwrap();
        let status = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ADDRESS, "ipMode": "VIP"}]}}});
        api.patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_speakers_conflict_and_host_problem_reach_the_service_and_the_node() {
        let cluster = rig::ccm::cluster(false).await;
        let client = cluster.client();
        rig::l2::create_node(&client, "n1", "127.0.0.1".parse().unwrap()).await;
        rig::pool::create_pool(
            &client,
            "l2",
            serde_json::json!({"addresses": ["192.0.2.100-192.0.2.110"], "announce": {"mode": "l2"}}),
        )
        .await;
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        allocated_service(&services).await;

        // The speaker of n1, on loopback.
        let speaker_port = rig::cluster::free_port().unwrap();
        let (state, state_rx) = watch::channel(speaker_state());
        let (_seeds, seeds) = watch::channel(Vec::new());
        let (_watched, watched) = watch::channel(BTreeSet::new());
        let config = membership::Config::new(
            "n1".into(),
            SocketAddr::from(([127, 0, 0, 1], speaker_port)),
            GossipKey::new(KEY).unwrap(),
        );
        let inputs = membership::Inputs {
            state: state_rx,
            seeds,
            watched,
        };
        let mut registry = Registry::default();
        let speaker = Membership::start(config, inputs, membership::Metrics::new(&mut registry))
            .await
            .unwrap();

        // The observer, seeded from n1's InternalIP at the speakers' port.
        let mut registry = Registry::default();
        let publisher = crate::events::Publisher::start(client.clone(), "test", Counter::default());
        let settings = Settings {
            identity: "test".into(),
            node: "n1".into(),
            port: rig::cluster::free_port().unwrap(),
            speaker_port,
            keys: tokio::sync::watch::channel(GossipKeys::from(GossipKey::new(KEY).unwrap())).1,
        };
        let observer = tokio::spawn(run(
            client.clone(),
            publisher.recorder("baremetal-ccm.io/l2-status"),
            settings,
            Metrics::new(&mut registry),
            crate::writer::Metrics::new(&mut registry),
        ));

        let (reason, message) =
            wait_condition(&client, "default", "web", decide::CONDITION, "True").await;
        assert_eq!(reason, "Announced");
        assert_eq!(
            message,
            "192.0.2.100 by node n1 on eth0 (02:00:00:00:00:01)"
        );
        let note = wait_event(&client, "default", "n1", "L2HostProblem").await;
        assert!(
            note.contains("proxy_arp") && note.contains("turn it off"),
            "{note}"
        );

        // service-lb writes its own condition after ours (its merge patch, as planned): ours
        // stays, and so does the address.
        let current = services.get("web").await.unwrap();
        let desired = Desired {
            ingress: vec![ADDRESS.parse().unwrap()],
            allocated_from: Some("l2".into()),
            conditions: vec![WantedCondition {
                type_: "baremetal-ccm.io/Allocated",
                status: true,
                reason: "Allocated".into(),
                message: "from pool l2".into(),
            }],
        };
        for planned in lb_status::plan(&current, &desired, Timestamp::now()) {
            let body = Patch::Merge(planned.body());
            if planned.is_status() {
                services
                    .patch_status("web", &PatchParams::default(), &body)
                    .await
                    .unwrap();
            } else {
                services
                    .patch("web", &PatchParams::default(), &body)
                    .await
                    .unwrap();
            }
        }
        let after = services.get("web").await.unwrap();
        assert!(condition(&after, "baremetal-ccm.io/Allocated").is_some());
        let ours = condition(&after, decide::CONDITION).map(|(s, _, m)| (s, m));
        assert_eq!(ours, Some(("True".into(), message.clone())));

        // The speaker finds the address held by another machine: the condition says so, and
        // a Warning Event; service-lb's condition and the address are untouched.
        state.send_modify(|s| {
            s.conflicts.push(Conflict {
                address: ADDRESS.parse().unwrap(),
                interface: "eth0".into(),
                mac: [0x52, 0x54, 0, 0, 0, 0x99],
            });
        });
        let (reason, message) =
            wait_condition(&client, "default", "web", decide::CONDITION, "False").await;
        assert_eq!(reason, "AddressConflict");
        assert!(
            message.starts_with(
                "192.0.2.100 is held by a machine outside the cluster: node n1 saw \
                 52:54:00:00:00:99 answer on eth0"
            ),
            "{message}"
        );
        let note = wait_event(&client, "default", "web", "AddressConflict").await;
        assert!(note.contains("52:54:00:00:00:99"), "{note}");
        let after = services.get("web").await.unwrap();
        assert!(condition(&after, "baremetal-ccm.io/Allocated").is_some());
        let ingress = (after.status.and_then(|s| s.load_balancer))
            .and_then(|lb| lb.ingress)
            .unwrap_or_default();
        assert_eq!(ingress.len(), 1);
        let events = events_for(&client, "default", "web").await;
        let warned = events
            .iter()
            .filter(|(t, r, _)| t == "Warning" && r == "AddressConflict");
        assert_eq!(warned.count(), 1, "{events:?}");

        // The host problem lasted through all of that: still one Event for it.
        let events = events_for(&client, "default", "n1").await;
        let problems = events.iter().filter(|(_, r, _)| r == "L2HostProblem");
        assert_eq!(problems.count(), 1, "{events:?}");
        assert!(!observer.is_finished());
        drop(speaker);
    }
}
