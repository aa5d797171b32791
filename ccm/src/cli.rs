//! Command-line interface: subcommands and their argument groups (clap derive).
//!
//! Every flag can also be set through an environment variable prefixed `BAREMETAL_CCM_`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Kubernetes cloud-controller-manager and LoadBalancer for bare metal and OpenNebula.
#[derive(Debug, Parser)]
#[command(name = "baremetal-ccm", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cloud controllers (node, node lifecycle, service load balancers) and central BGP announcing.
    Controller(ControllerArgs),
    /// Node-local agent: layer-2 responder and node-local BGP announcing.
    Speaker(SpeakerArgs),
    /// Print the CustomResourceDefinitions generated from the Rust types, as YAML.
    Crd,
    /// Convert another load balancer's configuration (writes nothing to the cluster).
    #[command(subcommand)]
    Migrate(MigrateCommand),
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Print MetalLB's configuration as IPPools and BGPPeers, with a report of what maps
    /// exactly, approximately or not at all; with `--dry-run`, what would become of every
    /// LoadBalancer Service.
    Metallb(MigrateMetallbArgs),
}

#[derive(Debug, Args)]
pub struct MigrateMetallbArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// MetalLB objects to convert: YAML or JSON files (several documents allowed) or
    /// directories of them.
    #[arg(short = 'f', long = "file")]
    pub files: Vec<PathBuf>,
    /// Read MetalLB's objects (and its legacy ConfigMap `config`) from the cluster.
    #[arg(long)]
    pub from_cluster: bool,
    /// The namespace MetalLB's objects are in.
    #[arg(long, default_value = "metallb-system")]
    pub metallb_namespace: String,
    /// The namespace our BGPPeers' password Secrets must be in.
    #[arg(long, default_value = "baremetal-ccm-bgp")]
    pub bgp_password_namespace: String,
    /// Convert what can be converted even when some configuration has no equivalent.
    #[arg(long)]
    pub skip_unsupported: bool,
    /// Instead of the objects, list every LoadBalancer Service of the cluster and what would
    /// become of it under the converted configuration (kept, pending or moved).
    #[arg(long)]
    pub dry_run: bool,
    /// For the dry run: the controller will run with `--lb-class-only`.
    #[arg(long)]
    pub lb_class_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Plain, env = "BAREMETAL_CCM_LOG_FORMAT", global = true)]
    pub log_format: LogFormat,
    /// Log filter in `tracing` EnvFilter syntax, e.g. `info` or `baremetal_ccm=debug,kube=info`.
    #[arg(long, default_value = "info", env = "BAREMETAL_CCM_LOG", global = true)]
    pub log_filter: String,
}

/// The controller's admin port: upstream cloud-controller-managers' 10258.
pub const CONTROLLER_ADMIN_PORT: u16 = 10258;
/// The speaker's admin port: free on kubeadm nodes, where kube-scheduler has 10259,
/// kube-controller-manager 10257, kube-proxy 10249/10256 and the kubelet 10248/10250, and
/// distinct from the controller's, since both run in the host network of control-plane nodes.
pub const SPEAKER_ADMIN_PORT: u16 = 10262;
/// The controller's metrics port (HTTPS, delegated authorization): next to the admin ports,
/// outside kubeadm's set, MetalLB's 7472/7473, Cilium's 9962-9965 and node-exporter's 9100.
pub const CONTROLLER_METRICS_PORT: u16 = 10263;
/// The speaker's metrics port, distinct from the controller's for the same reason as the
/// admin ports.
pub const SPEAKER_METRICS_PORT: u16 = 10264;

/// Where the metrics listener serves: an address, or nowhere (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsBind {
    Off,
    At(SocketAddr),
}

/// Parses `--metrics-bind-address`: `off`, or an address with its port.
pub(crate) fn parse_metrics_bind(text: &str) -> Result<MetricsBind, String> {
    if text == "off" {
        return Ok(MetricsBind::Off);
    }
    text.parse().map(MetricsBind::At).map_err(|error| {
        format!(
            "{text:?} is neither `off` nor an address with a port, e.g. 0.0.0.0:10263 ({error})"
        )
    })
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Address of the admin server: /healthz, /readyz and /metrics in plain HTTP, without
    /// authentication, so on loopback by default
    /// [default: 127.0.0.1:10258 for the controller, 127.0.0.1:10262 for the speaker].
    #[arg(long = "admin-bind-address", env = "BAREMETAL_CCM_ADMIN_BIND_ADDRESS")]
    pub bind_address: Option<SocketAddr>,
    /// Address of the metrics listener: /metrics over HTTPS for callers the API server
    /// authenticates (TokenReview) and authorizes (SubjectAccessReview), or `off`
    /// [default: 0.0.0.0:10263 for the controller, 0.0.0.0:10264 for the speaker].
    #[arg(
        long = "metrics-bind-address",
        env = "BAREMETAL_CCM_METRICS_BIND_ADDRESS",
        value_parser = parse_metrics_bind
    )]
    pub metrics_bind_address: Option<MetricsBind>,
    /// PEM certificate (chain) of the metrics listener; without it a self-signed certificate
    /// is generated at start.
    #[arg(
        long,
        env = "BAREMETAL_CCM_TLS_CERT_FILE",
        requires = "tls_private_key_file"
    )]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `--tls-cert-file`.
    #[arg(
        long,
        env = "BAREMETAL_CCM_TLS_PRIVATE_KEY_FILE",
        requires = "tls_cert_file"
    )]
    pub tls_private_key_file: Option<PathBuf>,
}

impl AdminArgs {
    /// The admin server's address: the flag's, else loopback on `default_port`.
    pub fn address(&self, default_port: u16) -> SocketAddr {
        self.bind_address
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)))
    }

    /// The metrics listener's address: the flag's, else all IPv4 addresses on
    /// `default_port`; `None` when it is off.
    pub fn metrics_address(&self, default_port: u16) -> Option<SocketAddr> {
        match self.metrics_bind_address {
            Some(MetricsBind::Off) => None,
            Some(MetricsBind::At(address)) => Some(address),
            None => Some(SocketAddr::from(([0, 0, 0, 0], default_port))),
        }
    }
}

#[derive(Debug, Args)]
pub struct KubeArgs {
    /// Path to a kubeconfig; in-cluster configuration when absent.
    #[arg(long, env = "BAREMETAL_CCM_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Client-side queries per second towards the API server.
    #[arg(long, default_value_t = 20.0, env = "BAREMETAL_CCM_KUBE_API_QPS")]
    pub kube_api_qps: f32,
    /// Client-side burst towards the API server.
    #[arg(long, default_value_t = 30, env = "BAREMETAL_CCM_KUBE_API_BURST")]
    pub kube_api_burst: u32,
}

#[derive(Debug, Args)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Provider settings file (instance provider, defaults, per-node entries).
    #[arg(long, env = "BAREMETAL_CCM_CLOUD_CONFIG")]
    pub cloud_config: Option<PathBuf>,
    /// Controllers to run: `*` for all, a name to add one, `-name` to remove one.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "*",
        env = "BAREMETAL_CCM_CONTROLLERS"
    )]
    pub controllers: Vec<String>,
    /// Hold the `kube-system/baremetal-ccm` Lease before writing cluster state.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "BAREMETAL_CCM_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Identity in the leader Lease and in Events; defaults to the host name and process id.
    #[arg(long, env = "BAREMETAL_CCM_IDENTITY")]
    pub identity: Option<String>,
    /// Serve only Services with `loadBalancerClass: baremetal-ccm.io/lb` (not class-less ones).
    #[arg(long, env = "BAREMETAL_CCM_LB_CLASS_ONLY")]
    pub lb_class_only: bool,
    /// Read MetalLB's Service annotations (`metallb.io/allow-shared-ip`,
    /// `metallb.io/loadBalancerIPs`, `metallb.io/address-pool`, and their
    /// `metallb.universe.tf/` forms) where ours are absent, so that Services MetalLB addressed
    /// keep their addresses and sharing when we take them over.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "BAREMETAL_CCM_METALLB_ANNOTATIONS")]
    pub metallb_annotations: bool,
    /// Services reconciled concurrently.
    #[arg(
        long,
        default_value_t = 4,
        env = "BAREMETAL_CCM_CONCURRENT_SERVICE_SYNCS"
    )]
    pub concurrent_service_syncs: u16,
    /// Nodes initialized, refreshed or checked concurrently.
    #[arg(long, default_value_t = 4, env = "BAREMETAL_CCM_CONCURRENT_NODE_SYNCS")]
    pub concurrent_node_syncs: u16,
    /// Events' own client-side queries per second, apart from `--kube-api-qps`: in a burst of
    /// work (thousands of Services at once) the writes go first and Events follow, Warnings
    /// before Normal ones; 0 for no limit.
    #[arg(long, default_value_t = 20.0, env = "BAREMETAL_CCM_EVENT_QPS")]
    pub event_qps: f32,
    /// Events' own client-side burst.
    #[arg(long, default_value_t = 100, env = "BAREMETAL_CCM_EVENT_BURST")]
    pub event_burst: u32,
    /// How often the addresses of initialized nodes are refreshed from the provider.
    #[arg(long, default_value = "5m", value_parser = baremetal_ccm_core::duration::parse_period, env = "BAREMETAL_CCM_NODE_STATUS_UPDATE_FREQUENCY")]
    pub node_status_update_frequency: Duration,
    /// How often NotReady nodes are checked at the provider (shutdown taint, deletion).
    #[arg(long, default_value = "5s", value_parser = baremetal_ccm_core::duration::parse_period, env = "BAREMETAL_CCM_NODE_MONITOR_PERIOD")]
    pub node_monitor_period: Duration,
    #[command(flatten)]
    pub bgp: BgpArgs,
    /// The node this replica runs on (normally from the downward API): its IPv4 address is
    /// the default BGP router ID, its InternalIP the l2-status observer's gossip address.
    #[arg(long, env = "BAREMETAL_CCM_NODE_NAME")]
    pub node_name: Option<String>,
    /// The speakers' gossip key and port, for the l2-status controller's observer (off
    /// without the key).
    #[command(flatten)]
    pub l2: L2Args,
    /// The UDP port of the l2-status controller's observer in the speakers' membership, on
    /// this node's InternalIP: not the speakers' port, so that it shares a node with a speaker.
    #[arg(long, default_value_t = crate::l2::status::DEFAULT_OBSERVER_PORT, env = "BAREMETAL_CCM_L2_OBSERVER_PORT")]
    pub l2_observer_port: u16,
}

#[derive(Debug, Args)]
pub struct SpeakerArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub bgp: BgpArgs,
    /// Name of the node this speaker runs on (normally from the downward API).
    #[arg(long, env = "BAREMETAL_CCM_NODE_NAME")]
    pub node_name: String,
    #[command(flatten)]
    pub l2: L2Args,
    /// Run the ARP/NDP reply threads at real-time priority (SCHED_FIFO 1), so that a request
    /// is answered before ordinary work on a busy node; needs CAP_SYS_NICE (without it the
    /// threads stay at normal priority and say so).
    #[arg(long, env = "BAREMETAL_CCM_L2_REPLY_REALTIME")]
    pub l2_reply_realtime: bool,
    /// Answer plain ARP requests and Neighbor Solicitations for the owned addresses in the
    /// kernel, from an eBPF program on each announcing interface's tc ingress (Linux 6.6 or
    /// later; needs CAP_BPF and CAP_NET_ADMIN). Everything else, and every request when the
    /// program cannot be loaded (reported as the host problem no_in_kernel_reply), is
    /// answered by the reply thread as without it.
    #[arg(long, env = "BAREMETAL_CCM_L2_REPLY_IN_KERNEL")]
    pub l2_reply_in_kernel: bool,
}

/// The speaker's layer 2 (ARP and NDP for `mode: l2` pools).
#[derive(Debug, Args, Clone)]
pub struct L2Args {
    /// The key (at least 16 bytes) that authenticates the speakers' gossip, a file mounted from
    /// a Secret; layer 2 is off without it. A file `previous-key` beside it is a second key
    /// accepted (not signed with); both are re-read every 5 s, for a rotation without restarts.
    #[arg(long, env = "BAREMETAL_CCM_L2_GOSSIP_KEY_FILE")]
    pub l2_gossip_key_file: Option<std::path::PathBuf>,
    /// The UDP port of the speakers' gossip, on each node's InternalIP.
    #[arg(long, default_value_t = crate::l2::membership::DEFAULT_PORT, env = "BAREMETAL_CCM_L2_GOSSIP_PORT")]
    pub l2_gossip_port: u16,
}

/// The BGP announcer's settings, in the controller (central placement) and the speaker
/// (node-local placement).
#[derive(Debug, Args, Clone)]
pub struct BgpArgs {
    /// The gobgpd sidecar's API: `unix:///path/to/gobgpd.sock` or `http://127.0.0.1:PORT`.
    #[arg(
        long,
        default_value = "unix:///run/gobgp/gobgpd.sock",
        env = "BAREMETAL_CCM_GOBGP_ENDPOINT"
    )]
    pub gobgp_endpoint: String,
    /// The daemon's own AS number (each session uses its BGPPeer's localASN).
    #[arg(long, default_value_t = 64512, env = "BAREMETAL_CCM_BGP_ASN")]
    pub bgp_asn: u32,
    /// The BGP router ID; defaults to the IPv4 address of this node (`--node-name`), else a
    /// value derived from the identity.
    #[arg(long, env = "BAREMETAL_CCM_BGP_ROUTER_ID")]
    pub bgp_router_id: Option<std::net::Ipv4Addr>,
    /// The only namespace whose Secrets are read: BGP passwords (BGPPeer
    /// passwordSecretRef). It should hold nothing else.
    #[arg(
        long,
        default_value = "baremetal-ccm-bgp",
        env = "BAREMETAL_CCM_BGP_PASSWORD_NAMESPACE"
    )]
    pub bgp_password_namespace: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn controller_flags_parse_with_upstream_spelling() {
        let cli = Cli::try_parse_from([
            "baremetal-ccm",
            "controller",
            "--controllers",
            "*,-cloud-node-lifecycle",
            "--leader-elect=false",
            "--admin-bind-address",
            "127.0.0.1:9999",
            "--log-format",
            "json",
        ])
        .expect("valid flags parse");
        let Command::Controller(args) = cli.command else {
            panic!("expected the controller subcommand");
        };
        assert_eq!(args.controllers, ["*", "-cloud-node-lifecycle"]);
        assert!(!args.leader_elect);
        assert_eq!(args.admin.address(CONTROLLER_ADMIN_PORT).port(), 9999);
        assert_eq!(cli.log.log_format, LogFormat::Json);
    }

    #[test]
    fn controller_and_speaker_default_to_different_ports_kubeadm_leaves_free() {
        // kubelet, kube-proxy, kube-controller-manager, kube-scheduler, etcd, the apiserver.
        let taken = [
            10248, 10249, 10250, 10255, 10256, 10257, 10259, 2379, 2380, 2381, 6443,
        ];
        let ours = [
            CONTROLLER_ADMIN_PORT,
            SPEAKER_ADMIN_PORT,
            CONTROLLER_METRICS_PORT,
            SPEAKER_METRICS_PORT,
        ];
        for port in ours {
            assert!(!taken.contains(&port), "{port} is taken on kubeadm nodes");
        }
        let distinct: std::collections::BTreeSet<u16> = ours.into_iter().collect();
        assert_eq!(distinct.len(), ours.len(), "{ours:?}");
        let cli = Cli::try_parse_from(["baremetal-ccm", "speaker", "--node-name=n1"])
            .expect("valid flags parse");
        let Command::Speaker(args) = cli.command else {
            panic!("expected the speaker subcommand");
        };
        assert_eq!(
            args.admin.address(SPEAKER_ADMIN_PORT).port(),
            SPEAKER_ADMIN_PORT
        );
    }

    fn admin_args(flags: &[&str]) -> Result<AdminArgs, clap::Error> {
        let mut argv = vec!["baremetal-ccm", "controller"];
        argv.extend_from_slice(flags);
        let cli = Cli::try_parse_from(argv)?;
        let Command::Controller(args) = cli.command else {
            panic!("expected the controller subcommand");
        };
        Ok(args.admin)
    }

    #[test]
    fn the_unauthenticated_admin_server_is_on_loopback_unless_told_otherwise() {
        let admin = admin_args(&[]).expect("no flags parse");
        for port in [CONTROLLER_ADMIN_PORT, SPEAKER_ADMIN_PORT] {
            let address = admin.address(port);
            assert!(address.ip().is_loopback(), "{address}");
            assert_eq!(address.port(), port);
        }
        let admin = admin_args(&["--admin-bind-address=0.0.0.0:9999"]).expect("valid flags");
        assert_eq!(
            admin.address(CONTROLLER_ADMIN_PORT).to_string(),
            "0.0.0.0:9999"
        );
    }

    #[test]
    fn the_metrics_listener_is_on_every_address_by_default_and_off_only_when_asked() {
        let admin = admin_args(&[]).expect("no flags parse");
        assert_eq!(
            admin.metrics_address(CONTROLLER_METRICS_PORT),
            Some(SocketAddr::from(([0, 0, 0, 0], CONTROLLER_METRICS_PORT)))
        );
        let admin = admin_args(&["--metrics-bind-address=off"]).expect("valid flags");
        assert_eq!(admin.metrics_address(CONTROLLER_METRICS_PORT), None);
        let admin = admin_args(&["--metrics-bind-address=[::]:8443"]).expect("valid flags");
        assert_eq!(
            admin
                .metrics_address(CONTROLLER_METRICS_PORT)
                .map(|a| a.to_string()),
            Some("[::]:8443".to_owned())
        );
        for invalid in ["", "0", "none", "0.0.0.0", "false"] {
            let flag = format!("--metrics-bind-address={invalid}");
            assert!(admin_args(&[&flag]).is_err(), "{flag} is rejected");
        }
    }

    #[test]
    fn a_certificate_needs_its_key_and_a_key_its_certificate() {
        assert!(admin_args(&["--tls-cert-file=/c.pem"]).is_err());
        assert!(admin_args(&["--tls-private-key-file=/k.pem"]).is_err());
        let admin = admin_args(&["--tls-cert-file=/c.pem", "--tls-private-key-file=/k.pem"])
            .expect("both given");
        assert_eq!(admin.tls_cert_file, Some(PathBuf::from("/c.pem")));
    }

    #[test]
    fn unknown_subcommand_is_rejected() {
        assert!(Cli::try_parse_from(["baremetal-ccm", "announce"]).is_err());
    }
}
