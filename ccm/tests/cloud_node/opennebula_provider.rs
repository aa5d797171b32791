//! The OpenNebula instance provider against a fake OpenNebula XML-RPC server that answers in
//! OpenNebula's documented shape: node matching, addresses and labels, machine states, every
//! kind of failure (never "gone"), caching and rate limiting, credentials and TLS.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use baremetal_ccm::providers::{InstanceProvider, ProviderError};
use baremetal_ccm::providers::{OpenNebula, OpenNebulaConfig as Config, OpenNebulaError};
use baremetal_ccm_core::instance::{AddressType, InstanceState, NodeAddress, NodeQuery};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use rig::cluster::TestCluster;
use rig::opennebula::{
    FakeNic, FakeOpenNebula, FakeVm, Fault, VM_INFO, VM_POOL_INFO_EXTENDED, state,
};

const SESSION: &str = "oneadmin:opennebula-secret";

/// A provider for `server` with credentials `session` (written to a file with a trailing
/// newline, as `ONE_AUTH` files are) and the extra YAML settings.
async fn connect_as(
    server: &FakeOpenNebula,
    session: &str,
    extra: &str,
) -> (Result<OpenNebula, OpenNebulaError>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("one_auth");
    std::fs::write(&path, format!("{session}\n")).expect("credentials written");
    let yaml = format!(
        "endpoint: {}\ncredentials: {{file: {}}}\n{extra}",
        server.endpoint(),
        path.display()
    );
    let config: Config = serde_yaml::from_str(&yaml).expect("the configuration parses");
    (OpenNebula::connect(&config, None).await, dir)
}

async fn connect(server: &FakeOpenNebula, extra: &str) -> (OpenNebula, tempfile::TempDir) {
    let (provider, dir) = connect_as(server, SESSION, extra).await;
    (provider.expect("the provider connects"), dir)
}

async fn server() -> FakeOpenNebula {
    FakeOpenNebula::start(SESSION)
        .await
        .expect("the fake server starts")
}

fn named(name: &str) -> NodeQuery {
    NodeQuery {
        name: name.to_owned(),
        ..NodeQuery::default()
    }
}

fn with_provider_id(name: &str, id: u32) -> NodeQuery {
    NodeQuery {
        provider_id: Some(format!("one://{id}")),
        ..named(name)
    }
}

/// The whole error chain, for assertions on causes.
fn chain(error: &ProviderError) -> String {
    baremetal_ccm::error_chain(error)
}

#[tokio::test]
async fn a_running_vm_gives_its_ipv4_and_ipv6_addresses_labels_and_provider_id() {
    let server = server().await;
    server.put_vm(
        FakeVm::running(42, "worker-1")
            .with_nic(
                FakeNic::ipv4(0, "private", 0, "192.0.2.10")
                    .with_ipv6("2001:db8::10", "fe80::400:c0ff:fe00:20a"),
            )
            .with_nic(FakeNic::ipv4(1, "public", 3, "198.51.100.7"))
            .with_nic(FakeNic::ipv4(2, "private", 0, "192.0.2.11").as_alias_of(0))
            .with_user_attribute("INSTANCE_TYPE", "m1.large")
            .on_host("kvm-b", 100),
    );
    let (provider, _dir) = connect(&server, "addresses: {externalNetworks: [public]}\n").await;

    let metadata = provider
        .metadata(&named("worker-1"))
        .await
        .expect("metadata of a running VM");
    assert_eq!(metadata.provider_id, "one://42");
    assert_eq!(
        metadata.addresses,
        [
            NodeAddress::new(AddressType::InternalIP, "192.0.2.10"),
            NodeAddress::new(AddressType::ExternalIP, "198.51.100.7"),
            NodeAddress::new(AddressType::InternalIP, "192.0.2.11"),
            NodeAddress::new(AddressType::InternalIP, "2001:db8::10"),
        ],
        "IPv4 first, the alias included, link-local left out"
    );
    assert_eq!(metadata.zone.as_deref(), Some("100"), "the host's cluster");
    assert_eq!(metadata.instance_type.as_deref(), Some("m1.large"));
    assert_eq!(metadata.region, None);
    assert_eq!(metadata.labels, BTreeMap::new());
    assert_eq!(
        provider
            .state(&with_provider_id("worker-1", 42))
            .await
            .expect("state"),
        InstanceState::Running
    );
    assert_eq!(server.calls(VM_POOL_INFO_EXTENDED), 1);
    assert_eq!(
        server.calls(VM_INFO),
        0,
        "a VM in the pool needs no direct call"
    );
}

#[tokio::test]
async fn a_node_without_provider_id_is_found_by_its_system_uuid() {
    let server = server().await;
    server.put_vm(FakeVm::running(16, "other"));
    server.put_vm(
        FakeVm::running(17, "vm-17")
            .with_uuid("6F1C2D1E-0A5B-4F4E-9B59-3D2C1B0A9F8E")
            .with_nic(FakeNic::ipv4(0, "private", 0, "192.0.2.17")),
    );
    let (provider, _dir) = connect(&server, "").await;
    let node = NodeQuery {
        system_uuid: Some("6f1c2d1e-0a5b-4f4e-9b59-3d2c1b0a9f8e".into()),
        ..named("ip-192-0-2-17")
    };
    let metadata = provider.metadata(&node).await.expect("found by UUID");
    assert_eq!(metadata.provider_id, "one://17");
}

#[tokio::test]
async fn poweroff_and_undeployed_vms_are_shut_down_and_stopped_ones_still_exist() {
    let server = server().await;
    server.put_vm(FakeVm::running(1, "off").in_state(state::POWEROFF));
    server.put_vm(FakeVm::running(2, "undeployed").in_state(state::UNDEPLOYED));
    server.put_vm(FakeVm::running(3, "stopped").in_state(state::STOPPED));
    let (provider, _dir) = connect(&server, "").await;
    let cases = [
        (with_provider_id("off", 1), InstanceState::ShutDown),
        (named("undeployed"), InstanceState::ShutDown),
        (with_provider_id("stopped", 3), InstanceState::Running),
    ];
    for (node, expected) in cases {
        assert_eq!(
            provider.state(&node).await.expect("state"),
            expected,
            "{node:?}"
        );
    }
}

#[tokio::test]
async fn a_done_vm_is_gone_confirmed_by_a_direct_vm_info() {
    let server = server().await;
    server.put_vm(FakeVm::running(6, "finished").in_state(state::DONE));
    let (provider, _dir) = connect(&server, "").await;
    assert_eq!(
        provider
            .state(&with_provider_id("finished", 6))
            .await
            .expect("state"),
        InstanceState::Gone
    );
    assert_eq!(server.calls(VM_INFO), 1, "the pool alone never says gone");
    let error = provider
        .metadata(&with_provider_id("finished", 6))
        .await
        .expect_err("a DONE VM has no metadata");
    assert!(
        matches!(&error, ProviderError::NotFound { detail, .. } if detail.contains("DONE")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_vm_that_does_not_exist_is_gone_by_provider_id_but_not_found_by_name() {
    let server = server().await;
    server.put_vm(FakeVm::running(1, "worker-1"));
    let (provider, _dir) = connect(&server, "").await;
    assert_eq!(
        provider
            .state(&with_provider_id("ghost", 99))
            .await
            .expect("state"),
        InstanceState::Gone
    );
    assert_eq!(server.calls(VM_INFO), 1);
    let error = provider
        .state(&named("ghost"))
        .await
        .expect_err("an unmatched node is an error, never gone");
    assert!(matches!(error, ProviderError::NotFound { .. }), "{error:?}");
    assert!(error.to_string().contains("ghost"), "{error}");
}

#[tokio::test]
async fn a_vm_newer_than_the_cached_pool_is_found_by_provider_id() {
    let server = server().await;
    server.put_vm(FakeVm::running(1, "worker-1"));
    let (provider, _dir) = connect(&server, "").await;
    provider.metadata(&named("worker-1")).await.expect("cached");
    server.put_vm(FakeVm::running(2, "worker-2").with_nic(FakeNic::ipv4(0, "n", 0, "192.0.2.2")));
    let metadata = provider
        .metadata(&with_provider_id("worker-2", 2))
        .await
        .expect("found through one.vm.info");
    assert_eq!(metadata.addresses[0].address, "192.0.2.2");
    assert_eq!(server.calls(VM_POOL_INFO_EXTENDED), 1);
    assert_eq!(server.calls(VM_INFO), 1);
}

#[tokio::test]
async fn refused_credentials_are_unauthorized_never_gone() {
    let server = server().await;
    server.put_vm(FakeVm::running(1, "worker-1"));
    let (provider, _dir) = connect_as(&server, "oneadmin:wrong", "").await;
    let provider = provider.expect("connecting makes no call");
    let error = provider
        .state(&with_provider_id("worker-1", 1))
        .await
        .expect_err("refused");
    assert!(
        matches!(error, ProviderError::Unauthorized { .. }),
        "{error:?}"
    );
    assert!(
        chain(&error).contains("couldn't be authenticated"),
        "{}",
        chain(&error)
    );
    assert!(!chain(&error).contains("wrong"), "no credentials in errors");
    let error = provider
        .metadata(&named("worker-1"))
        .await
        .expect_err("refused");
    assert!(
        matches!(error, ProviderError::Unauthorized { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_slower_than_the_timeout_is_unavailable_never_gone() {
    let server = server().await;
    server.put_vm(FakeVm::running(1, "worker-1"));
    server.set_fault(Some(Fault::Delay(Duration::from_secs(30))));
    let (provider, _dir) = connect(&server, "timeout: 300ms\n").await;
    let started = Instant::now();
    let error = provider
        .state(&with_provider_id("worker-1", 1))
        .await
        .expect_err("timed out");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the timeout applied"
    );
    assert!(
        matches!(error, ProviderError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert!(chain(&error).contains("timed out"), "{}", chain(&error));
}

#[tokio::test]
async fn a_failing_vm_info_never_turns_a_vm_missing_from_the_pool_into_gone() {
    let server = server().await;
    server.put_vm(FakeVm::running(1, "worker-1"));
    let (provider, _dir) = connect(&server, "timeout: 300ms\nminInterval: 0s\n").await;
    let faults = [
        (Fault::Delay(Duration::from_secs(30)), "unavailable"),
        (Fault::Http500, "unavailable"),
        (Fault::MalformedXml, "malformed"),
        (Fault::XmlRpcFault, "malformed"),
    ];
    for (fault, class) in faults {
        server.set_method_fault(VM_INFO, Some(fault));
        let error = provider
            .state(&with_provider_id("ghost", 99))
            .await
            .expect_err("no definite answer");
        assert_eq!(error.class(), class, "{fault:?}: {error:?}");
    }
    server.set_method_fault(VM_INFO, None);
    assert_eq!(
        provider
            .state(&with_provider_id("ghost", 99))
            .await
            .expect("definite"),
        InstanceState::Gone
    );
    assert_eq!(
        server.calls(VM_POOL_INFO_EXTENDED),
        1,
        "the pool itself was fine"
    );
}

#[tokio::test]
async fn malformed_xml_and_xml_rpc_faults_are_malformed_never_gone() {
    let server = server().await;
    server.put_vm(FakeVm::running(1, "worker-1"));
    let (provider, _dir) = connect(&server, "cacheTtl: 0s\nminInterval: 0s\n").await;
    for fault in [Fault::MalformedXml, Fault::XmlRpcFault] {
        server.set_fault(Some(fault));
        let error = provider
            .state(&with_provider_id("worker-1", 1))
            .await
            .expect_err("unreadable");
        assert!(
            matches!(error, ProviderError::Malformed { .. }),
            "{fault:?}: {error:?}"
        );
    }
    server.set_fault(None);
    assert_eq!(
        provider
            .state(&with_provider_id("worker-1", 1))
            .await
            .expect("recovered"),
        InstanceState::Running
    );
}

#[tokio::test]
async fn an_http_500_is_unavailable() {
    let server = server().await;
    server.set_fault(Some(Fault::Http500));
    let (provider, _dir) = connect(&server, "").await;
    let error = provider
        .metadata(&named("worker-1"))
        .await
        .expect_err("HTTP 500");
    assert!(
        matches!(error, ProviderError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(chain(&error).contains("500"), "{}", chain(&error));
}

/// An answer over `maxResponseBytes` is refused before it is all read (it once took the
/// controller past its pod's memory limit), and it makes the provider unavailable, never
/// "gone".
#[tokio::test]
async fn an_oversized_answer_is_refused_and_unavailable() {
    let server = server().await;
    server.put_vm(FakeVm::running(3, "worker-1"));
    server.set_fault(Some(Fault::Oversized(4 * 1024 * 1024)));
    let (provider, _dir) = connect(&server, "maxResponseBytes: 1048576\n").await;
    let error = provider
        .metadata(&named("worker-1"))
        .await
        .expect_err("oversized");
    assert!(
        matches!(error, ProviderError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(
        chain(&error).contains("larger than 1048576 bytes (maxResponseBytes)"),
        "{}",
        chain(&error)
    );
    server.set_fault(None);
    assert!(provider.metadata(&named("worker-1")).await.is_ok());
}

#[tokio::test]
async fn duplicate_vm_names_are_ambiguous_until_the_provider_id_picks_one() {
    let server = server().await;
    server.put_vm(FakeVm::running(3, "worker-1"));
    server.put_vm(FakeVm::running(7, "worker-1"));
    server.put_vm(FakeVm::running(9, "worker-1").in_state(state::DONE));
    let (provider, _dir) = connect(&server, "").await;
    let error = provider
        .metadata(&named("worker-1"))
        .await
        .expect_err("ambiguous");
    assert!(
        matches!(&error, ProviderError::Ambiguous { candidates, .. }
            if candidates == "VM 3 (worker-1), VM 7 (worker-1)"),
        "{error:?}"
    );
    let metadata = provider
        .metadata(&with_provider_id("worker-1", 7))
        .await
        .expect("the providerID decides");
    assert_eq!(metadata.provider_id, "one://7");
}

#[tokio::test]
async fn a_foreign_provider_id_is_refused() {
    let server = server().await;
    let (provider, _dir) = connect(&server, "").await;
    let node = NodeQuery {
        provider_id: Some("baremetal://worker-1".into()),
        ..named("worker-1")
    };
    let error = provider.state(&node).await.expect_err("not ours");
    assert!(
        matches!(error, ProviderError::ForeignProviderId { .. }),
        "{error:?}"
    );
    assert_eq!(server.call_log().len(), 0, "no call for a foreign node");
}

#[tokio::test]
async fn the_pool_is_reused_within_its_ttl_and_fetched_again_after() {
    let server = server().await;
    server.put_vm(FakeVm::running(1, "worker-1").with_nic(FakeNic::ipv4(0, "n", 0, "192.0.2.1")));
    let (provider, _dir) = connect(&server, "cacheTtl: 500ms\nminInterval: 0s\n").await;
    let address = |metadata: baremetal_ccm_core::instance::InstanceMetadata| {
        metadata.addresses[0].address.clone()
    };
    let first = provider
        .metadata(&named("worker-1"))
        .await
        .expect("metadata");
    assert!(server.update_vm(1, |vm| vm.nics[0].ip = Some("192.0.2.99".into())));
    let cached = provider
        .metadata(&named("worker-1"))
        .await
        .expect("metadata");
    assert_eq!(
        (address(first), address(cached)),
        ("192.0.2.1".into(), "192.0.2.1".into())
    );
    assert_eq!(server.calls(VM_POOL_INFO_EXTENDED), 1);

    // Time passing is the point here: the bound is on the pool's age.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let fresh = provider
        .metadata(&named("worker-1"))
        .await
        .expect("metadata");
    assert_eq!(address(fresh), "192.0.2.99");
    assert_eq!(server.calls(VM_POOL_INFO_EXTENDED), 2);
}

#[tokio::test]
async fn concurrent_lookups_share_one_pool_fetch() {
    let server = server().await;
    for id in 0..10 {
        server.put_vm(FakeVm::running(id, &format!("worker-{id}")));
    }
    let (provider, _dir) = connect(&server, "").await;
    let nodes: Vec<_> = (0..10).map(|id| named(&format!("worker-{id}"))).collect();
    let results = futures::future::join_all(nodes.iter().map(|n| provider.metadata(n))).await;
    for (id, result) in results.into_iter().enumerate() {
        assert_eq!(result.expect("found").provider_id, format!("one://{id}"));
    }
    assert_eq!(server.calls(VM_POOL_INFO_EXTENDED), 1);
}

#[tokio::test]
async fn api_calls_are_spaced_by_the_minimum_interval() {
    let server = server().await;
    server.put_vm(FakeVm::running(1, "worker-1"));
    let (provider, _dir) = connect(&server, "cacheTtl: 0s\nminInterval: 300ms\n").await;
    for _ in 0..3 {
        provider
            .metadata(&named("worker-1"))
            .await
            .expect("metadata");
    }
    let log = server.call_log();
    assert_eq!(log.len(), 3, "{log:?}");
    for pair in log.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        // The server stamps arrival; allow a little scheduling jitter below the interval.
        assert!(gap >= Duration::from_millis(280), "calls {gap:?} apart");
    }
}

#[tokio::test]
async fn a_miss_refreshes_the_pool_at_most_once_per_minimum_interval() {
    let server = server().await;
    server.put_vm(FakeVm::running(1, "worker-1"));
    let (provider, _dir) = connect(&server, "cacheTtl: 30s\nminInterval: 300ms\n").await;
    provider
        .metadata(&named("worker-1"))
        .await
        .expect("metadata");
    server.put_vm(FakeVm::running(2, "late"));
    let error = provider
        .metadata(&named("late"))
        .await
        .expect_err("pool too young to refresh");
    assert!(matches!(error, ProviderError::NotFound { .. }), "{error:?}");
    assert_eq!(server.calls(VM_POOL_INFO_EXTENDED), 1);

    tokio::time::sleep(Duration::from_millis(350)).await;
    let metadata = provider
        .metadata(&named("late"))
        .await
        .expect("found after a refresh");
    assert_eq!(metadata.provider_id, "one://2");
    assert_eq!(server.calls(VM_POOL_INFO_EXTENDED), 2);
}

#[tokio::test]
async fn a_missing_credentials_file_fails_the_connection_naming_it() {
    let server = server().await;
    let yaml = format!(
        "endpoint: {}\ncredentials: {{file: /nonexistent/one_auth}}\n",
        server.endpoint()
    );
    let config: Config = serde_yaml::from_str(&yaml).expect("parses");
    let error = OpenNebula::connect(&config, None)
        .await
        .expect_err("no file");
    let mut text = error.to_string();
    if let Some(source) = std::error::Error::source(&error) {
        text.push_str(&source.to_string());
    }
    assert!(text.contains("/nonexistent/one_auth"), "{text}");
}

#[tokio::test]
async fn tls_with_the_ca_file_verifies_the_server() {
    let server = FakeOpenNebula::start_tls(SESSION)
        .await
        .expect("TLS server");
    server.put_vm(FakeVm::running(1, "worker-1"));
    let ca_dir = tempfile::tempdir().expect("a temporary directory");
    let ca = ca_dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem().expect("a TLS server has a CA")).expect("CA written");

    let (trusted, _dir) = connect(&server, &format!("tls: {{caFile: {}}}\n", ca.display())).await;
    trusted
        .metadata(&named("worker-1"))
        .await
        .expect("verified TLS works");

    let (insecure, _dir) = connect(&server, "tls: {insecureSkipVerify: true}\n").await;
    insecure
        .metadata(&named("worker-1"))
        .await
        .expect("unverified TLS works");

    // With the system's roots the test CA is unknown: no answer is trusted (on a machine
    // without system roots, connecting already fails).
    let (untrusted, _dir) = connect_as(&server, SESSION, "").await;
    if let Ok(untrusted) = untrusted {
        let error = untrusted
            .metadata(&named("worker-1"))
            .await
            .expect_err("an unknown CA is refused");
        assert!(
            matches!(error, ProviderError::Unavailable { .. }),
            "{error:?}"
        );
    }
    assert_eq!(
        server.calls(VM_POOL_INFO_EXTENDED),
        2,
        "the refused handshake made no call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_read_from_a_secret() {
    let cluster = TestCluster::start().await.expect("cluster starts");
    let client = cluster.client();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("opennebula".into()),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([(
            "credentials".into(),
            format!("{SESSION}\n"),
        )])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), "kube-system")
        .create(&PostParams::default(), &secret)
        .await
        .expect("Secret created");
    let server = server().await;
    server.put_vm(FakeVm::running(1, "worker-1"));
    let yaml = format!(
        "endpoint: {}\ncredentials:\n  secret: {{namespace: kube-system, name: opennebula}}\n",
        server.endpoint()
    );
    let config: Config = serde_yaml::from_str(&yaml).expect("parses");
    let provider = OpenNebula::connect(&config, Some(&client))
        .await
        .expect("the Secret is read");
    provider
        .metadata(&named("worker-1"))
        .await
        .expect("authenticated");

    let missing = format!(
        "endpoint: {}\ncredentials:\n  secret: {{namespace: kube-system, name: absent}}\n",
        server.endpoint()
    );
    let config: Config = serde_yaml::from_str(&missing).expect("parses");
    let error = OpenNebula::connect(&config, Some(&client))
        .await
        .expect_err("no such Secret");
    assert!(
        matches!(&error, OpenNebulaError::Credentials(_)),
        "{error:?}"
    );
}
