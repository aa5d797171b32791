//! The shipped manifests: the controller runs every controller, and the speaker its BGP
//! announcer and layer 2, with exactly the shipped RBAC (`manifests/rbac/`), the password
//! Secrets are the only Secrets either account reads, and the workload manifests' arguments
//! are ones the binary takes.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use clap::Parser as _;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use rig::ccm::*;
use rig::manifests::*;
use rig::nodes::*;
use rig::pool::*;
use rig::rbac::*;
use rig::service::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_controller_works_with_exactly_the_shipped_rbac_and_uses_all_of_it() {
    let cluster = audited_cluster_with_shipped_rbac().await;
    let admin = cluster.client();
    // A BGP password, a central peer and a node-local one: both announcers read the Secret
    // and write their status entries (no gobgpd here: the entries say so).
    let password = serde_json::json!({"password": "s3cret"});
    create_secret(&admin, "baremetal-ccm-bgp", "bgp", password).await;
    for (name, placement, address) in [
        ("tor-central", "central", "198.51.100.201"),
        ("tor-local", "nodeLocal", "198.51.100.202"),
    ] {
        rig::fabric::create_peer(
            &admin,
            name,
            serde_json::json!({}),
            serde_json::json!({"peerAddress": address, "peerASN": 64500, "localASN": 64512, "placement": placement,
                "passwordSecretRef": {"name": "bgp", "key": "password"}}),
        )
        .await;
    }
    let (kubeconfig, _) = cluster
        .service_account_client("kube-system", "baremetal-ccm")
        .await
        .unwrap();
    let config = cloud_config("static:\n  defaults: {zone: dc1-a}\n");
    let cloud_config = format!(
        "--cloud-config={}",
        config.path().join("cloud.yaml").display()
    );
    // The metrics listener on: scraping it is what its TokenReview/SubjectAccessReview grant is for.
    let ccm_metrics =
        std::net::SocketAddr::from(([127, 0, 0, 1], rig::cluster::free_port().unwrap()));
    let (mut ccm, _) = start_ccm(
        &kubeconfig,
        "ccm-rbac",
        &[
            "--controllers=*",
            &cloud_config,
            &format!("--metrics-bind-address={ccm_metrics}"),
        ],
    );

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
    // The speaker's token is bound to its pod on cp-1, as the kubelet's is. It runs as the
    // DaemonSet runs it, layer 2 on: in cp-1's own network namespace (its gossip binds cp-1's
    // InternalIP, its responder opens packet sockets on eth0), the API server forwarded in and
    // its metrics listener out.
    let (speaker_kubeconfig, speaker_client) = cluster
        .pod_service_account_client("kube-system", "baremetal-ccm-speaker", "cp-1")
        .await
        .unwrap();
    let mut lab = rig::netns::Lab::new().unwrap();
    let segment = lab.segment("sw").unwrap();
    let cp1 = lab
        .host_on("cp-1", &segment, &["198.51.100.1/24".parse().unwrap()])
        .unwrap();
    let _api = rig::l2::forward_api(&cluster, &cp1);
    let (_key_dir, key) = rig::l2::gossip_key();
    let speaker_port = rig::cluster::free_port().unwrap();
    let speaker_metrics = std::net::SocketAddr::from(([127, 0, 0, 1], speaker_port));
    let mut speaker = rig::l2::start_l2_speaker_as(
        &speaker_kubeconfig,
        &cp1,
        "cp-1",
        &key,
        &[
            &format!("--metrics-bind-address={speaker_metrics}"),
            "--gobgp-endpoint=unix:///nonexistent/gobgpd.sock",
        ],
    );
    let _metrics = rig::l2::forward_from(&cp1, speaker_port);
    let listed = rig::process::wait_for(WAIT, || async {
        let log = speaker.log_tail(200_000);
        (log.contains("announcer started") && log.contains("layer 2 started")).then_some(())
    })
    .await;
    assert!(listed.is_some(), "{}", speaker.log_tail(4000));
    // An address of a layer-2 pool: the speaker, alone in the membership, owns it — what it
    // reads to decide that, it may read.
    create_pool(
        &admin,
        "pool-l2",
        serde_json::json!({"addresses": ["198.51.100.64/30"], "autoAssign": false, "announce": {"mode": "l2"}}),
    )
    .await;
    Svc::lb("default", "l2")
        .annotate("baremetal-ccm.io/pool", "pool-l2")
        .create(&admin)
        .await;
    assert_eq!(
        wait_addresses(&admin, "default", "l2", 1).await,
        ["198.51.100.64"]
    );
    let admin_token = token_of(&cluster.admin_kubeconfig());
    let owned = rig::process::wait_for(WAIT, || async {
        let reply = rig::https::get(
            speaker_metrics,
            "/metrics",
            Some(&admin_token),
            rig::https::Trust::AnyCertificate,
        )
        .await
        .ok()?;
        (reply.body.lines())
            .any(|l| l == "baremetal_ccm_l2_owned_addresses 1")
            .then_some(())
    })
    .await;
    assert!(owned.is_some(), "{}", speaker.log_tail(4000));
    rig::fabric::wait_session(&admin, "tor-central", "ccm-rbac", |s| !s.state.is_empty()).await;
    rig::fabric::wait_session(&admin, "tor-local", "cp-1", |s| !s.state.is_empty()).await;
    assert!(speaker.is_running());
    let log = speaker.log_tail(200_000);
    assert!(!log.to_lowercase().contains("forbidden"), "{log}");

    // The speaker may write its own status entry and nothing else: not another speaker's
    // entry, not a removal of the others; and a speaker token bound to no node may write none.
    let (_, unbound) = cluster
        .service_account_client("kube-system", "baremetal-ccm-speaker")
        .await
        .unwrap();
    let apply = |client: &kube::Client, peer: &str, speakers: serde_json::Value| {
        let api: Api<baremetal_ccm_core::crd::bgppeer::BGPPeer> = Api::all(client.clone());
        let patch = serde_json::json!({
            "apiVersion": "baremetal-ccm.io/v1alpha1", "kind": "BGPPeer",
            "metadata": {"name": peer}, "status": {"speakers": speakers},
        });
        let peer = peer.to_owned();
        async move {
            api.patch_status(
                &peer,
                &kube::api::PatchParams::apply("hostile").force(),
                &kube::api::Patch::Apply(&patch),
            )
            .await
        }
    };
    let entry = |speaker: &str| serde_json::json!([{"speaker": speaker, "state": "Established", "updated": "2026-01-01T00:00:00Z"}]);
    let refused =
        |result: Result<baremetal_ccm_core::crd::bgppeer::BGPPeer, kube::Error>| match result {
            Err(kube::Error::Api(status)) if status.code == 403 || status.code == 422 => {
                status.message
            }
            other => panic!("expected a refusal, got {other:?}"),
        };
    let enforced = rig::process::wait_for(WAIT, || async {
        matches!(
            apply(&unbound, "tor-local", entry("cp-1")).await,
            Err(kube::Error::Api(_))
        )
        .then_some(())
    })
    .await;
    assert!(enforced.is_some(), "the admission policy is never enforced");
    let message = refused(apply(&unbound, "tor-local", entry("cp-1")).await);
    assert!(message.contains("must be bound to a node"), "{message}");
    let message = refused(apply(&speaker_client, "tor-central", entry("ccm-rbac")).await);
    assert!(
        message.contains("may write only its own entry"),
        "{message}"
    );
    let message = refused(apply(&speaker_client, "tor-local", entry("cp-2")).await);
    assert!(
        message.contains("may write only its own entry"),
        "{message}"
    );
    let wipe = serde_json::json!({"status": {"speakers": []}});
    let result = Api::<baremetal_ccm_core::crd::bgppeer::BGPPeer>::all(speaker_client.clone())
        .patch_status(
            "tor-central",
            &Default::default(),
            &kube::api::Patch::Merge(&wipe),
        )
        .await;
    let message = refused(result);
    assert!(
        message.contains("may write only its own entry"),
        "{message}"
    );
    // Its own entry, under another field manager: allowed.
    apply(&speaker_client, "tor-local", entry("cp-1"))
        .await
        .unwrap();
    let central = rig::fabric::peer_session(&admin, "tor-central", "ccm-rbac").await;
    assert!(central.is_some(), "the controller's entry is untouched");

    // The Service goes: its finalizer is removed.
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(admin.clone(), "default")
        .delete("web", &Default::default())
        .await
        .unwrap();
    let gone = rig::process::wait_for(WAIT, || async {
        Api::<k8s_openapi::api::core::v1::Service>::namespaced(admin.clone(), "default")
            .get_opt("web")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(gone.is_some(), "{}", ccm.log_tail(4000));

    // Both metrics listeners answer a caller the API server vouches for (the rig's admin).
    for address in [ccm_metrics, speaker_metrics] {
        let scraped = rig::process::wait_for(WAIT, || async {
            let reply = rig::https::get(
                address,
                "/metrics",
                Some(&admin_token),
                rig::https::Trust::AnyCertificate,
            )
            .await
            .ok()?;
            (reply.status == 200).then_some(())
        })
        .await;
        assert!(scraped.is_some(), "no scrape of {address}");
    }

    // The lease was renewed at least once (an update, not only its creation).
    let renewed = rig::process::wait_for(WAIT, || async {
        let lease = Api::<Lease>::namespaced(admin.clone(), "kube-system")
            .get("baremetal-ccm")
            .await
            .unwrap();
        let spec = lease.spec.unwrap_or_default();
        (spec.renew_time != spec.acquire_time).then_some(())
    })
    .await;
    assert!(renewed.is_some());

    // From the API server's side: nothing was refused, and every rule shipped was used.
    let requests = cluster.audited_requests().unwrap();
    let accounts = [
        "kube-system/baremetal-ccm",
        "kube-system/baremetal-ccm-speaker",
    ];
    let forbidden = rig::rbac::forbidden(&accounts, &requests);
    assert!(forbidden.is_empty(), "refused: {forbidden:#?}");
    let grants = rig::rbac::grants(&shipped_rbac_documents());
    let unused = rig::rbac::unused(&grants, &requests);
    assert!(unused.is_empty(), "granted but never used: {unused:#?}");
    // And the check sees RBAC's refusals: one made on purpose shows up.
    let denied = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(unbound, "kube-system")
        .list(&Default::default())
        .await;
    assert!(denied.is_err());
    let seen = rig::process::wait_for(WAIT, || async {
        let requests = cluster.audited_requests().unwrap();
        (rig::rbac::forbidden(&accounts, &requests).len() == 1).then_some(())
    })
    .await;
    assert!(seen.is_some());
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
    baremetal_ccm::Cli::try_parse_from(&argv).unwrap();
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
    baremetal_ccm::Cli::try_parse_from(&argv).unwrap();
    let config: ConfigMap = serde_json::from_value(
        docs.iter()
            .find(|d| d["kind"] == "ConfigMap")
            .unwrap()
            .clone(),
    )
    .unwrap();
    let text = &config.data.unwrap()["cloud.yaml"];
    baremetal_ccm::CloudConfig::parse(text).unwrap();
}

/// The speaker's token (as shipped) reads no Secret outside the BGP password namespace, and the
/// announcer caches exactly the Secrets BGPPeers reference, each one from its own watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_secrets_are_read_one_by_one_from_their_namespace_only() {
    use baremetal_ccm::providers::Passwords;
    use baremetal_ccm_core::crd::bgppeer::SecretKeyRef;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{DeleteParams, ListParams, Patch, PatchParams};

    const NAMESPACE: &str = "baremetal-ccm-bgp";
    let cluster = cluster(false).await;
    let admin = cluster.client();
    apply_shipped_rbac(&admin).await;
    let token = serde_json::json!({"token-secret": "0123456789abcdef"});
    create_secret(&admin, "kube-system", "bootstrap-token-abcdef", token).await;
    let passwords_ns: Api<Secret> = Api::namespaced(admin.clone(), NAMESPACE);
    create_secret(
        &admin,
        NAMESPACE,
        "tor-a",
        serde_json::json!({"password": "s3cret\n"}),
    )
    .await;
    // Unreferenced and large: never cached.
    let filler = "x".repeat(900 * 1024);
    create_secret(
        &admin,
        NAMESPACE,
        "unrelated",
        serde_json::json!({"blob": filler}),
    )
    .await;

    for account in ["baremetal-ccm", "baremetal-ccm-speaker"] {
        let (_, client) = cluster
            .service_account_client("kube-system", account)
            .await
            .unwrap();
        let denied = Api::<Secret>::namespaced(client.clone(), "kube-system")
            .list(&ListParams::default())
            .await;
        assert!(
            matches!(&denied, Err(kube::Error::Api(e)) if e.code == 403),
            "{account} must not list kube-system Secrets: {denied:?}"
        );
        let denied = Api::<Secret>::all(client.clone())
            .list(&ListParams::default())
            .await;
        assert!(
            matches!(&denied, Err(kube::Error::Api(e)) if e.code == 403),
            "{account} must not list Secrets cluster-wide: {denied:?}"
        );
        let denied = Api::<Secret>::namespaced(client.clone(), "kube-system")
            .get("bootstrap-token-abcdef")
            .await;
        assert!(
            matches!(&denied, Err(kube::Error::Api(e)) if e.code == 403),
            "{account} must not get kube-system Secrets: {denied:?}"
        );
    }

    let (_, speaker) = cluster
        .service_account_client("kube-system", "baremetal-ccm-speaker")
        .await
        .unwrap();
    let (changes, mut changed) = tokio::sync::watch::channel(0_u64);
    let passwords = Passwords::new(&speaker, NAMESPACE, std::sync::Arc::new(changes));
    let reference = |namespace: Option<&str>, name: &str, key: &str| SecretKeyRef {
        name: name.into(),
        key: key.into(),
        namespace: namespace.map(str::to_owned),
    };
    let tor_a = reference(None, "tor-a", "password");
    let stolen = reference(
        Some("kube-system"),
        "bootstrap-token-abcdef",
        "token-secret",
    );
    let absent = reference(Some(NAMESPACE), "tor-b", "password");
    passwords.track([&tor_a, &stolen, &absent]).await;
    assert_eq!(passwords.cached(), ["tor-a", "tor-b"]);
    assert_eq!(passwords.password(&tor_a).unwrap(), "s3cret");
    let refused = passwords.password(&stolen).unwrap_err().to_string();
    assert!(
        refused.contains("read from namespace baremetal-ccm-bgp only"),
        "{refused}"
    );
    assert!(
        refused.contains("kube-system/bootstrap-token-abcdef"),
        "{refused}"
    );
    assert_eq!(
        passwords.password(&absent).unwrap_err().to_string(),
        "password Secret baremetal-ccm-bgp/tor-b does not exist"
    );
    let missing_key = reference(None, "tor-a", "other");
    assert!(
        passwords
            .password(&missing_key)
            .unwrap_err()
            .to_string()
            .contains("has no key \"other\"")
    );

    // A changed, a created and a deleted Secret are seen through the watches.
    changed.borrow_and_update();
    let rotate = serde_json::json!({"stringData": {"password": "n3w"}});
    passwords_ns
        .patch("tor-a", &PatchParams::default(), &Patch::Merge(&rotate))
        .await
        .unwrap();
    create_secret(
        &admin,
        NAMESPACE,
        "tor-b",
        serde_json::json!({"password": "b"}),
    )
    .await;
    let seen = rig::process::wait_for(WAIT, || async {
        (passwords.password(&tor_a).ok().as_deref() == Some("n3w")
            && passwords.password(&absent).ok().as_deref() == Some("b"))
        .then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "{:?} {:?}",
        passwords.password(&tor_a),
        passwords.password(&absent)
    );
    passwords_ns
        .delete("tor-a", &DeleteParams::default())
        .await
        .unwrap();
    let gone = rig::process::wait_for(WAIT, || async {
        (passwords
            .password(&tor_a)
            .is_err_and(|e| e.to_string().contains("does not exist")))
        .then_some(())
    })
    .await;
    assert!(gone.is_some());
    assert!(
        changed.has_changed().unwrap(),
        "each change of a watched Secret is signalled"
    );

    // No reference left: no watch, nothing cached.
    passwords.track([&absent]).await;
    assert_eq!(passwords.cached(), ["tor-b"]);
    passwords.track([]).await;
    assert!(passwords.cached().is_empty());
    assert!(
        passwords
            .password(&absent)
            .unwrap_err()
            .to_string()
            .contains("not read yet")
    );
}
