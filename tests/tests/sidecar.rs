//! The gobgpd sidecar's scripts (`gobgp-sidecar/`), run with the pinned gobgpd: the daemon
//! comes up with its API on the socket only, the health check follows it, and the image build
//! takes the GoBGP and busybox versions from `hack/versions.env` alone.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rig::process::{Process, wait_for};
use rig::tools::Tool;

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn healthy(socket: &std::path::Path) -> bool {
    Command::new(repo().join("gobgp-sidecar/healthcheck"))
        .env("GOBGP_SOCKET", socket)
        .env("GOBGP", Tool::Gobgp.path().unwrap())
        .status()
        .unwrap()
        .success()
}

#[tokio::test]
async fn the_entrypoint_serves_the_api_on_the_socket_and_the_health_check_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("gobgpd.sock");
    // A socket left over by a previous run of the container must not stop the start.
    std::fs::write(&socket, b"stale").unwrap();
    assert!(!healthy(&socket));
    let mut cmd = Command::new(repo().join("gobgp-sidecar/gobgpd-sidecar"));
    cmd.env("GOBGP_SOCKET", &socket)
        .env("GOBGPD", Tool::Gobgpd.path().unwrap())
        .env("GOBGP_LOG_LEVEL", "debug");
    let mut daemon = Process::spawn("sidecar", cmd, &dir.path().join("sidecar.log")).unwrap();
    let up = wait_for(Duration::from_secs(20), || async {
        healthy(&socket).then_some(())
    })
    .await;
    assert!(up.is_some(), "{}", daemon.log_tail(4000));
    // Group-writable, for the speaker's container (uid 0 without CAP_DAC_OVERRIDE, in the
    // sidecar's group: docs/security.md#layer-2); nobody else may connect.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o770, "socket mode {mode:o}");
    // No TCP API (gobgpd's default listens on :50051 on every interface).
    let tcp = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:50051".parse().unwrap(),
        Duration::from_millis(200),
    );
    assert!(tcp.is_err(), "gobgpd must not listen on TCP");
    let args = std::fs::read_to_string(format!("/proc/{}/cmdline", daemon.pid())).unwrap();
    assert!(args.contains("--pprof-disable"), "{args:?}");
    assert!(!args.contains("--graceful-restart"), "{args:?}");
    daemon.kill();
    assert!(!healthy(&socket), "a dead daemon is unhealthy");
}

#[test]
fn the_image_build_takes_the_pinned_versions_from_one_place() {
    let versions = std::fs::read_to_string(repo().join("hack/versions.env")).unwrap();
    let pinned = |name: &str| {
        (versions.lines())
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap()
            .trim()
            .to_owned()
    };
    let gobgp = pinned("GOBGP_VERSION");
    let busybox = pinned("BUSYBOX_STATIC_DEBIAN_VERSION");
    let printed = Command::new(repo().join("hack/image"))
        .arg("--tags")
        .output()
        .unwrap();
    assert!(printed.status.success());
    let tags = String::from_utf8(printed.stdout).unwrap();
    assert!(
        tags.lines()
            .any(|l| l == format!("localhost/baremetal-ccm-gobgpd:v{gobgp}")),
        "{tags}"
    );
    let containerfile =
        std::fs::read_to_string(repo().join("gobgp-sidecar/Containerfile")).unwrap();
    for arg in ["GOBGP_VERSION", "BUSYBOX_STATIC_DEBIAN_VERSION"] {
        assert!(
            containerfile
                .lines()
                .any(|l| l.trim() == format!("ARG {arg}")),
            "the Containerfile declares {arg} without a default"
        );
    }
    for version in [&gobgp, &busybox] {
        assert!(
            !containerfile.contains(version.as_str()),
            "{version} is not repeated in the Containerfile"
        );
    }
}
