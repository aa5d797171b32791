//! The takeover from MetalLB itself: MetalLB's own controller (built from its Go module by
//! `hack/tools`, its CRDs installed) addresses Services first — plain ones, ones asking with
//! `metallb.io/loadBalancerIPs` or `spec.loadBalancerIP`, ones naming a pool, pairs sharing one
//! address through `metallb.io/allow-shared-ip`, dual-stack ones. Then MetalLB stops, `migrate
//! metallb --dry-run` forecasts the takeover, the converted pools are applied and our
//! controller takes over: not one address may change, shared pairs stay shared.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams};
use rig::ccm::*;
use rig::metallb;
use rig::process::{Process, wait_for};
use rig::service::*;
use rig::tools::{Tool, metallb_crds_dir};

const CONDITION: &str = "baremetal-ccm.io/AddressAllocated";

fn metallb_crds() -> Vec<CustomResourceDefinition> {
    let dir = metallb_crds_dir().unwrap();
    let mut crds = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_json::Value = serde::Deserialize::deserialize(document).unwrap();
            if !value.is_null() {
                crds.push(serde_json::from_value(value).unwrap());
            }
        }
    }
    assert!(crds.len() >= 6, "MetalLB's CRDs in {}", dir.display());
    crds
}

fn start_metallb(kubeconfig: &Path) -> Process {
    let mut command = std::process::Command::new(Tool::MetallbController.path().unwrap());
    command.args([
        &format!("--kubeconfig={}", kubeconfig.display()),
        "--namespace=metallb-system",
        "--webhook-mode=disabled",
        "--disable-cert-rotation",
        &format!("--port={}", rig::cluster::free_port().unwrap()),
        "--log-level=info",
    ]);
    let log = std::env::temp_dir().join(format!(
        "bmccm-metallb-controller-{}.log",
        std::process::id()
    ));
    Process::spawn("metallb-controller", command, &log).unwrap()
}

/// Every LoadBalancer Service's addresses, by name.
async fn addresses(client: &kube::Client) -> BTreeMap<String, Vec<String>> {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    (api.list(&ListParams::default()).await.unwrap().items.iter())
        .filter(|s| (s.spec.as_ref()).and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"))
        .map(|s| {
            let ips: Vec<String> = ingress(s).into_iter().map(|(ip, _)| ip).collect();
            (s.metadata.name.clone().unwrap(), ips)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_metallb_itself_addressed_are_taken_over_without_one_address_changing() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    let kubeconfig = cluster.admin_kubeconfig();
    cluster.install_crds(&metallb_crds()).await.unwrap();
    create_namespace(&client, "metallb-system", &[]).await;
    for (name, addresses, auto) in [
        ("lan", vec!["192.0.2.0/24", "2001:db8:1::/120"], true),
        ("edge", vec!["198.51.100.0/28"], false),
    ] {
        metallb::create(
            &client,
            serde_json::json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": "metallb-system"},
            "spec": {"addresses": addresses, "autoAssign": auto}}),
        )
        .await;
    }
    metallb::create(
        &client,
        serde_json::json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": "all", "namespace": "metallb-system"}, "spec": {}}),
    )
    .await;
    let mut metallb = start_metallb(&kubeconfig);

    let mut services: Vec<Svc> = Vec::new();
    for i in 0..10 {
        services.push(Svc::lb("default", &format!("plain-{i}")));
    }
    for i in 0..3 {
        let ip = format!("192.0.2.{}", 200 + i);
        services.push(
            Svc::lb("default", &format!("asked-{i}")).annotate("metallb.io/loadBalancerIPs", &ip),
        );
    }
    services.push(Svc::lb("default", "asked-field").load_balancer_ip("192.0.2.210"));
    for i in 0..2 {
        services.push(
            Svc::lb("default", &format!("edge-{i}")).annotate("metallb.io/address-pool", "edge"),
        );
    }
    // Pairs sharing one address: two asking for it, one letting MetalLB choose.
    for (pair, ip) in [
        ("pair-0", Some("192.0.2.220")),
        ("pair-1", Some("192.0.2.221")),
        ("pair-2", None),
    ] {
        for (side, port) in [("a", 80), ("b", 443)] {
            let mut svc = Svc::lb("default", &format!("{pair}-{side}"))
                .port("TCP", port)
                .annotate("metallb.io/allow-shared-ip", pair);
            if let Some(ip) = ip {
                svc = svc.annotate("metallb.io/loadBalancerIPs", ip);
            }
            services.push(svc);
        }
    }
    for i in 0..2 {
        services.push(
            Svc::lb("default", &format!("dual-{i}"))
                .families("RequireDualStack", &["IPv4", "IPv6"]),
        );
    }
    let count = services.len();
    for svc in services {
        svc.create(&client).await;
    }
    // MetalLB addresses them all (a dual-stack one gets both families).
    let before = wait_for(Duration::from_secs(90), || async {
        let now = addresses(&client).await;
        let done = now.len() == count
            && (now.iter())
                .all(|(name, ips)| ips.len() == if name.starts_with("dual") { 2 } else { 1 });
        done.then_some(now)
    })
    .await;
    let Some(before) = before else {
        panic!(
            "MetalLB did not address every Service: {:?}; its log:\n{}",
            addresses(&client).await,
            metallb.log_tail(3000)
        );
    };
    metallb.kill();
    eprintln!("as MetalLB left them: {before:?}");
    assert_eq!(
        before["pair-0-a"], before["pair-0-b"],
        "MetalLB shares a requested pair"
    );

    // The dry run: nothing moves.
    let (code, table, report) = metallb::migrate(&kubeconfig, &["--dry-run"]);
    eprintln!("{report}\n{table}");
    assert_eq!(code, Some(0), "{table}");
    let kept = table
        .lines()
        .filter(|l| l.split('\t').nth(2) == Some("kept"))
        .count();
    assert_eq!(kept, count, "every Service kept:\n{table}");

    // The converted pools applied, our controller takes over.
    let (code, yaml, _) = metallb::migrate(&kubeconfig, &[]);
    assert_eq!(code, Some(0));
    metallb::apply_converted(&client, &yaml).await;
    let _ccm = start_controller(&kubeconfig, "ccm", &[]);
    for name in before.keys() {
        let (reason, _) = wait_condition(&client, "default", name, CONDITION, "True").await;
        assert_eq!(reason, "Allocated", "{name}");
    }
    assert!(settle(&cluster, Duration::from_secs(2)).await);
    let after = addresses(&client).await;
    let moved: Vec<&String> = (before.keys())
        .filter(|n| before[*n] != after[*n])
        .collect();
    eprintln!(
        "taken over from MetalLB: {count} Services, kept {}, moved {}, pending 0",
        count - moved.len(),
        moved.len()
    );
    assert!(
        moved.is_empty(),
        "moved: {moved:?}\nbefore {before:?}\nafter {after:?}"
    );
    // Shared pairs stay shared (kept addresses say so; the pair MetalLB chose for is checked
    // either way).
    for pair in ["pair-0", "pair-1", "pair-2"] {
        let shared =
            |m: &BTreeMap<String, Vec<String>>| m[&format!("{pair}-a")] == m[&format!("{pair}-b")];
        assert_eq!(shared(&before), shared(&after), "{pair}");
    }
    let note = wait_event(&client, "default", "pair-2-a", "MetalLBAnnotationsHonoured").await;
    assert!(note.contains("metallb.io/allow-shared-ip=pair-2"), "{note}");
}
