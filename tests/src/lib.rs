//! Test rig for baremetal-ccm: real components brought up per test and torn down on drop.
//!
//! - [`cluster`]: etcd + kube-apiserver on free loopback ports, admin and ServiceAccount clients,
//!   CRD installation; [`etcd`]: writes straight into its etcd (benchmarks' setup);
//! - [`netns`]: network-namespace topologies (hosts, bridges, veth links);
//! - [`gobgpd`]: a real gobgpd in a namespace, driven through `gobgp-api-proto`;
//! - [`bird`]: a real BIRD 2 in a namespace, with its routes parsed; [`bird_control`]: its
//!   control socket for fast polling;
//! - [`frr`]: a real FRR (zebra, bgpd, bfdd) in a namespace, queried through `vtysh` JSON;
//! - [`router`]: BIRD or FRR behind one configuration builder and one set of queries;
//! - [`opennebula`]: a fake OpenNebula XML-RPC endpoint serving VMs the test controls;
//! - [`proxy`]: a TCP proxy that can stall its connections (no RST, no FIN) and sever them;
//! - [`https`]: the small HTTP(S) server under it and [`webhook`]: an admission webhook that
//!   holds chosen users' requests (a slow webhook, a hanging call);
//! - [`capture`]: tcpdump on a namespace's interface, its ARP and Neighbor Discovery frames read
//!   back with kernel timestamps;
//! - [`kubelet`]: Nodes as kubelets in external cloud-provider mode register them;
//! - [`kwok`]: kwok keeping many such Nodes Ready (the scale rig's kubelets);
//! - [`metrics_source`]: the metrics (and their labels) the program registers, read from its
//!   source;
//! - [`tools`]: where the binaries are, at the versions pinned in `hack/versions.env`.
//!
//! And the product's side, for its integration tests and benchmarks (CRD types from
//! `baremetal-ccm-core`; nothing here depends on the binary crate):
//!
//! - [`ccm`]: the `baremetal-ccm` binary launched as controller, replica or speaker against a
//!   cluster with the project's CRDs; its admin server, Lease and audited writes;
//! - [`service`]: the Service fixture builder and the addresses, conditions and Events read back;
//! - [`pool`]: IPPools created and their status awaited;
//! - [`nodes`]: what the node controllers write to Nodes;
//! - [`fabric`]: a BGP fabric (one segment, a router, gobgpd hosts) with its Nodes and BGPPeers;
//! - [`measure`]: memory and latency figures for the benchmarks;
//! - [`invariants`]: address invariants checked at every event of a Service watch;
//! - [`manifests`]: the shipped manifests as objects; [`rbac`]: their grants against an audit
//!   log, and ServiceAccounts bound to `cluster-admin`.

pub mod bird;
pub mod bird_control;
pub mod capture;
pub mod ccm;
pub mod cluster;
pub mod etcd;
pub mod fabric;
pub mod frr;
pub mod gobgpd;
pub mod https;
pub mod invariants;
pub mod kubelet;
pub mod kwok;
pub mod l2;
pub mod manifests;
pub mod measure;
pub mod metallb;
pub mod metrics_source;
pub mod netns;
pub mod nodes;
pub mod opennebula;
pub mod pool;
pub mod process;
pub mod proxy;
pub mod rbac;
pub mod router;
pub mod service;
pub mod tools;
pub mod webhook;

/// Installs a `tracing` subscriber for test output once (RUST_LOG controls it).
pub fn init_test_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    });
}
