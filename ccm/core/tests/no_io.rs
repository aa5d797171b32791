//! The core has no I/O: its normal dependency tree holds no Kubernetes client or runtime, no
//! async runtime and no network crate. Checked on the tree cargo resolves for this crate alone
//! (`cargo tree -p baremetal-ccm-core -e normal`), so a dependency that pulls one in fails here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeSet;

/// Crates that do I/O (or exist to): clients, runtimes, servers, sockets; and the GoBGP wire
/// format, which only the binary's adapter may see.
const FORBIDDEN: [&str; 17] = [
    "kube-client",
    "kube-runtime",
    "tokio",
    "tokio-util",
    "mio",
    "socket2",
    "tonic",
    "hyper",
    "hyper-util",
    "h2",
    "tower",
    "reqwest",
    "rustls",
    "tracing-subscriber",
    "prost",
    "prost-types",
    "gobgp-api-proto",
];

fn dependency_tree() -> BTreeSet<String> {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            "baremetal-ccm-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (String::from_utf8(output.stdout).unwrap().lines())
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_core_depends_on_no_client_runtime_or_network_crate() {
    let tree = dependency_tree();
    assert!(tree.contains("baremetal-ccm-core"), "{tree:?}");
    assert!(tree.contains("kube-core"), "kube's types are in: {tree:?}");
    let found: Vec<&str> = FORBIDDEN
        .iter()
        .copied()
        .filter(|name| tree.contains(*name))
        .collect();
    assert!(
        found.is_empty(),
        "the core must have no I/O, yet depends on {found:?}"
    );
}
