//! Layer-2 speakers in network namespaces: each a real `baremetal-ccm speaker` process inside
//! its node's namespace (its raw sockets and gossip there), reaching the test's API server
//! through socat — on the namespace's loopback, through a unix socket, to the API server on the
//! host's loopback — so that no test traffic leaves loopback or the test's namespaces.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::cluster::TestCluster;
use crate::netns::Host;
use crate::process::Process;

/// A TCP port forwarded between the host's loopback and a namespace's, through socat and a
/// unix socket (the file system is shared; the networks are not).
#[derive(Debug)]
pub struct Forward {
    _inside: Process,
    _outside: Process,
    _dir: tempfile::TempDir,
}

/// Forwards `cluster`'s API server into `host`'s namespace: reachable at the same
/// `127.0.0.1:PORT` there as on the host.
pub fn forward_api(cluster: &TestCluster, host: &Host) -> Forward {
    let port = (cluster.url().rsplit(':').next())
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .expect("the API server URL ends in its port");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let socket = dir.path().join("fwd.sock");
    let log = |side: &str| dir.path().join(format!("socat-{side}.log"));
    let mut outside = Command::new("socat");
    outside.args([
        &format!("UNIX-LISTEN:{},fork", socket.display()),
        &format!("TCP:127.0.0.1:{port}"),
    ]);
    let outside = Process::spawn("socat-out", outside, &log("out"))
        .expect("socat starts (Debian package socat)");
    wait_for_path(&socket);
    let mut inside = host.command("socat");
    inside.args([
        &format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr"),
        &format!("UNIX-CONNECT:{}", socket.display()),
    ]);
    let inside = Process::spawn("socat-in", inside, &log("in")).expect("socat starts");
    wait_listening(Some(host), port);
    Forward {
        _inside: inside,
        _outside: outside,
        _dir: dir,
    }
}

/// The other way: `127.0.0.1:port` inside `host`'s namespace (a listener of a process there,
/// such as a speaker's metrics listener), reachable at the same address on the host.
pub fn forward_from(host: &Host, port: u16) -> Forward {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let socket = dir.path().join("fwd.sock");
    let log = |side: &str| dir.path().join(format!("socat-{side}.log"));
    let mut inside = host.command("socat");
    inside.args([
        &format!("UNIX-LISTEN:{},fork", socket.display()),
        &format!("TCP:127.0.0.1:{port}"),
    ]);
    let inside = Process::spawn("socat-in", inside, &log("in"))
        .expect("socat starts (Debian package socat)");
    wait_for_path(&socket);
    let mut outside = Command::new("socat");
    outside.args([
        &format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr"),
        &format!("UNIX-CONNECT:{}", socket.display()),
    ]);
    let outside = Process::spawn("socat-out", outside, &log("out")).expect("socat starts");
    wait_listening(None, port);
    Forward {
        _inside: inside,
        _outside: outside,
        _dir: dir,
    }
}

fn wait_for_path(path: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits until something listens on TCP `port` in `host`'s namespace (the host's, for `None`).
fn wait_listening(host: Option<&Host>, port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let filter = format!("sport = :{port}");
    loop {
        let out = match host {
            Some(host) => host
                .run_capture(["ss", "-ltnH", &filter])
                .unwrap_or_default(),
            None => (Command::new("ss").args(["-ltnH", &filter]).output())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default(),
        };
        if !out.trim().is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "socat never listened on port {port} in {}",
            host.map_or("the host", Host::name)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A gossip key file for the speakers (32 bytes).
pub fn gossip_key() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("gossip.key");
    std::fs::write(&path, b"0123456789abcdef0123456789abcdef").expect("writing the key");
    (dir, path)
}

/// Starts `baremetal-ccm speaker --node-name=<node>` inside `host`'s namespace with layer 2
/// on (`key`), against `cluster` (forward the API server there first: [`forward_api`]).
pub fn start_l2_speaker(cluster: &TestCluster, host: &Host, node: &str, key: &Path) -> Process {
    start_l2_speaker_as(&cluster.admin_kubeconfig(), host, node, key, &[])
}

/// [`start_l2_speaker`] with the credentials of `kubeconfig` and `extra` arguments; the
/// metrics listener is off unless `extra` chooses an address (inside the namespace:
/// [`forward_from`] reaches it).
pub fn start_l2_speaker_as(
    kubeconfig: &Path,
    host: &Host,
    node: &str,
    key: &Path,
    extra: &[&str],
) -> Process {
    let log = std::env::temp_dir().join(format!(
        "bmccm-speaker-l2-{node}-{}.log",
        std::process::id()
    ));
    let mut cmd = host.command(crate::ccm::binary());
    cmd.args([
        "speaker",
        &format!("--kubeconfig={}", kubeconfig.display()),
        &format!("--node-name={node}"),
        &format!("--l2-gossip-key-file={}", key.display()),
        "--admin-bind-address=127.0.0.1:10262",
        "--log-filter=info,baremetal_ccm=debug",
    ]);
    if !extra
        .iter()
        .any(|a| a.starts_with("--metrics-bind-address"))
    {
        cmd.arg("--metrics-bind-address=off");
    }
    cmd.args(extra);
    Process::spawn(&format!("speaker-{node}"), cmd, &log)
        .unwrap_or_else(|e| panic!("speaker {node} starts: {e}"))
}

/// Creates a Node `name` with `address` as its InternalIP.
pub async fn create_node(client: &Client, name: &str, address: IpAddr) {
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".to_owned(),
                address: address.to_string(),
            }]),
            ..NodeStatus::default()
        }),
        ..Node::default()
    };
    (Api::<Node>::all(client.clone()).create(&PostParams::default(), &node))
        .await
        .unwrap_or_else(|e| panic!("creating node {name}: {e}"));
}
