//! The generated `IPPool` CRD, installed in a real apiserver, admits well-formed pools and
//! rejects malformed ones at admission with the rule's message.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use baremetal_ccm_core::crd::ippool::IPPool;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::ApiResource;
use rig::cluster::TestCluster;

fn pool(name: &str, spec: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "baremetal-ccm.io/v1alpha1",
        "kind": "IPPool",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// Creates through the untyped API so that invalid shapes reach the apiserver unchanged.
async fn create(
    client: &kube::Client,
    value: serde_json::Value,
) -> Result<DynamicObject, kube::Error> {
    let resource = ApiResource::erase::<IPPool>(&());
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(value).unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_pools_are_rejected_at_admission() {
    let cluster = TestCluster::start().await.expect("cluster starts");
    let installed = cluster
        .install_project_crds()
        .await
        .expect("project CRDs install");
    assert!(
        installed.contains(&"ippools.baremetal-ccm.io".to_owned()),
        "{installed:?}"
    );
    let client = cluster.client();
    let api: Api<IPPool> = Api::all(client.clone());

    let valid = [
        (
            "v4",
            serde_json::json!({"addresses": ["192.0.2.0/24"], "announce": {"mode": "bgp"}}),
        ),
        (
            "v6",
            serde_json::json!({"addresses": ["2001:db8::/64"], "announce": {"mode": "l2"}}),
        ),
        (
            "mixed",
            serde_json::json!({"addresses": ["198.51.100.10 - 198.51.100.20", "2001:db8:1::10-2001:db8:1::20", "203.0.113.0/28"],
                "avoidBuggyIPs": true, "autoAssign": false, "priority": 5, "announce": {"mode": "none"}}),
        ),
        (
            "single",
            serde_json::json!({"addresses": ["192.0.2.7-192.0.2.7"], "announce": {"mode": "bgp"}}),
        ),
        (
            "bgp-options",
            serde_json::json!({"addresses": ["192.0.2.64/26"], "announce": {"mode": "bgp", "bgp": {
                "communities": ["64512:100", "65535:65281"], "largeCommunities": ["4200000000:1:2"],
                "localPreference": 200, "aggregationLength": 26, "aggregationLengthV6": 64,
                "peerSelector": {"matchLabels": {"tier": "edge"}}}}}),
        ),
    ];
    for (name, spec) in valid {
        let created = create(&client, pool(name, spec))
            .await
            .unwrap_or_else(|e| panic!("pool {name} is valid: {e:?}"));
        assert_eq!(created.metadata.name.as_deref(), Some(name));
    }
    let defaults = api.get("v4").await.unwrap();
    assert!(defaults.spec.auto_assign, "autoAssign defaults to true");

    let invalid = [
        (
            "host-bits",
            serde_json::json!({"addresses": ["192.0.2.1/24"], "announce": {"mode": "bgp"}}),
        ),
        (
            "bad-octet",
            serde_json::json!({"addresses": ["192.0.2.300/32"], "announce": {"mode": "bgp"}}),
        ),
        (
            "garbage",
            serde_json::json!({"addresses": ["not-an-address"], "announce": {"mode": "bgp"}}),
        ),
        (
            "reversed",
            serde_json::json!({"addresses": ["192.0.2.20-192.0.2.10"], "announce": {"mode": "bgp"}}),
        ),
        (
            "mixed-range",
            serde_json::json!({"addresses": ["192.0.2.1-2001:db8::1"], "announce": {"mode": "bgp"}}),
        ),
        (
            "three-parts",
            serde_json::json!({"addresses": ["192.0.2.1-192.0.2.2-192.0.2.3"], "announce": {"mode": "bgp"}}),
        ),
        (
            "empty",
            serde_json::json!({"addresses": [], "announce": {"mode": "bgp"}}),
        ),
        (
            "no-announce",
            serde_json::json!({"addresses": ["192.0.2.0/24"]}),
        ),
        (
            "bad-mode",
            serde_json::json!({"addresses": ["192.0.2.0/24"], "announce": {"mode": "ospf"}}),
        ),
        (
            "bad-community",
            serde_json::json!({"addresses": ["192.0.2.0/24"], "announce": {"mode": "bgp", "bgp": {"communities": ["70000:1"]}}}),
        ),
        (
            "bad-community-shape",
            serde_json::json!({"addresses": ["192.0.2.0/24"], "announce": {"mode": "bgp", "bgp": {"communities": ["no-export"]}}}),
        ),
        (
            "bad-large-community",
            serde_json::json!({"addresses": ["192.0.2.0/24"], "announce": {"mode": "bgp", "bgp": {"largeCommunities": ["1:2"]}}}),
        ),
        (
            "bad-aggregation",
            serde_json::json!({"addresses": ["192.0.2.0/24"], "announce": {"mode": "bgp", "bgp": {"aggregationLength": 33}}}),
        ),
    ];
    for (name, spec) in invalid {
        let error = create(&client, pool(name, spec))
            .await
            .expect_err(&format!("pool {name} must be rejected"));
        match error {
            kube::Error::Api(status) => assert_eq!(status.code, 422, "pool {name}: {status:?}"),
            other => panic!("pool {name}: expected a 422 from admission, got {other:?}"),
        }
    }
    let names: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert_eq!(names.len(), 5, "only the valid pools exist: {names:?}");
}

/// The documented spelling `avoidBuggyIPs` survives the apiserver (it once had no field, so
/// pruning dropped it and the pool handed out `.0` and `.255`); the early spelling
/// `avoidBuggyIps` is still kept and honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avoid_buggy_ips_is_kept_in_either_spelling() {
    let cluster = TestCluster::start().await.expect("cluster starts");
    cluster
        .install_project_crds()
        .await
        .expect("project CRDs install");
    let client = cluster.client();
    let api: Api<IPPool> = Api::all(client.clone());
    for (name, field) in [("documented", "avoidBuggyIPs"), ("early", "avoidBuggyIps")] {
        let mut spec =
            serde_json::json!({"addresses": ["192.0.2.0/24"], "announce": {"mode": "bgp"}});
        spec[field] = serde_json::Value::Bool(true);
        create(&client, pool(name, spec)).await.unwrap();
        let stored = api.get(name).await.unwrap();
        assert!(
            stored.spec.avoids_buggy_ips(),
            "{field} was kept: {:?}",
            stored.spec
        );
    }
    let plain = api.get("documented").await.unwrap();
    assert!(plain.spec.avoid_buggy_ips && plain.spec.avoid_buggy_ips_deprecated.is_none());
}

fn bgp_peer(name: &str, spec: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "baremetal-ccm.io/v1alpha1",
        "kind": "BGPPeer",
        "metadata": {"name": name},
        "spec": spec,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bgp_peers_are_rejected_at_admission() {
    use baremetal_ccm_core::crd::bgppeer::BGPPeer;
    let cluster = TestCluster::start().await.expect("cluster starts");
    cluster
        .install_project_crds()
        .await
        .expect("project CRDs install");
    let client = cluster.client();
    let resource = ApiResource::erase::<BGPPeer>(&());
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let post = |value: serde_json::Value| {
        let api = api.clone();
        async move {
            api.create(
                &PostParams::default(),
                &serde_json::from_value(value).unwrap(),
            )
            .await
        }
    };
    let valid = [
        (
            "v4",
            serde_json::json!({"peerAddress": "198.51.100.1", "peerASN": 64500, "localASN": 64512}),
        ),
        (
            "full",
            serde_json::json!({"peerAddress": "2001:db8::1", "peerASN": 4200000000u32, "localASN": 64512,
            "port": 1179, "placement": "nodeLocal", "nodeSelector": {"matchLabels": {"rack": "r1"}},
            "passwordSecretRef": {"name": "bgp", "key": "password"}, "ebgpMultihopTtl": 3,
            "holdTimeSeconds": 9, "keepaliveSeconds": 3, "connectRetrySeconds": 2,
            "gracefulRestart": {"restartTimeSeconds": 60}, "bfd": {"minRxMs": 100, "minTxMs": 100, "multiplier": 3},
            "families": ["IPv6"], "addPathSendMax": 8}),
        ),
    ];
    for (name, spec) in valid {
        post(bgp_peer(name, spec))
            .await
            .unwrap_or_else(|e| panic!("peer {name} is valid: {e:?}"));
    }
    let typed: Api<BGPPeer> = Api::all(client.clone());
    let v4 = typed.get("v4").await.unwrap();
    assert_eq!(
        v4.spec.placement,
        baremetal_ccm_core::crd::bgppeer::Placement::Central
    );
    let invalid = [
        (
            "not-ip",
            serde_json::json!({"peerAddress": "router-1", "peerASN": 64500, "localASN": 64512}),
        ),
        (
            "asn-zero",
            serde_json::json!({"peerAddress": "198.51.100.1", "peerASN": 0, "localASN": 64512}),
        ),
        (
            "no-local-asn",
            serde_json::json!({"peerAddress": "198.51.100.1", "peerASN": 64500}),
        ),
        (
            "bad-placement",
            serde_json::json!({"peerAddress": "198.51.100.1", "peerASN": 64500, "localASN": 64512, "placement": "everywhere"}),
        ),
        (
            "bad-family",
            serde_json::json!({"peerAddress": "198.51.100.1", "peerASN": 64500, "localASN": 64512, "families": ["IPX"]}),
        ),
        (
            "bad-ttl",
            serde_json::json!({"peerAddress": "198.51.100.1", "peerASN": 64500, "localASN": 64512, "ebgpMultihopTtl": 0}),
        ),
        (
            "bad-bfd",
            serde_json::json!({"peerAddress": "198.51.100.1", "peerASN": 64500, "localASN": 64512, "bfd": {"minRxMs": 1}}),
        ),
    ];
    for (name, spec) in invalid {
        match post(bgp_peer(name, spec)).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "peer {name}: {status:?}")
            }
            other => panic!("peer {name}: expected a 422 from admission, got {other:?}"),
        }
    }
}
