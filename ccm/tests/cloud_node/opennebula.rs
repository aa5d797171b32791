//! The node controllers with the OpenNebula provider, as the real binary against a real
//! apiserver and a fake OpenNebula XML-RPC server (the rig's, answering in OpenNebula's
//! documented shape): initialization from VMs, the shutdown taint round trip, and Node
//! deletion only when OpenNebula is certain the VM is gone.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use rig::ccm::*;
use rig::manifests::*;
use rig::nodes::*;
use rig::opennebula::{FakeNic, FakeOpenNebula, FakeVm, Fault, VM_INFO, state};
use rig::process::wait_for;
use rig::service::*;

const SESSION: &str = "oneadmin:opennebula-secret";

struct World {
    cluster: rig::cluster::TestCluster,
    one: FakeOpenNebula,
    metrics: Metrics,
    _config: tempfile::TempDir,
    _ccm: rig::process::Process,
}

/// The documents of the OpenNebula overlay's own RBAC (beyond the shipped base).
fn overlay_rbac() -> Vec<serde_json::Value> {
    documents("opennebula/rbac.yaml")
}

/// The fake OpenNebula and the controller, running as its ServiceAccount with exactly the
/// shipped RBAC and the OpenNebula overlay's, its credentials (`session`) in the Secret the
/// overlay lets it read.
async fn world(session: &str) -> World {
    let cluster = audited_cluster_with_shipped_rbac().await;
    let admin = cluster.client();
    apply_documents(&admin, overlay_rbac()).await;
    let credentials = serde_json::json!({"credentials": format!("{session}\n")});
    create_secret(&admin, "kube-system", "opennebula", credentials).await;
    let (kubeconfig, _) = cluster
        .service_account_client("kube-system", "baremetal-ccm")
        .await
        .unwrap();
    let one = FakeOpenNebula::start(SESSION).await.unwrap();
    let config = cloud_config("");
    let text = format!(
        "provider: opennebula\nopennebula:\n  endpoint: {}\n  credentials:\n    secret: {{namespace: kube-system, name: opennebula}}\n  cacheTtl: 1s\n  minInterval: 0s\n  region: {{value: one-zone-0}}\n",
        one.endpoint(),
    );
    std::fs::write(config.path().join("cloud.yaml"), text).unwrap();
    let cloud_config = format!(
        "--cloud-config={}",
        config.path().join("cloud.yaml").display()
    );
    let metrics = Metrics::on_free_port(&cluster.admin_kubeconfig());
    let (ccm, _) = start_ccm(
        &kubeconfig,
        "ccm-one",
        &[
            "--controllers=cloud-node,cloud-node-lifecycle",
            "--node-monitor-period=1s",
            &cloud_config,
            &metrics.flag(),
        ],
    );
    World {
        cluster,
        one,
        metrics,
        _config: config,
        _ccm: ccm,
    }
}

impl World {
    /// Nothing the controller asked for was refused.
    fn assert_nothing_forbidden(&self) {
        let requests = self.cluster.audited_requests().unwrap();
        let forbidden = rig::rbac::forbidden(&["kube-system/baremetal-ccm"], &requests);
        assert!(forbidden.is_empty(), "refused: {forbidden:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vms_initialize_their_nodes_and_ambiguous_or_missing_ones_say_why() {
    let w = world(SESSION).await;
    let client = w.cluster.client();
    w.one.put_vm(
        FakeVm::running(10, "worker-1")
            .on_host("kvm-3", 100)
            .with_user_attribute("INSTANCE_TYPE", "m1-large")
            .with_nic(
                FakeNic::ipv4(0, "private", 1, "192.0.2.11").with_ipv6("2001:db8::11", "fe80::11"),
            )
            .with_nic(FakeNic::ipv4(1, "storage", 2, "198.51.100.11")),
    );
    w.one.put_vm(FakeVm::running(11, "dup"));
    w.one.put_vm(FakeVm::running(12, "dup"));
    w.one.put_vm(
        FakeVm::running(13, "renamed-vm").with_uuid("9b1d2a7e-0000-4000-8000-000000000013"),
    );

    KubeletNode::registers("worker-1")
        .node_ip("192.0.2.11")
        .create(&client)
        .await;
    KubeletNode::registers("by-uuid")
        .system_uuid("9B1D2A7E-0000-4000-8000-000000000013")
        .create(&client)
        .await;
    KubeletNode::registers("dup").create(&client).await;
    KubeletNode::registers("ghost").create(&client).await;

    let worker = wait_node(&client, "worker-1", |n| {
        is_initialized(n) && addresses(n).len() > 1
    })
    .await;
    assert_eq!(provider_id(&worker).as_deref(), Some("one://10"));
    let node_labels = labels(&worker);
    assert_eq!(node_labels["topology.kubernetes.io/region"], "one-zone-0");
    assert_eq!(node_labels["node.kubernetes.io/instance-type"], "m1-large");
    assert!(
        node_labels.contains_key("topology.kubernetes.io/zone"),
        "{node_labels:?}"
    );
    // The node IP first; the other InternalIPv4 of the VM dropped (a node IP matched that
    // type), the IPv6 NIC address dropped with it, the Hostname kept.
    assert_eq!(
        addresses(&worker),
        [
            ("InternalIP".to_owned(), "192.0.2.11".to_owned()),
            ("Hostname".to_owned(), "worker-1".to_owned()),
        ]
    );
    wait_event(&client, "default", "worker-1", "Synced").await;

    // No name match, but the VM's UUID is the node's system UUID (case aside).
    let by_uuid = wait_node(&client, "by-uuid", is_initialized).await;
    assert_eq!(provider_id(&by_uuid).as_deref(), Some("one://13"));

    let dup = wait_event(&client, "default", "dup", "InitializationFailed").await;
    assert!(
        dup.contains("matches several instances") && dup.contains("11") && dup.contains("12"),
        "{dup}"
    );
    let ghost = wait_event(&client, "default", "ghost", "InitializationFailed").await;
    assert!(ghost.contains("no instance matches node ghost"), "{ghost}");
    let api: Api<Node> = Api::all(client.clone());
    for name in ["dup", "ghost"] {
        let node = api.get(name).await.unwrap();
        assert!(
            !is_initialized(&node) && provider_id(&node).is_none(),
            "{name}"
        );
    }

    // Telling the kubelet which VM it is resolves the ambiguity.
    api.delete("dup", &Default::default()).await.unwrap();
    wait_for(WAIT, || async {
        api.get_opt("dup").await.unwrap().is_none().then_some(())
    })
    .await;
    KubeletNode::registers("dup")
        .provider_id("one://12")
        .create(&client)
        .await;
    let dup = wait_node(&client, "dup", is_initialized).await;
    assert_eq!(provider_id(&dup).as_deref(), Some("one://12"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shut_down_vms_taint_their_nodes_and_only_certainly_gone_ones_are_deleted() {
    let w = world(SESSION).await;
    let client = w.cluster.client();
    let api: Api<Node> = Api::all(client.clone());
    for (id, name) in [(20, "off"), (21, "parked"), (22, "done"), (23, "flaky")] {
        w.one.put_vm(FakeVm::running(id, name));
        KubeletNode::registers(name)
            .initialized()
            .provider_id(&format!("one://{id}"))
            .not_ready()
            .create(&client)
            .await;
    }
    let has_shutdown = |n: &Node| taint_keys(n).iter().any(|k| k == SHUTDOWN);

    // POWEROFF and UNDEPLOYED: shut down, tainted; the Nodes stay.
    w.one
        .update_vm(20, |vm| *vm = vm.clone().in_state(state::POWEROFF));
    w.one
        .update_vm(21, |vm| *vm = vm.clone().in_state(state::UNDEPLOYED));
    wait_node(&client, "off", has_shutdown).await;
    wait_node(&client, "parked", has_shutdown).await;
    wait_event(&client, "default", "off", "NodeShutdown").await;

    // Powered on and Ready again: the taint goes.
    w.one
        .update_vm(20, |vm| *vm = vm.clone().in_state(state::ACTIVE));
    set_ready(&client, "off", true).await;
    wait_node(&client, "off", |n| !has_shutdown(n)).await;
    wait_event(&client, "default", "off", "NodeShutdownCleared").await;

    // A VM that is DONE: its Node is deleted, with the upstream Event first.
    w.one
        .update_vm(22, |vm| *vm = vm.clone().in_state(state::DONE));
    wait_for(WAIT, || async {
        api.get_opt("done").await.unwrap().is_none().then_some(())
    })
    .await
    .expect("the Node of a DONE VM is deleted");
    let deleting = wait_event(&client, "default", "done", "DeletingNode").await;
    assert!(deleting.contains("does not exist"), "{deleting}");

    // A VM that vanished while OpenNebula answers errors: never deleted on an error.
    w.one.remove_vm(23);
    w.one.set_method_fault(VM_INFO, Some(Fault::Http500));
    let unknown = wait_event(&client, "default", "flaky", "InstanceStateUnknown").await;
    assert!(unknown.contains("unavailable"), "{unknown}");
    // Evidence that the monitor checked "flaky" again and again: its failed checks are
    // counted. "flaky" and "parked" are the only NotReady Nodes, so a pass fails at most two
    // checks; four more failures take more than one pass, hence a whole pass, "flaky" in it.
    const FAILURES: &str = "baremetal_ccm_node_lifecycle_errors_total";
    let seen = w.metrics.sum(FAILURES).await;
    w.metrics.wait_sum(FAILURES, seen + 4.0).await;
    assert!(
        api.get_opt("flaky").await.unwrap().is_some(),
        "an error never counts as gone"
    );
    // OpenNebula answers again, saying the VM does not exist: now it is deleted.
    w.one.set_method_fault(VM_INFO, None);
    wait_for(WAIT, || async {
        api.get_opt("flaky").await.unwrap().is_none().then_some(())
    })
    .await
    .expect("the Node of a VM that no longer exists is deleted");
    // The shut-down ones were never deleted.
    assert!(api.get_opt("parked").await.unwrap().is_some());
    assert!(api.get_opt("off").await.unwrap().is_some());

    // With exactly the shipped RBAC and the overlay's: nothing refused, every rule of the
    // overlay used (the credentials read, the Nodes deleted).
    w.assert_nothing_forbidden();
    let requests = w.cluster.audited_requests().unwrap();
    let unused = rig::rbac::unused(&rig::rbac::grants(&overlay_rbac()), &requests);
    assert!(unused.is_empty(), "granted but never used: {unused:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_keep_nodes_tainted_and_never_delete_anything() {
    let w = world("oneadmin:wrong").await;
    let client = w.cluster.client();
    w.one.put_vm(FakeVm::running(30, "n1"));
    KubeletNode::registers("n1").create(&client).await;
    KubeletNode::registers("n2")
        .initialized()
        .provider_id("one://31")
        .not_ready()
        .create(&client)
        .await;
    let note = wait_event(&client, "default", "n1", "InitializationFailed").await;
    assert!(note.contains("refused the credentials"), "{note}");
    let note = wait_event(&client, "default", "n2", "InstanceStateUnknown").await;
    assert!(note.contains("refused the credentials"), "{note}");
    let api: Api<Node> = Api::all(client.clone());
    assert!(!is_initialized(&api.get("n1").await.unwrap()));
    assert!(api.get_opt("n2").await.unwrap().is_some());
    w.assert_nothing_forbidden();
}
