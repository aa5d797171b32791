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
    let port = api_port(cluster);
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

/// The API server's port on the host's loopback.
fn api_port(cluster: &TestCluster) -> u16 {
    (cluster.url().rsplit(':').next())
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .expect("the API server URL ends in its port")
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

/// A log file of its own for each process started: labs run side by side in one test
/// process, each with its own n1, and a restarted process must not be read as its
/// predecessor.
fn log_file(what: &str, node: &str) -> PathBuf {
    static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let start = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "bmccm-{what}-{node}-{}-{start}.log",
        std::process::id()
    ))
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
    let log = log_file("speaker-l2", node);
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

/// Starts `baremetal-ccm controller` with service-lb and l2-status inside `host`'s namespace
/// (node `node`; forward the API server there first: [`forward_api`]), identity `ccm-a`, with
/// the credentials of `kubeconfig`.
pub fn start_l2_status_controller(
    kubeconfig: &Path,
    host: &Host,
    node: &str,
    key: &Path,
) -> Process {
    let log = log_file("controller-l2-status", node);
    let mut cmd = host.command(crate::ccm::binary());
    cmd.args([
        "controller",
        &format!("--kubeconfig={}", kubeconfig.display()),
        "--identity=ccm-a",
        "--controllers=service-lb,l2-status",
        &format!("--node-name={node}"),
        &format!("--l2-gossip-key-file={}", key.display()),
        "--admin-bind-address=127.0.0.1:10258",
        "--metrics-bind-address=off",
        "--log-filter=info,baremetal_ccm=debug",
    ]);
    Process::spawn("controller-l2-status", cmd, &log)
        .unwrap_or_else(|e| panic!("the controller starts in {node}: {e}"))
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

/// The nodes of an [`L2Lab`]: name, IPv4 and IPv6 address of its eth0.
pub const L2_NODES: [(&str, &str, &str); 3] = [
    ("n1", "192.0.2.11/24", "2001:db8::11/64"),
    ("n2", "192.0.2.12/24", "2001:db8::12/64"),
    ("n3", "192.0.2.13/24", "2001:db8::13/64"),
];

/// Three nodes (n1, n2, n3) on one bridge, each a namespace with a real layer-2 speaker, a
/// client namespace (192.0.2.20, 2001:db8::20) whose kernel resolves addresses, a real API
/// server with the service-lb controller, and an `l2` pool (192.0.2.100-110,
/// 2001:db8::100/124) with a short announcement burst.
#[derive(Debug)]
pub struct L2Lab {
    pub cluster: TestCluster,
    pub hosts: std::collections::BTreeMap<String, Host>,
    pub client: Host,
    pub speakers: std::collections::BTreeMap<String, Process>,
    key: PathBuf,
    segment: crate::netns::Segment,
    /// Each speaker's credentials (the admin's unless [`L2Options::shipped_speaker_account`]).
    kubeconfigs: std::collections::BTreeMap<String, PathBuf>,
    _forwards: Vec<Forward>,
    /// [`L2Lab::cut_api`] blocked the API server's port too.
    api_blocked: bool,
    /// [`L2Options::speaker_args`].
    speaker_args: Vec<String>,
    _controller: Process,
    _key_dir: tempfile::TempDir,
    _lab: crate::netns::Lab,
    /// Held until everything above is torn down (fields drop in order).
    _slot: tokio::sync::SemaphorePermit<'static>,
}

/// How [`L2Lab::start_with`] differs from [`L2Lab::start`].
#[derive(Debug, Clone, Default)]
pub struct L2Options {
    /// The API server's options (an audit log of every request, for instance).
    pub cluster: crate::cluster::ClusterOptions,
    /// Runs the speakers as the shipped ServiceAccount `kube-system/baremetal-ccm-speaker`
    /// (the shipped RBAC applied, each speaker with a token bound to a Pod on its node) instead
    /// of the admin, so that the audit log tells their requests from the controller's.
    pub shipped_speaker_account: bool,
    /// Runs the controller with the l2-status controller too ([`L2Lab::start_with_status`]).
    pub status: bool,
    /// Extra arguments of every speaker (also when [`L2Lab::restart`] starts one again).
    pub speaker_args: Vec<String>,
}

/// The user the speakers of an [`L2Lab`] started with [`L2Options::shipped_speaker_account`]
/// authenticate as.
pub const SPEAKER_USER: &str = "system:serviceaccount:kube-system:baremetal-ccm-speaker";

/// The speakers' gossip port (the default of `--l2-gossip-port`).
pub const GOSSIP_PORT: &str = "7947";

/// How many labs run at once in one test binary. Each is three speakers, an API server with
/// its etcd and a controller: more at once on a two-core machine starve the speakers' 100 ms
/// probes, and a starved probe is a false failure that moves addresses under a test's feet.
static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(3);

impl L2Lab {
    pub async fn start() -> L2Lab {
        Self::start_with(L2Options::default()).await
    }

    /// [`L2Lab::start`] with the controller running the l2-status controller too: inside n1's
    /// namespace, as on a control-plane node that runs a speaker (its observer on UDP 7948
    /// beside n1's speaker on 7947), with the speakers' key and its own ServiceAccount under the
    /// shipped RBAC; [`L2Lab::cut_api`] cuts it off too.
    pub async fn start_with_status() -> L2Lab {
        Self::start_with(L2Options {
            status: true,
            ..L2Options::default()
        })
        .await
    }

    /// The controller's process (its log).
    pub fn controller(&self) -> &Process {
        &self._controller
    }

    /// [`L2Lab::start`] with `options`.
    pub async fn start_with(options: L2Options) -> L2Lab {
        let slot = SLOTS
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let mut lab = crate::netns::Lab::new().expect("a lab");
        let segment = lab.segment("sw").expect("the bridge");
        let mut hosts = std::collections::BTreeMap::new();
        for (name, v4, v6) in L2_NODES {
            let addresses = [v4.parse().expect("v4"), v6.parse().expect("v6")];
            let host = lab.host_on(name, &segment, &addresses).expect("a node");
            hosts.insert(name.to_owned(), host);
        }
        let client_addresses = [
            "192.0.2.20/24".parse().expect("v4"),
            "2001:db8::20/64".parse().expect("v6"),
        ];
        let client = lab
            .host_on("cli", &segment, &client_addresses)
            .expect("the client");
        let cluster = crate::ccm::cluster_with(options.cluster).await;
        let api = cluster.client();
        if options.shipped_speaker_account {
            crate::manifests::apply_shipped_rbac(&api).await;
        }
        for (name, v4, _) in L2_NODES {
            let address = v4
                .split('/')
                .next()
                .and_then(|a| a.parse().ok())
                .expect("an address");
            create_node(&api, name, address).await;
        }
        crate::pool::create_pool(
            &api,
            "l2",
            serde_json::json!({
                "addresses": ["192.0.2.100-192.0.2.110", "2001:db8::100/124"],
                "announce": {"mode": "l2", "l2": {"announcements": {"count": 3, "interval": "300ms", "refresh": "0s"}}}
            }),
        )
        .await;
        let (key_dir, key) = gossip_key();
        let mut forwards = Vec::new();
        let mut speakers = std::collections::BTreeMap::new();
        let mut kubeconfigs = std::collections::BTreeMap::new();
        for (name, host) in &hosts {
            let kubeconfig = if options.shipped_speaker_account {
                (cluster.pod_service_account_client("kube-system", "baremetal-ccm-speaker", name))
                    .await
                    .expect("a token for the speaker's ServiceAccount")
                    .0
            } else {
                cluster.admin_kubeconfig()
            };
            forwards.push(forward_api(&cluster, host));
            let extra: Vec<&str> = options.speaker_args.iter().map(String::as_str).collect();
            let speaker = start_l2_speaker_as(&kubeconfig, host, name, &key, &extra);
            speakers.insert(name.clone(), speaker);
            kubeconfigs.insert(name.clone(), kubeconfig);
        }
        let controller = if options.status {
            // As shipped: the controller's ServiceAccount with exactly the shipped RBAC.
            if !options.shipped_speaker_account {
                crate::manifests::apply_shipped_rbac(&api).await;
            }
            let (kubeconfig, _) = (cluster.service_account_client("kube-system", "baremetal-ccm"))
                .await
                .expect("the controller's ServiceAccount");
            start_l2_status_controller(&kubeconfig, &hosts["n1"], "n1", &key)
        } else {
            crate::ccm::start_controller(&cluster.admin_kubeconfig(), "ccm-a", &[])
        };
        L2Lab {
            cluster,
            hosts,
            client,
            speakers,
            key,
            segment,
            kubeconfigs,
            _forwards: forwards,
            api_blocked: false,
            speaker_args: options.speaker_args.clone(),
            _controller: controller,
            _key_dir: key_dir,
            _lab: lab,
            _slot: slot,
        }
    }

    /// Cuts every speaker off the API server: the forwards end and the port is blocked, so the
    /// connections they carried end too (a watch, a kept-alive client connection). The failover
    /// path must not need it. (Until this stop the block was missing: the forwards' children
    /// kept serving established connections.)
    pub fn cut_api(&mut self) {
        self._forwards.clear();
        if !self.api_blocked {
            self.block_api();
            self.api_blocked = true;
        }
    }

    /// Blocks every node namespace's traffic to the API server (the speakers' and, with
    /// [`L2Lab::start_with_status`], the controller's), established connections included:
    /// [`L2Lab::cut_api`] ends the forwards, but socat's children keep serving the
    /// connections they already carry (a watch, a client's kept-alive connection).
    pub fn block_api(&self) {
        let port = api_port(&self.cluster).to_string();
        for host in self.hosts.values() {
            host.run(["nft", "add", "table", "inet", "bmccm_api"])
                .expect("nft");
            let chain = "{ type filter hook output priority 0 ; }";
            host.run(["nft", "add", "chain", "inet", "bmccm_api", "out", chain])
                .expect("nft");
            host.run([
                "nft",
                "add",
                "rule",
                "inet",
                "bmccm_api",
                "out",
                "tcp",
                "dport",
                &port,
                "drop",
            ])
            .expect("nft");
        }
    }

    /// Ends [`L2Lab::block_api`].
    pub fn unblock_api(&self) {
        for host in self.hosts.values() {
            host.run(["nft", "delete", "table", "inet", "bmccm_api"])
                .expect("nft");
        }
    }

    /// Gives the speakers their API server back.
    pub fn restore_api(&mut self) {
        if self.api_blocked {
            self.unblock_api();
            self.api_blocked = false;
        }
        if self._forwards.is_empty() {
            self._forwards = (self.hosts.values())
                .map(|h| forward_api(&self.cluster, h))
                .collect();
        }
    }

    /// Plugs a machine outside the cluster into the segment: a namespace `name` (no speaker)
    /// whose kernel holds `addresses` on its eth0 and answers ARP and NDP for them, as any
    /// host holding an address does.
    pub fn outside_machine(&mut self, name: &str, addresses: &[ipnet::IpNet]) -> Host {
        (self._lab.host_on(name, &self.segment, addresses))
            .unwrap_or_else(|e| panic!("the outside machine {name}: {e}"))
    }

    /// Sends SIGTERM to `node`'s speaker without waiting for it to exit.
    pub fn sigterm(&self, node: &str) {
        let pid = self.speakers[node].pid().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -TERM {pid}");
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to `node`'s speaker.
    pub fn signal(&self, node: &str, signal: &str) {
        let pid = self.speakers[node].pid().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {pid}");
    }

    /// Cuts `node`'s gossip (UDP to and from the gossip port, both families) while its link,
    /// its ARP and NDP and its API server stay: a partition beyond its own port.
    pub fn cut_gossip(&self, node: &str) {
        let host = &self.hosts[node];
        host.run(["nft", "add", "table", "inet", "bmccm_gossip"])
            .expect("nft");
        for (chain, hook) in [("in", "input"), ("out", "output")] {
            let spec = format!("{{ type filter hook {hook} priority 0 ; }}");
            host.run(["nft", "add", "chain", "inet", "bmccm_gossip", chain, &spec])
                .expect("nft");
            for field in ["dport", "sport"] {
                host.run([
                    "nft",
                    "add",
                    "rule",
                    "inet",
                    "bmccm_gossip",
                    chain,
                    "udp",
                    field,
                    GOSSIP_PORT,
                    "drop",
                ])
                .expect("nft");
            }
        }
    }

    /// Ends [`L2Lab::cut_gossip`].
    pub fn heal_gossip(&self, node: &str) {
        (self.hosts[node].run(["nft", "delete", "table", "inet", "bmccm_gossip"])).expect("nft");
    }

    /// Waits up to `within` until `node`'s speaker log holds `needle` more than `before` times
    /// (a count taken earlier with [`L2Lab::log_count`]).
    pub async fn wait_log(
        &self,
        node: &str,
        needle: &str,
        before: usize,
        within: std::time::Duration,
    ) {
        let start = std::time::Instant::now();
        while self.log_count(node, needle) <= before {
            assert!(
                start.elapsed() < within,
                "{node} never logged {needle:?} within {within:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// How many times `node`'s speaker log holds `needle`.
    pub fn log_count(&self, node: &str, needle: &str) -> usize {
        self.speakers[node]
            .log_tail(usize::MAX)
            .matches(needle)
            .count()
    }

    /// Waits until every running speaker has logged that its hold-down is over (the condition
    /// the ranking needs before a trial: a settling node owns only what nobody else can).
    pub async fn wait_settled(&self) {
        let start = std::time::Instant::now();
        // The last word of each log on it: a returning link makes a speaker settle again.
        let settled = |log: &str| {
            let last = |line: &str| log.rfind(line);
            last("settled: owns addresses") > last("settling: owns an address")
        };
        while !(self.speakers.values()).all(|s| settled(&s.log_tail(1_000_000))) {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "the speakers never settled"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Creates the LoadBalancer Service `default/<name>` (one address from the lab's pool),
    /// waits until every speaker has settled and someone answers for the address, so that the
    /// owner is the first in rank; the address and its owner.
    pub async fn one_address_service(&self, name: &str) -> (String, String) {
        let api = self.cluster.client();
        crate::service::Svc::lb("default", name).create(&api).await;
        let address = (crate::service::wait_addresses(&api, "default", name, 1).await).remove(0);
        self.wait_settled().await;
        let owner = self.owner_of(&address).await;
        (address, owner)
    }

    /// Starts `node`'s speaker again (after a kill or a stop).
    pub fn restart(&mut self, node: &str) {
        let kubeconfig = &self.kubeconfigs[node];
        let extra: Vec<&str> = self.speaker_args.iter().map(String::as_str).collect();
        let speaker = start_l2_speaker_as(kubeconfig, &self.hosts[node], node, &self.key, &extra);
        self.speakers.insert(node.to_owned(), speaker);
    }

    /// The tail of every speaker's log, for a failure message.
    pub fn logs(&self) -> String {
        (self.speakers.iter())
            .map(|(node, s)| format!("--- {node}:\n{}", s.log_tail(6000)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The node whose eth0 has `mac`.
    pub fn node_with_mac(&self, mac: &str) -> Option<String> {
        (self.hosts.iter())
            .find(|(_, host)| eth0_mac(host) == mac)
            .map(|(name, _)| name.clone())
    }

    /// The node the client's kernel resolves `address` to, waiting up to a minute for one.
    pub async fn owner_of(&self, address: &str) -> String {
        let start = std::time::Instant::now();
        loop {
            if let Some(mac) = resolve(&self.client, address)
                && let Some(node) = self.node_with_mac(&mac)
            {
                return node;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "nobody answers for {address}; speaker logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

/// The MAC of `host`'s eth0.
pub fn eth0_mac(host: &Host) -> String {
    (host.run_capture(["cat", "/sys/class/net/eth0/address"]))
        .expect("reading eth0's MAC")
        .trim()
        .to_owned()
}

/// The MAC `client`'s kernel has for `address` after asking afresh (a ping makes it ask;
/// nobody needs to answer the ping).
pub fn resolve(client: &Host, address: &str) -> Option<String> {
    let _ = client.run(["ip", "neigh", "flush", "to", address, "dev", "eth0"]);
    let _unanswered = client
        .command("ping")
        .args(["-c", "1", "-W", "1", address])
        .output();
    neighbour(client, address)
}

/// The MAC `client`'s kernel has cached for `address`, if any.
pub fn neighbour(client: &Host, address: &str) -> Option<String> {
    let out = (client.run_capture(["ip", "neigh", "show", "to", address, "dev", "eth0"])).ok()?;
    let words: Vec<&str> = out.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "lladdr")?;
    Some(words[at + 1].to_owned())
}

/// Polls the client's cache every 10 ms, without flushing it (the new owner's gratuitous
/// announcements are what must move it), until it holds a MAC other than `old`; returns the
/// MAC and how long that took, or `None` after `within`.
pub fn wait_moved(
    client: &Host,
    address: &str,
    old: &str,
    within: std::time::Duration,
) -> Option<(String, std::time::Duration)> {
    let start = std::time::Instant::now();
    loop {
        if let Some(mac) = neighbour(client, address).filter(|m| m != old) {
            return Some((mac, start.elapsed()));
        }
        if start.elapsed() >= within {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
