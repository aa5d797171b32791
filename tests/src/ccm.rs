//! The product under test as processes: the `baremetal-ccm` binary of this build launched as
//! a controller, a replica or a speaker against a [`crate::cluster::TestCluster`] with the
//! project's CRDs, and what tests read back from it (its admin server, its Lease, the
//! apiserver's audit log of its writes).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::cluster::{ClusterOptions, TestCluster, free_port};
use crate::process::{Process, wait_for};

/// How long a test waits for the controller to act on a change.
pub const WAIT: Duration = Duration::from_secs(30);

/// The `baremetal-ccm` binary of this build: `BAREMETAL_CCM_BINARY` if set, else where Cargo
/// says when it runs an integration test or benchmark of the `baremetal-ccm` package
/// (`CARGO_BIN_EXE_baremetal-ccm`), else next to the running test's `deps/` directory
/// (`target/<profile>/baremetal-ccm`, where Cargo puts it).
pub fn binary() -> PathBuf {
    for variable in ["BAREMETAL_CCM_BINARY", "CARGO_BIN_EXE_baremetal-ccm"] {
        if let Some(path) = std::env::var_os(variable) {
            return PathBuf::from(path);
        }
    }
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let dir = exe.parent().expect("an executable lives in a directory");
    let profile = if dir.ends_with("deps") {
        dir.parent().expect("deps/ lives in the profile directory")
    } else {
        dir
    };
    let binary = profile.join("baremetal-ccm");
    assert!(
        binary.is_file(),
        "{} does not exist: the binary is built for the baremetal-ccm package's tests and benches \
         (or set BAREMETAL_CCM_BINARY)",
        binary.display()
    );
    binary
}

/// One run of the binary: `baremetal-ccm <subcommand> --kubeconfig=… --admin-bind-address=…`
/// with a free admin port, its metrics listener off unless the arguments choose an address.
#[derive(Debug, Clone)]
pub struct Launch {
    subcommand: String,
    name: String,
    kubeconfig: PathBuf,
    log_filter: String,
    args: Vec<String>,
}

impl Launch {
    /// `subcommand` with no identity flag (the arguments carry it); `name` labels its log.
    pub fn new(subcommand: &str, kubeconfig: &Path, name: &str) -> Self {
        Self {
            subcommand: subcommand.to_owned(),
            name: name.to_owned(),
            kubeconfig: kubeconfig.to_owned(),
            log_filter: "info,baremetal_ccm=debug".to_owned(),
            args: Vec::new(),
        }
    }

    /// `baremetal-ccm controller --identity=<identity>`.
    pub fn controller(kubeconfig: &Path, identity: &str) -> Self {
        Self::new("controller", kubeconfig, identity).args(&[&format!("--identity={identity}")])
    }

    /// `baremetal-ccm speaker --node-name=<node>`.
    pub fn speaker(kubeconfig: &Path, node: &str) -> Self {
        Self::new("speaker", kubeconfig, node).args(&[&format!("--node-name={node}")])
    }

    /// The `--log-filter` (default `info,baremetal_ccm=debug`).
    pub fn log_filter(mut self, filter: &str) -> Self {
        filter.clone_into(&mut self.log_filter);
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Where [`Launch::spawn`] writes the process's output.
    fn log_path(&self) -> PathBuf {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!(
            "bmccm-{}-{}-{}-{n}.log",
            self.subcommand,
            self.name,
            std::process::id()
        ))
    }

    /// Starts the process; returns it and its admin server's address.
    pub fn spawn(self) -> (Process, SocketAddr) {
        let port = free_port().expect("a free port");
        let mut cmd = Command::new(binary());
        cmd.arg(&self.subcommand)
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!("--admin-bind-address=127.0.0.1:{port}"))
            .arg(format!("--log-filter={}", self.log_filter))
            .args(&self.args);
        // Every replica would take the same default port (the security tests test the
        // listener): off unless the test chose an address.
        if !(self.args.iter()).any(|a| a.starts_with("--metrics-bind-address")) {
            cmd.arg("--metrics-bind-address=off");
        }
        let log = self.log_path();
        let process = Process::spawn(&self.name, cmd, &log)
            .unwrap_or_else(|e| panic!("{} {} starts: {e}", self.subcommand, self.name));
        (process, SocketAddr::from(([127, 0, 0, 1], port)))
    }
}

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
) -> (Process, SocketAddr) {
    let mut args = vec!["--controllers=service-lb"];
    args.extend_from_slice(extra);
    start_ccm(kubeconfig, identity, &args)
}

/// Starts `baremetal-ccm controller` with exactly `args` after the connection flags; returns
/// the process and its admin server's address.
pub fn start_ccm(kubeconfig: &Path, identity: &str, args: &[&str]) -> (Process, SocketAddr) {
    Launch::controller(kubeconfig, identity).args(args).spawn()
}

/// Starts `baremetal-ccm speaker --node-name=<node>` against `kubeconfig` with `args` after
/// the connection flags; its metrics listener is off unless `args` chooses an address.
pub fn start_speaker(kubeconfig: &Path, node: &str, args: &[&str]) -> Process {
    Launch::speaker(kubeconfig, node).args(args).spawn().0
}

/// Starts a controller replica running service-lb and the announcer, driving member's gobgpd
/// with member's address as router ID.
pub fn start_replica(
    cluster: &crate::cluster::TestCluster,
    fabric: &crate::fabric::Fabric,
    identity: &str,
    member: u8,
) -> crate::process::Process {
    start_replica_as(&cluster.admin_kubeconfig(), fabric, identity, member)
}

/// [`start_replica`] with the credentials of `kubeconfig`.
pub fn start_replica_as(
    kubeconfig: &Path,
    fabric: &crate::fabric::Fabric,
    identity: &str,
    member: u8,
) -> crate::process::Process {
    let endpoint = format!("--gobgp-endpoint={}", fabric.endpoint(member));
    let router_id = format!("--bgp-router-id={}", crate::fabric::v4(member));
    let args = [
        "--controllers=service-lb,bgp-announcer",
        &endpoint,
        &router_id,
    ];
    start_ccm(kubeconfig, identity, &args).0
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

/// `GET path` on a local HTTP/1.1 server; the body, or `None` if it cannot be reached.
pub async fn http_get(address: SocketAddr, path: &str) -> Option<String> {
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

/// Starts a cluster with the project CRDs installed.
pub async fn cluster(audit: bool) -> TestCluster {
    cluster_with(ClusterOptions {
        audit_writes: audit,
        ..ClusterOptions::default()
    })
    .await
}

/// [`cluster`] with `options`.
pub async fn cluster_with(options: ClusterOptions) -> TestCluster {
    crate::init_test_logging();
    let cluster = TestCluster::start_with(options)
        .await
        .expect("cluster starts");
    cluster.install_project_crds().await.expect("CRDs install");
    cluster
}

/// A cluster with the project CRDs whose audit log records every request
/// ([`crate::cluster::TestCluster::audited_requests`]), and the shipped RBAC applied.
pub async fn audited_cluster_with_shipped_rbac() -> TestCluster {
    let cluster = cluster_with(ClusterOptions {
        audit_requests: true,
        ..ClusterOptions::default()
    })
    .await;
    crate::manifests::apply_shipped_rbac(&cluster.client()).await;
    cluster
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

/// The binary's `/metrics`, scraped as Prometheus would (HTTPS, a bearer token the API server
/// authorizes): the counters that show a controller had its chance to act, where "nothing
/// happened" is the thing to prove.
#[derive(Debug, Clone)]
pub struct Metrics {
    address: SocketAddr,
    token: String,
}

impl Metrics {
    /// A metrics listener on a free loopback port, read with the bearer token of `kubeconfig`
    /// (the admin one is allowed everything); pass [`Metrics::flag`] to the process.
    pub fn on_free_port(kubeconfig: &Path) -> Self {
        let port = free_port().expect("a free port");
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            token: crate::rbac::token_of(kubeconfig),
        }
    }

    /// `--metrics-bind-address=<address>`.
    pub fn flag(&self) -> String {
        format!("--metrics-bind-address={}", self.address)
    }

    /// The sum of every series of `family` (e.g. `baremetal_ccm_node_lifecycle_errors_total`),
    /// 0 when it has none yet; waits for the listener to answer 200.
    pub async fn sum(&self, family: &str) -> f64 {
        family_sum(&self.text().await, family)
    }

    /// The value of one series, written as exposed (`family{label="value"}`), 0 when absent.
    pub async fn series(&self, series: &str) -> f64 {
        let text = self.text().await;
        (text.lines())
            .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .filter_map(|value| value.split_whitespace().next()?.parse::<f64>().ok())
            .sum::<f64>()
            + 0.0
    }

    /// The whole exposition; waits for the listener to answer 200.
    pub async fn text(&self) -> String {
        wait_for(WAIT, || async {
            let reply = crate::https::get(
                self.address,
                "/metrics",
                Some(&self.token),
                crate::https::Trust::AnyCertificate,
            )
            .await
            .ok()?;
            (reply.status == 200).then_some(reply.body)
        })
        .await
        .unwrap_or_else(|| panic!("no 200 from /metrics at {} within {WAIT:?}", self.address))
    }

    /// Waits until [`Metrics::sum`] of `family` is at least `at_least`; returns it.
    pub async fn wait_sum(&self, family: &str, at_least: f64) -> f64 {
        let reached = wait_for(WAIT, || async {
            let sum = self.sum(family).await;
            (sum >= at_least).then_some(sum)
        })
        .await;
        match reached {
            Some(sum) => sum,
            None => panic!(
                "{family} stayed at {} within {WAIT:?}, below {at_least}",
                self.sum(family).await
            ),
        }
    }
}

/// The sum of the samples of `family` in a Prometheus text exposition.
fn family_sum(text: &str, family: &str) -> f64 {
    (text.lines())
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(family)?;
            let value = match rest.chars().next()? {
                '{' => rest.rsplit_once('}')?.1,
                ' ' => rest,
                _ => return None,
            };
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum::<f64>()
        // An empty sum of floats is -0.0.
        + 0.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_family_sums_its_series_and_not_its_longer_named_neighbours() {
        let text = "# HELP x_errors Failed.\n# TYPE x_errors counter\n\
x_errors_total{reason=\"a\"} 2\nx_errors_total{reason=\"b\"} 3\nx_errors_total_other 7\nx_errors_total 1\n";
        assert!((super::family_sum(text, "x_errors_total") - 6.0).abs() < f64::EPSILON);
        assert!(super::family_sum(text, "y_total").abs() < f64::EPSILON);
    }
}
