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

/// The API server, reachable at the same `127.0.0.1:PORT` inside a namespace as on the host.
#[derive(Debug)]
pub struct ApiForward {
    _inside: Process,
    _outside: Process,
    _dir: tempfile::TempDir,
}

/// Forwards `cluster`'s API server into `host`'s namespace.
pub fn forward_api(cluster: &TestCluster, host: &Host) -> ApiForward {
    let port = (cluster.url().rsplit(':').next())
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .expect("the API server URL ends in its port");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let socket = dir.path().join("api.sock");
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
    wait_listening(host, port);
    ApiForward {
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

fn wait_listening(host: &Host, port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = host
            .run_capture(["ss", "-ltnH", "sport", &format!("= :{port}")])
            .unwrap_or_default();
        if !out.trim().is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "socat never listened in {}",
            host.name()
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
    let log = std::env::temp_dir().join(format!(
        "bmccm-speaker-l2-{node}-{}.log",
        std::process::id()
    ));
    let mut cmd = host.command(crate::ccm::binary());
    cmd.args([
        "speaker",
        &format!("--kubeconfig={}", cluster.admin_kubeconfig().display()),
        &format!("--node-name={node}"),
        &format!("--l2-gossip-key-file={}", key.display()),
        "--admin-bind-address=127.0.0.1:10262",
        "--metrics-bind-address=off",
        "--log-filter=info,baremetal_ccm=debug",
    ]);
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
