//! IPPools as tests write and read them (the product's CRD types, from its core crate).

use baremetal_ccm_core::crd::ippool::{IPPool, IPPoolStatus};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::ccm::WAIT;
use crate::process::wait_for;

/// Creates an IPPool from its spec as JSON.
pub async fn create_pool(client: &Client, name: &str, spec: serde_json::Value) {
    let api: Api<IPPool> = Api::all(client.clone());
    let pool = serde_json::from_value(serde_json::json!({
        "apiVersion": "baremetal-ccm.io/v1alpha1", "kind": "IPPool", "metadata": {"name": name}, "spec": spec,
    }))
    .expect("pool fixture is well-formed");
    api.create(&PostParams::default(), &pool)
        .await
        .expect("pool created");
}

/// Creates an IPPool of `addresses` (CIDRs or ranges) announced over BGP, nothing else set:
/// the pool most tests need.
pub async fn create_bgp_pool(client: &Client, name: &str, addresses: &[&str]) {
    let spec = serde_json::json!({"addresses": addresses, "announce": {"mode": "bgp"}});
    create_pool(client, name, spec).await;
}

/// Waits until the pool's status satisfies `check`; returns it.
pub async fn wait_pool_status(
    client: &Client,
    name: &str,
    check: impl Fn(&IPPoolStatus) -> bool,
) -> IPPoolStatus {
    let api: Api<IPPool> = Api::all(client.clone());
    let found = wait_for(WAIT, || async {
        let status = api.get(name).await.ok()?.status?;
        check(&status).then_some(status)
    })
    .await;
    match found {
        Some(status) => status,
        None => panic!(
            "pool {name} status did not match within {WAIT:?}: {:?}",
            api.get(name).await.map(|p| p.status)
        ),
    }
}

/// A pool condition: (status, reason, message).
pub fn pool_condition(status: &IPPoolStatus, type_: &str) -> Option<(String, String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}
