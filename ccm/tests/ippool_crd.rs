//! The generated `IPPool` CRD, installed in a real apiserver, admits well-formed pools and
//! rejects malformed ones at admission with the rule's message.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use baremetal_ccm::crd::ippool::IPPool;
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
    assert_eq!(names.len(), 4, "only the valid pools exist: {names:?}");
}
