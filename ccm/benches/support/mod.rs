//! The benchmarks' client-side rate limit, the one thing they share that needs the product
//! crate (its `RateLimit`): the release binary launched with it (`rig::ccm::Launch`) and a
//! client with the same limit for the floors. Everything else is the rig's (`rig::measure`).

#![allow(
    dead_code,
    reason = "each benchmark uses a different subset of the helpers"
)]
#![allow(
    unreachable_pub,
    reason = "helpers shared by several bench crates through `mod support`"
)]

pub mod bgp;

use std::path::Path;

use baremetal_ccm::RateLimit;
use kube::Client;
use rig::ccm::Launch;
use rig::cluster::TestCluster;
use rig::process::Process;

/// The client-side rate limit both the controller and the floors run with.
pub const QPS: &str = "500";
pub const BURST: &str = "1000";

/// Starts `baremetal-ccm controller` (this build) with the benchmark's rate limit and `args`.
pub fn controller(
    kubeconfig: &Path,
    identity: &str,
    args: &[&str],
) -> (Process, std::net::SocketAddr) {
    // `BENCH_CONTROLLER_LOG=info` shows where a figure's time goes.
    let filter = std::env::var("BENCH_CONTROLLER_LOG").unwrap_or_else(|_| "warn".to_owned());
    let launch = Launch::controller(kubeconfig, identity)
        .log_filter(&filter)
        .args(&[
            &format!("--kube-api-qps={QPS}"),
            &format!("--kube-api-burst={BURST}"),
        ])
        .args(args);
    let (process, admin) = launch.spawn();
    if std::env::var_os("BENCH_CONTROLLER_LOG").is_some() {
        eprintln!("controller log: {}", process.log_path().display());
    }
    (process, admin)
}

/// A client with the controller's rate limit, for the floors.
pub async fn limited_client(cluster: &TestCluster) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(cluster.admin_kubeconfig())
        .expect("the rig writes a readable kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("the rig's kubeconfig is valid");
    let limit = RateLimit::new(
        QPS.parse().expect("QPS is a number"),
        BURST.parse().expect("BURST is a number"),
    );
    kube::client::ClientBuilder::try_from(config)
        .expect("a client builds from the rig's kubeconfig")
        .with_layer(&limit)
        .build()
}

/// A count from the environment variable `name` (`_` and `,` allowed as separators), or
/// `default` when it is not set.
pub fn count_from_env(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| {
        (v.replace(['_', ','], "").parse())
            .unwrap_or_else(|_| panic!("{name} must be a count, not {v:?}"))
    })
}
