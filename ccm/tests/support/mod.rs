//! Shared helpers of the ccm integration tests: the real binary against a real apiserver.

#![allow(
    dead_code,
    reason = "each test file uses a different subset of the helpers"
)]
#![allow(
    unreachable_pub,
    reason = "helpers shared by several test crates through `mod support`"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Service, ServicePort, ServiceSpec};
use kube::Client;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use rig::cluster::{TestCluster, free_port};
use rig::process::{Process, wait_for};

pub const WAIT: Duration = Duration::from_secs(30);

pub mod bgp;
pub mod invariants;
pub mod manifests;
pub mod nodes;
pub mod rbac;

/// Starts `baremetal-ccm controller --controllers=service-lb` against `kubeconfig` as a
/// separate process.
pub fn start_controller(kubeconfig: &Path, identity: &str, extra: &[&str]) -> Process {
    start_controller_with_admin(kubeconfig, identity, extra).0
}

/// [`start_controller`], also returning the admin server's address.
pub fn start_controller_with_admin(
    kubeconfig: &Path,
    identity: &str,
    extra: &[&str],
) -> (Process, std::net::SocketAddr) {
    let mut args = vec!["--controllers=service-lb"];
    args.extend_from_slice(extra);
    start_ccm(kubeconfig, identity, &args)
}

/// Starts `baremetal-ccm controller` with exactly `args` after the connection flags; returns
/// the process and its admin server's address.
pub fn start_ccm(
    kubeconfig: &Path,
    identity: &str,
    args: &[&str],
) -> (Process, std::net::SocketAddr) {
    let port = free_port().expect("a free port");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baremetal-ccm"));
    cmd.arg("controller")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--admin-bind-address=127.0.0.1:{port}"))
        .arg(format!("--identity={identity}"))
        .arg("--log-filter=info,baremetal_ccm=debug")
        .args(args);
    // Every replica would take the same default port (admin_metrics_auth.rs tests the
    // listener): off unless the test chose an address.
    if !args.iter().any(|a| a.starts_with("--metrics-bind-address")) {
        cmd.arg("--metrics-bind-address=off");
    }
    static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = std::env::temp_dir().join(format!(
        "bmccm-controller-{identity}-{}-{n}.log",
        std::process::id()
    ));
    let process = Process::spawn(identity, cmd, &log).expect("controller binary starts");
    (process, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

/// `GET path` on a local HTTP/1.1 server; the body, or `None` if it cannot be reached.
pub async fn http_get(address: std::net::SocketAddr, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

/// Waits until the pool's status satisfies `check`; returns it.
pub async fn wait_pool_status(
    client: &Client,
    name: &str,
    check: impl Fn(&baremetal_ccm::crd::ippool::IPPoolStatus) -> bool,
) -> baremetal_ccm::crd::ippool::IPPoolStatus {
    let api: Api<baremetal_ccm::crd::ippool::IPPool> = Api::all(client.clone());
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
pub fn pool_condition(
    status: &baremetal_ccm::crd::ippool::IPPoolStatus,
    type_: &str,
) -> Option<(String, String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Starts a cluster with the project CRDs installed.
pub async fn cluster(audit: bool) -> TestCluster {
    cluster_with(rig::cluster::ClusterOptions {
        audit_writes: audit,
        ..rig::cluster::ClusterOptions::default()
    })
    .await
}

/// [`cluster`] with `options`.
pub async fn cluster_with(options: rig::cluster::ClusterOptions) -> TestCluster {
    rig::init_test_logging();
    let cluster = TestCluster::start_with(options)
        .await
        .expect("cluster starts");
    cluster.install_project_crds().await.expect("CRDs install");
    cluster
}

/// Creates an IPPool from its spec as JSON.
pub async fn create_pool(client: &Client, name: &str, spec: serde_json::Value) {
    let api: Api<baremetal_ccm::crd::ippool::IPPool> = Api::all(client.clone());
    let pool = serde_json::from_value(serde_json::json!({
        "apiVersion": "baremetal-ccm.io/v1alpha1", "kind": "IPPool", "metadata": {"name": name}, "spec": spec,
    }))
    .expect("pool fixture is well-formed");
    api.create(&PostParams::default(), &pool)
        .await
        .expect("pool created");
}

/// A Service fixture builder.
#[derive(Debug, Clone)]
pub struct Svc {
    pub service: Service,
}

impl Svc {
    pub fn lb(namespace: &str, name: &str) -> Self {
        Self {
            service: Service {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some(namespace.into()),
                    ..ObjectMeta::default()
                },
                spec: Some(ServiceSpec {
                    type_: Some("LoadBalancer".into()),
                    ports: Some(vec![ServicePort {
                        port: 80,
                        protocol: Some("TCP".into()),
                        ..ServicePort::default()
                    }]),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            },
        }
    }

    pub fn annotate(mut self, key: &str, value: &str) -> Self {
        self.service
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(key.into(), value.into());
        self
    }

    pub fn port(mut self, protocol: &str, port: i32) -> Self {
        let spec = self.service.spec.as_mut().expect("fixture has a spec");
        spec.ports = Some(vec![ServicePort {
            port,
            protocol: Some(protocol.into()),
            ..ServicePort::default()
        }]);
        self
    }

    pub fn class(mut self, class: &str) -> Self {
        self.service
            .spec
            .as_mut()
            .expect("fixture has a spec")
            .load_balancer_class = Some(class.into());
        self
    }

    pub fn families(mut self, policy: &str, families: &[&str]) -> Self {
        let spec = self.service.spec.as_mut().expect("fixture has a spec");
        spec.ip_family_policy = Some(policy.into());
        spec.ip_families = Some(families.iter().map(|f| (*f).to_owned()).collect());
        self
    }

    pub fn load_balancer_ip(mut self, ip: &str) -> Self {
        self.service
            .spec
            .as_mut()
            .expect("fixture has a spec")
            .load_balancer_ip = Some(ip.into());
        self
    }

    pub async fn create(self, client: &Client) -> Service {
        let namespace = self
            .service
            .metadata
            .namespace
            .clone()
            .expect("fixture has a namespace");
        Api::<Service>::namespaced(client.clone(), &namespace)
            .create(&PostParams::default(), &self.service)
            .await
            .expect("service created")
    }
}

/// The `ip`s in the Service's status, with their `ipMode`.
pub fn ingress(service: &Service) -> Vec<(String, Option<String>)> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.ip.unwrap_or_default(), i.ip_mode))
        .collect()
}

/// Waits until the Service has `count` ingress addresses and returns them.
pub async fn wait_addresses(
    client: &Client,
    namespace: &str,
    name: &str,
    count: usize,
) -> Vec<String> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let found = wait_for(WAIT, || {
        let api = api.clone();
        async move {
            let service = api.get(name).await.ok()?;
            let ips = ingress(&service);
            (ips.len() == count).then(|| ips.into_iter().map(|(ip, _)| ip).collect::<Vec<_>>())
        }
    })
    .await;
    found.unwrap_or_else(|| {
        panic!("{namespace}/{name} did not get {count} address(es) within {WAIT:?}")
    })
}

/// Our condition of type `type_` on the Service: (status, reason, message).
pub fn condition(service: &Service, type_: &str) -> Option<(String, String, String)> {
    service
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until the Service carries condition `type_` with `status` and returns (reason, message).
pub async fn wait_condition(
    client: &Client,
    namespace: &str,
    name: &str,
    type_: &str,
    status: &str,
) -> (String, String) {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let found = wait_for(WAIT, || {
        let api = api.clone();
        async move {
            let service = api.get(name).await.ok()?;
            let (s, reason, message) = condition(&service, type_)?;
            (s == status).then_some((reason, message))
        }
    })
    .await;
    found.unwrap_or_else(|| {
        panic!("{namespace}/{name} did not get {type_}={status} within {WAIT:?}")
    })
}

/// Events our controllers published about one object, as (type, reason, message). Events
/// of other reporters are left out: the apiserver's own repair loops may report on a Service
/// (`ClusterIPNotAllocated` under load), and that is not ours to assert on.
pub async fn events_for(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    api.list(&params)
        .await
        .expect("events list")
        .items
        .into_iter()
        .filter(|e| {
            (e.reporting_component.as_deref()).is_some_and(|c| c.starts_with("baremetal-ccm.io/"))
        })
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits until an Event with `reason` exists for the object and returns its message.
pub async fn wait_event(client: &Client, namespace: &str, name: &str, reason: &str) -> String {
    let found = wait_for(WAIT, || async {
        events_for(client, namespace, name)
            .await
            .into_iter()
            .find(|(_, r, _)| r == reason)
            .map(|(_, _, m)| m)
    })
    .await;
    found.unwrap_or_else(|| panic!("no {reason} event for {namespace}/{name} within {WAIT:?}"))
}

/// Creates a namespace with labels.
pub async fn create_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) {
    let namespace = k8s_openapi::api::core::v1::Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ObjectMeta::default()
        },
        ..Default::default()
    };
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace created");
}

/// Writes in the audit log, Lease renewals (every 2 s while a controller leads) left out.
fn non_lease_writes(cluster: &TestCluster) -> usize {
    cluster.audited_writes().map_or(0, |writes| {
        (writes.iter())
            .filter(|w| w.object_ref.as_ref().is_none_or(|o| o.resource != "leases"))
            .count()
    })
}

/// Waits until the audit log, Lease renewals aside, has not grown for `quiet` (at most 60 s). Proving that nothing
/// is written needs an interval of observation; this bounds it by the log's own activity.
pub async fn settle(cluster: &TestCluster, quiet: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut count = non_lease_writes(cluster);
    let mut since = tokio::time::Instant::now();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = non_lease_writes(cluster);
        if now != count {
            count = now;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= quiet {
            return true;
        }
    }
    false
}

/// Kubeconfigs of ServiceAccounts `kube-system/<name>` bound to `cluster-admin`, one per
/// name: replicas whose writes the audit log tells apart.
pub async fn admin_accounts(cluster: &TestCluster, names: &[&str]) -> Vec<std::path::PathBuf> {
    let mut kubeconfigs = Vec::new();
    for name in names {
        let (kubeconfig, _) = cluster
            .service_account_client("kube-system", name)
            .await
            .expect("the ServiceAccount and its token are created");
        make_cluster_admin(&cluster.client(), "kube-system", name).await;
        kubeconfigs.push(kubeconfig);
    }
    kubeconfigs
}

/// The holder of the controller's Lease `kube-system/baremetal-ccm`, if any.
pub async fn lease_holder(client: &Client) -> Option<String> {
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-system");
    leases
        .get("baremetal-ccm")
        .await
        .ok()?
        .spec?
        .holder_identity
}

/// Waits up to `timeout` for `process` to exit; whether it did.
pub async fn wait_exit(process: &mut Process, timeout: Duration) -> bool {
    wait_for(timeout, || {
        let running = process.is_running();
        async move { (!running).then_some(()) }
    })
    .await
    .is_some()
}

/// Binds a ServiceAccount to `cluster-admin` (the controller's own RBAC arrives with its manifests).
pub async fn make_cluster_admin(client: &Client, namespace: &str, account: &str) {
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("{account}-admin")),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.into(),
            namespace: Some(namespace.into()),
            ..Subject::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding created");
}

/// Starts a controller replica running service-lb and the announcer, driving member's gobgpd
/// with member's address as router ID.
pub fn start_replica(
    cluster: &rig::cluster::TestCluster,
    fabric: &bgp::Fabric,
    identity: &str,
    member: u8,
) -> rig::process::Process {
    start_replica_as(&cluster.admin_kubeconfig(), fabric, identity, member)
}

/// [`start_replica`] with the credentials of `kubeconfig`.
pub fn start_replica_as(
    kubeconfig: &Path,
    fabric: &bgp::Fabric,
    identity: &str,
    member: u8,
) -> rig::process::Process {
    let endpoint = format!("--gobgp-endpoint={}", fabric.endpoint(member));
    let router_id = format!("--bgp-router-id={}", bgp::v4(member));
    let args = [
        "--controllers=service-lb,bgp-announcer",
        &endpoint,
        &router_id,
    ];
    start_ccm(kubeconfig, identity, &args).0
}

/// The bearer token of a kubeconfig the rig wrote.
pub fn token_of(kubeconfig: &Path) -> String {
    let text = std::fs::read_to_string(kubeconfig).expect("the kubeconfig exists");
    let config: serde_json::Value = serde_yaml::from_str(&text).expect("valid YAML");
    (config["users"][0]["user"]["token"].as_str())
        .expect("a token user")
        .to_owned()
}

/// Creates Secret `namespace/name` from `string_data` (a JSON object of keys to text).
pub async fn create_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    string_data: serde_json::Value,
) {
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": string_data,
    }))
    .expect("a Secret");
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|error| panic!("Secret {namespace}/{name}: {error}"));
}

/// A cluster with the project CRDs whose audit log records every request
/// ([`rig::cluster::TestCluster::audited_requests`]), and the shipped RBAC applied.
pub async fn audited_cluster_with_shipped_rbac() -> TestCluster {
    let cluster = cluster_with(rig::cluster::ClusterOptions {
        audit_requests: true,
        ..rig::cluster::ClusterOptions::default()
    })
    .await;
    manifests::apply_shipped_rbac(&cluster.client()).await;
    cluster
}

/// Starts `baremetal-ccm speaker --node-name=<node>` against `kubeconfig` with `args` after
/// the connection flags; its metrics listener is off unless `args` chooses an address.
pub fn start_speaker(kubeconfig: &Path, node: &str, args: &[&str]) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baremetal-ccm"));
    cmd.arg("speaker")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!(
            "--admin-bind-address=127.0.0.1:{}",
            free_port().expect("a free port")
        ))
        .arg(format!("--node-name={node}"))
        .arg("--log-filter=info,baremetal_ccm=debug")
        .args(args);
    if !args.iter().any(|a| a.starts_with("--metrics-bind-address")) {
        cmd.arg("--metrics-bind-address=off");
    }
    static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = std::env::temp_dir().join(format!(
        "bmccm-speaker-{node}-{}-{n}.log",
        std::process::id()
    ));
    Process::spawn(node, cmd, &log).expect("speaker binary starts")
}
