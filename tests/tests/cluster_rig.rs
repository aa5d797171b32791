//! The rig's Kubernetes half is real: objects created through a real kube-apiserver (backed by
//! a real etcd) are seen by kube-runtime watchers, RBAC is enforced for ServiceAccount
//! clients, and CRDs install and serve.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ObjectMeta, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use rig::cluster::{ClusterOptions, TestCluster};
use serde::de::DeserializeOwned;

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

/// Starts a watcher on `api`, creates `object`, and waits until the watcher reports it.
async fn create_and_watch<K>(api: Api<K>, object: K) -> K
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug + Send + 'static,
{
    let name = object.meta().name.clone().expect("fixtures are named");
    let stream = watcher::watcher(api.clone(), watcher::Config::default());
    let mut stream = std::pin::pin!(stream);
    // The initial list completes before the object exists, so the watch event that follows
    // is the apiserver's own notification of our create.
    loop {
        match stream.try_next().await.expect("watch works") {
            Some(Event::InitDone) => break,
            Some(_) => continue,
            None => panic!("watch ended before the initial list"),
        }
    }
    api.create(&PostParams::default(), &object)
        .await
        .expect("create succeeds");
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = stream.next().await {
            if let Ok(Event::Apply(obj)) = event
                && obj.meta().name.as_deref() == Some(&name)
            {
                return obj;
            }
        }
        panic!("watch stream ended")
    })
    .await
    .expect("the watcher sees the created object within 30s");
    assert!(seen.meta().uid.is_some(), "the apiserver assigned a uid");
    assert!(
        seen.meta().resource_version.is_some(),
        "etcd assigned a resourceVersion"
    );
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_nodes_endpointslices_and_leases_are_created_and_watched() {
    rig::init_test_logging();
    let options = ClusterOptions {
        audit_writes: true,
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::start_with(options)
        .await
        .expect("cluster starts");
    let client = cluster.client();

    let service = rig::service::Svc::lb("default", "web").service;
    let service = create_and_watch(
        Api::<Service>::namespaced(client.clone(), "default"),
        service,
    )
    .await;
    let spec = service.spec.expect("spec");
    assert!(
        spec.cluster_ip.is_some_and(|ip| ip.starts_with("10.96.")),
        "the apiserver allocated a ClusterIP"
    );

    let mut node = Node {
        metadata: meta("worker-1"),
        ..Node::default()
    };
    node.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
        taints: Some(vec![k8s_openapi::api::core::v1::Taint {
            key: "node.cloudprovider.kubernetes.io/uninitialized".into(),
            value: Some("true".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    let node = create_and_watch(Api::<Node>::all(client.clone()), node).await;
    // The apiserver's TaintNodesByCondition admission adds `not-ready` beside ours, as for a kubelet.
    let taints: Vec<String> = node
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.key)
        .collect();
    assert!(
        taints
            .iter()
            .any(|k| k == "node.cloudprovider.kubernetes.io/uninitialized"),
        "{taints:?}"
    );

    let slice = EndpointSlice {
        metadata: ObjectMeta {
            labels: Some([("kubernetes.io/service-name".to_owned(), "web".to_owned())].into()),
            ..meta("web-abc")
        },
        address_type: "IPv4".into(),
        endpoints: Some(vec![Endpoint {
            addresses: vec!["192.0.2.10".into()],
            node_name: Some("worker-1".into()),
            ..Endpoint::default()
        }]),
        ports: None,
    };
    let slice = create_and_watch(
        Api::<EndpointSlice>::namespaced(client.clone(), "default"),
        slice,
    )
    .await;
    let endpoints = slice.endpoints.expect("endpoints");
    assert_eq!(endpoints[0].node_name.as_deref(), Some("worker-1"));

    let lease = Lease {
        metadata: meta("baremetal-ccm"),
        spec: Some(LeaseSpec {
            holder_identity: Some("replica-a".into()),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }),
    };
    let lease = create_and_watch(Api::<Lease>::namespaced(client, "kube-system"), lease).await;
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("replica-a")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_clients_are_subject_to_rbac_and_crds_install() {
    rig::init_test_logging();
    let cluster = TestCluster::start().await.expect("cluster starts");
    let admin = cluster.client();
    let (kubeconfig, sa) = cluster
        .service_account_client("kube-system", "rig-reader")
        .await
        .expect("token issued");
    assert!(kubeconfig.is_file());

    let nodes: Api<Node> = Api::all(sa.clone());
    let denied = nodes
        .list(&Default::default())
        .await
        .expect_err("no RBAC grant yet");
    assert!(
        matches!(denied, kube::Error::Api(ref status) if status.code == 403),
        "{denied:?}"
    );

    grant_node_read(&admin, "kube-system", "rig-reader").await;
    // RBAC caches refresh from watches; wait on the condition rather than sleeping.
    let allowed = rig::process::wait_for(Duration::from_secs(20), || {
        let nodes = nodes.clone();
        async move { nodes.list(&Default::default()).await.ok() }
    })
    .await;
    assert!(
        allowed.is_some(),
        "the binding takes effect for the ServiceAccount's token"
    );

    let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.rig.baremetal-ccm.io"},
        "spec": {
            "group": "rig.baremetal-ccm.io",
            "scope": "Cluster",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}}}}}}]
        }
    }))
    .expect("fixture CRD is valid");
    cluster
        .install_crds(&[crd])
        .await
        .expect("CRD becomes Established");
    let gvk = GroupVersionKind::gvk("rig.baremetal-ccm.io", "v1", "Widget");
    let widgets: Api<DynamicObject> = Api::all_with(admin.clone(), &ApiResource::from_gvk(&gvk));
    let ok: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "rig.baremetal-ccm.io/v1", "kind": "Widget", "metadata": {"name": "a"}, "spec": {"size": 3}
    }))
    .unwrap();
    widgets
        .create(&PostParams::default(), &ok)
        .await
        .expect("valid object accepted");
    let bad: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "rig.baremetal-ccm.io/v1", "kind": "Widget", "metadata": {"name": "b"}, "spec": {"size": 0}
    }))
    .unwrap();
    let rejected = widgets
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("schema minimum enforced");
    assert!(
        matches!(rejected, kube::Error::Api(ref status) if status.code == 422),
        "{rejected:?}"
    );

    // The project's own CRDs (manifests/crds) install too.
    cluster
        .install_project_crds()
        .await
        .expect("project CRDs install");
}

async fn grant_node_read(admin: &Client, namespace: &str, account: &str) {
    let role = ClusterRole {
        metadata: meta("rig-node-reader"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["nodes".into()]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    };
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("role created");
    let binding = ClusterRoleBinding {
        metadata: meta("rig-node-reader"),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "rig-node-reader".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.into(),
            namespace: Some(namespace.into()),
            ..Subject::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding created");
}
