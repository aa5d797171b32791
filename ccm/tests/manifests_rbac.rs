//! The shipped manifests: the controller runs every controller with exactly the RBAC of
//! `manifests/rbac/rbac.yaml`, and the workload manifest's arguments are ones the binary takes.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use clap::Parser as _;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use support::manifests::*;
use support::nodes::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_controller_works_with_exactly_the_shipped_rbac() {
    let cluster = cluster(false).await;
    let admin = cluster.client();
    apply_rbac(&admin).await;
    let (kubeconfig, _) = cluster
        .service_account_client("kube-system", "baremetal-ccm")
        .await
        .unwrap();
    let config = cloud_config("static:\n  defaults: {zone: dc1-a}\n");
    let cloud_config = format!(
        "--cloud-config={}",
        config.path().join("cloud.yaml").display()
    );
    let (mut ccm, _) = start_ccm(&kubeconfig, "ccm-rbac", &["--controllers=*", &cloud_config]);

    create_pool(
        &admin,
        "pool-a",
        serde_json::json!({"addresses": ["192.0.2.0/30"], "announce": {"mode": "bgp"}}),
    )
    .await;
    Svc::lb("default", "web").create(&admin).await;
    KubeletNode::registers("cp-1")
        .node_ip("198.51.100.1")
        .create(&admin)
        .await;
    assert_eq!(
        wait_addresses(&admin, "default", "web", 1).await,
        ["192.0.2.0"]
    );
    wait_event(&admin, "default", "web", "EnsuredLoadBalancer").await;
    let node = wait_node(&admin, "cp-1", |n| {
        is_initialized(n) && addresses(n).len() == 2
    })
    .await;
    assert_eq!(labels(&node)["topology.kubernetes.io/zone"], "dc1-a");
    wait_event(&admin, "default", "cp-1", "Synced").await;
    wait_pool_status(&admin, "pool-a", |s| !s.conditions.is_empty()).await;
    let lease = Api::<Lease>::namespaced(admin.clone(), "kube-system")
        .get("baremetal-ccm")
        .await
        .unwrap();
    let holder = lease.spec.and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some("ccm-rbac"));
    // The central announcer listed everything it watches (no BGPPeer: it stays idle).
    let announcing = rig::process::wait_for(WAIT, || async {
        ccm.log_tail(200_000)
            .contains("announcer started")
            .then_some(())
    })
    .await;
    assert!(announcing.is_some(), "{}", ccm.log_tail(4000));
    assert!(ccm.is_running(), "{}", ccm.log_tail(4000));
    let log = ccm.log_tail(200_000);
    assert!(!log.to_lowercase().contains("forbidden"), "{log}");

    // The speaker with its own ServiceAccount lists what it watches and writes nothing else.
    let (speaker_kubeconfig, _) = cluster
        .service_account_client("kube-system", "baremetal-ccm-speaker")
        .await
        .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_baremetal-ccm"));
    cmd.arg("speaker")
        .arg(format!("--kubeconfig={}", speaker_kubeconfig.display()))
        .arg(format!(
            "--admin-bind-address=127.0.0.1:{}",
            rig::cluster::free_port().unwrap()
        ))
        .arg("--metrics-bind-address=off")
        .arg("--node-name=cp-1")
        .arg("--gobgp-endpoint=unix:///nonexistent/gobgpd.sock");
    let log_path =
        std::env::temp_dir().join(format!("bmccm-speaker-rbac-{}.log", std::process::id()));
    let mut speaker = rig::process::Process::spawn("speaker", cmd, &log_path).unwrap();
    let listed = rig::process::wait_for(WAIT, || async {
        speaker
            .log_tail(200_000)
            .contains("announcer started")
            .then_some(())
    })
    .await;
    assert!(listed.is_some(), "{}", speaker.log_tail(4000));
    assert!(speaker.is_running());
    let log = speaker.log_tail(200_000);
    assert!(!log.to_lowercase().contains("forbidden"), "{log}");
}

#[test]
fn the_workload_manifest_passes_flags_the_binary_takes() {
    let docs = documents("controller/controller.yaml");
    let daemonset: DaemonSet = serde_json::from_value(
        docs.iter()
            .find(|d| d["kind"] == "DaemonSet")
            .unwrap()
            .clone(),
    )
    .unwrap();
    let pod = daemonset.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.host_network, Some(true));
    let tolerates_all = (pod.tolerations.unwrap().iter())
        .any(|t| t.operator.as_deref() == Some("Exists") && t.key.is_none());
    assert!(
        tolerates_all,
        "the controller must run on uninitialized, not-ready nodes"
    );
    let container = &pod.containers[0];
    let mut argv = vec!["baremetal-ccm".to_owned()];
    argv.extend(container.args.clone().unwrap());
    baremetal_ccm::cli::Cli::try_parse_from(&argv).unwrap();
    let speaker: DaemonSet = serde_json::from_value(
        documents("speaker/speaker.yaml")
            .into_iter()
            .find(|d| d["kind"] == "DaemonSet")
            .unwrap(),
    )
    .unwrap();
    let pod = speaker.spec.unwrap().template.spec.unwrap();
    let mut argv = vec!["baremetal-ccm".to_owned()];
    argv.extend(pod.containers[0].args.clone().unwrap());
    // The node name comes from the downward API in the pod.
    argv.push("--node-name=n1".into());
    baremetal_ccm::cli::Cli::try_parse_from(&argv).unwrap();
    let config: ConfigMap = serde_json::from_value(
        docs.iter()
            .find(|d| d["kind"] == "ConfigMap")
            .unwrap()
            .clone(),
    )
    .unwrap();
    let text = &config.data.unwrap()["cloud.yaml"];
    baremetal_ccm::cloud_config::CloudConfig::parse(text).unwrap();
}
