//! The admin servers (issue 11, item 4), against a real API server and the real binary: the
//! probes answer in plain HTTP on loopback; `/metrics` for Prometheus is served over HTTPS
//! only to callers the API server authenticates (TokenReview) and authorizes
//! (SubjectAccessReview), with exactly the shipped RBAC for those reviews and the documented
//! Prometheus role; slow clients are cut off and capped on that listener too; a stalled API
//! server fails a scrape with 503 instead of hanging it.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use baremetal_ccm::admin_server::REVIEW_TIMEOUT;
use baremetal_ccm::admin_server::{AdminState, HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
use rig::ccm::*;
use rig::cluster::{TestCluster, free_port};
use rig::https::{LocalhostCertificate, Reply, Trust};
use rig::manifests::*;
use rig::process::{Process, wait_for};
use rig::rbac::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A product process with its admin server and metrics listener on free loopback ports.
struct Running {
    process: Process,
    admin: SocketAddr,
    metrics: SocketAddr,
}

fn start(subcommand: &str, kubeconfig: &Path, extra: &[&str]) -> Running {
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let mut cmd = Command::new(rig::ccm::binary());
    cmd.arg(subcommand)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--admin-bind-address={admin}"))
        .arg(format!("--metrics-bind-address={metrics}"))
        .arg("--log-filter=info,baremetal_ccm=debug")
        .args(extra);
    let log = std::env::temp_dir().join(format!(
        "bmccm-metrics-{subcommand}-{}-{}.log",
        std::process::id(),
        metrics.port()
    ));
    let process = Process::spawn(subcommand, cmd, &log).unwrap();
    Running {
        process,
        admin,
        metrics,
    }
}

/// Waits until the process's `/readyz` (plain HTTP, loopback) says `ok`.
async fn wait_ready(running: &mut Running) {
    let ready = wait_for(WAIT, || async {
        (http_get(running.admin, "/readyz").await?.trim() == "ok").then_some(())
    })
    .await;
    assert!(ready.is_some(), "{}", running.process.log_tail(4000));
}

/// The RBAC documents of the Prometheus example in docs/security.md, as written there.
fn documented_prometheus_rbac() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/security.md"))
        .unwrap();
    let mut found = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        match (&mut block, line.trim_start().strip_prefix("```")) {
            (None, Some("yaml")) => block = Some(String::new()),
            (Some(yaml), Some(_)) => {
                found.extend(yaml_documents(yaml).into_iter().filter(|doc| {
                    (doc["kind"].as_str())
                        .is_some_and(|kind| ["ClusterRole", "ClusterRoleBinding"].contains(&kind))
                }));
                block = None;
            }
            (Some(yaml), None) => {
                yaml.push_str(line);
                yaml.push('\n');
            }
            (None, _) => {}
        }
    }
    assert_eq!(found.len(), 2, "the example's ClusterRole and binding");
    found
}

/// A token of ServiceAccount `monitoring/prometheus`, bound as docs/security.md shows; each
/// call issues a new one.
async fn prometheus_token(cluster: &TestCluster) -> String {
    let (kubeconfig, _) = cluster
        .service_account_client("monitoring", "prometheus")
        .await
        .unwrap();
    token_of(&kubeconfig)
}

async fn install_prometheus_rbac(cluster: &TestCluster) {
    create_namespace(&cluster.client(), "monitoring", &[]).await;
    apply_documents(&cluster.client(), documented_prometheus_rbac()).await;
}

/// Scrapes until the answer is 200 (RBAC reaches the API server's authorizer shortly after
/// it is written; a 403 is remembered for a few seconds).
async fn wait_scrape(address: SocketAddr, token: &str, trust: Trust<'_>) -> Reply {
    let reply = wait_for(WAIT, || async {
        let reply = rig::https::get(address, "/metrics", Some(token), trust)
            .await
            .ok()?;
        (reply.status == 200).then_some(reply)
    })
    .await;
    reply.unwrap_or_else(|| panic!("no 200 from {address} within {WAIT:?}"))
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.iter().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then_some(value.trim())
    })
}

/// Reviews the product's controller ServiceAccount has created: (TokenReviews,
/// SubjectAccessReviews).
fn reviews(cluster: &TestCluster) -> (usize, usize) {
    let writes = cluster.audited_writes().unwrap();
    let count = |resource: &str| {
        (writes.iter())
            .filter(|w| {
                w.verb == "create"
                    && w.user.username == "system:serviceaccount:kube-system:baremetal-ccm"
                    && w.object_ref
                        .as_ref()
                        .is_some_and(|o| o.resource == resource)
            })
            .count()
    };
    (count("tokenreviews"), count("subjectaccessreviews"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_callers_the_api_server_allows_read_the_metrics_with_exactly_the_shipped_rbac() {
    let cluster = cluster(true).await;
    let admin = cluster.client();
    apply_shipped_rbac(&admin).await;
    install_prometheus_rbac(&cluster).await;
    let allowed = prometheus_token(&cluster).await;
    let (no_rights, _) = cluster
        .service_account_client("default", "no-metrics")
        .await
        .unwrap();
    let denied = token_of(&no_rights);
    let (kubeconfig, _) = cluster
        .service_account_client("kube-system", "baremetal-ccm")
        .await
        .unwrap();
    let certificate = LocalhostCertificate::issue("metrics").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &certificate.cert_pem).unwrap();
    std::fs::write(&key, &certificate.key_pem).unwrap();
    let cert_flag = format!("--tls-cert-file={}", cert.display());
    let key_flag = format!("--tls-private-key-file={}", key.display());
    let mut controller = start(
        "controller",
        &kubeconfig,
        &[
            "--controllers=service-lb",
            "--identity=metrics",
            &cert_flag,
            &key_flag,
        ],
    );
    wait_ready(&mut controller).await;

    // Probes and local tools: plain HTTP on loopback, no token.
    assert_eq!(
        http_get(controller.admin, "/healthz").await.unwrap(),
        "ok\n"
    );
    let local = http_get(controller.admin, "/metrics").await.unwrap();
    assert!(local.contains("baremetal_ccm_build_info{"), "{local}");

    let trust = Trust::Ca(&certificate.ca_pem);
    let metrics = controller.metrics;
    let scrape = |token: Option<&str>| {
        let token = token.map(str::to_owned);
        async move {
            rig::https::get(metrics, "/metrics", token.as_deref(), trust)
                .await
                .unwrap()
        }
    };
    // No token, or one the API server does not know: 401, with the scheme to use.
    let anonymous = scrape(None).await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert_eq!(header(&anonymous, "www-authenticate"), Some("Bearer"));
    assert!(!anonymous.body.contains("baremetal_ccm_"), "{anonymous:?}");
    assert_eq!(scrape(Some("not-a-token")).await.status, 401);
    // A valid token whose user may not read /metrics: 403.
    let forbidden = scrape(Some(&denied)).await;
    assert_eq!(forbidden.status, 403, "{forbidden:?}");
    assert!(!forbidden.body.contains("baremetal_ccm_"), "{forbidden:?}");
    // The documented Prometheus role: 200 with the metrics.
    let reply = wait_scrape(controller.metrics, &allowed, trust).await;
    assert!(
        reply.body.contains("baremetal_ccm_build_info{"),
        "{reply:?}"
    );
    assert!(reply.body.contains("component=\"controller\""), "{reply:?}");
    assert!(
        header(&reply, "content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{reply:?}"
    );
    // The listener serves /metrics and nothing else: probes belong to the admin server.
    let probe = rig::https::get(controller.metrics, "/healthz", Some(&allowed), trust)
        .await
        .unwrap();
    assert_eq!(probe.status, 404, "{probe:?}");

    // Answers are remembered: two scrapes in a row cost at most one review of each kind
    // (without the cache: two of each), and the product's own ServiceAccount made them.
    let before = reviews(&cluster);
    assert!(before.0 >= 1 && before.1 >= 1, "{before:?}");
    for _ in 0..2 {
        assert_eq!(scrape(Some(&allowed)).await.status, 200);
    }
    let after = reviews(&cluster);
    assert!(
        after.0 - before.0 <= 1 && after.1 - before.1 <= 1,
        "two scrapes made {before:?} -> {after:?} reviews"
    );
    // Decisions are counted by result; the two requests without a usable token are there.
    let counted = scrape(Some(&allowed)).await.body;
    assert!(
        counted
            .contains("baremetal_ccm_admin_metrics_requests_total{result=\"unauthenticated\"} 2"),
        "{counted}"
    );
    for result in ["forbidden", "allowed"] {
        let series = format!("baremetal_ccm_admin_metrics_requests_total{{result=\"{result}\"}}");
        assert!(counted.contains(&series), "{series} in {counted}");
    }
    let log = controller.process.log_tail(200_000);
    assert!(!log.contains("cannot review"), "{log}");
    assert!(controller.process.is_running(), "{log}");

    // The speaker, with its own ServiceAccount and the shipped RBAC, and a certificate it
    // generated itself.
    let (speaker_kubeconfig, _) = cluster
        .service_account_client("kube-system", "baremetal-ccm-speaker")
        .await
        .unwrap();
    let mut speaker = start(
        "speaker",
        &speaker_kubeconfig,
        &[
            "--node-name=cp-1",
            "--gobgp-endpoint=unix:///nonexistent/gobgpd.sock",
        ],
    );
    wait_ready(&mut speaker).await;
    let trust = Trust::AnyCertificate;
    let anonymous = rig::https::get(speaker.metrics, "/metrics", None, trust)
        .await
        .unwrap();
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    let reply = wait_scrape(speaker.metrics, &allowed, trust).await;
    assert!(reply.body.contains("component=\"speaker\""), "{reply:?}");
    let log = speaker.process.log_tail(200_000);
    assert!(!log.contains("cannot review"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_hold_the_metrics_listener() {
    let cluster = cluster(false).await;
    // The rig's administrator may create reviews and read /metrics.
    let kubeconfig = cluster.admin_kubeconfig();
    let token = token_of(&kubeconfig);
    let mut controller = start(
        "controller",
        &kubeconfig,
        &["--controllers=service-lb", "--leader-elect=false"],
    );
    wait_ready(&mut controller).await;
    let address = controller.metrics;
    let started = tokio::time::Instant::now();
    // Half of the cap says nothing at all (not even a TLS ClientHello), the other half
    // completes the handshake and sends half a request head.
    let mut silent = Vec::new();
    for _ in 0..MAX_CONNECTIONS / 2 {
        silent.push(tokio::net::TcpStream::connect(address).await.unwrap());
    }
    let mut half_sent = Vec::new();
    for _ in 0..MAX_CONNECTIONS - MAX_CONNECTIONS / 2 {
        let mut stream = rig::https::connect_tls(address, Trust::AnyCertificate)
            .await
            .unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        stream.flush().await.unwrap();
        half_sent.push(stream);
    }
    // The cap is reached: one more is closed without an answer.
    let mut extra = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), extra.read_to_end(&mut answer)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "over the cap: closed, no answer ({read:?}, {answer:?})"
    );
    // Both kinds are cut off after the timeout.
    let deadline = HEADER_READ_TIMEOUT + Duration::from_secs(3);
    for mut stream in silent {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(deadline, stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a silent client was cut off");
    }
    for mut stream in half_sent {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(deadline, stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a client that sent half a head was cut off");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= HEADER_READ_TIMEOUT - Duration::from_millis(500),
        "{elapsed:?}"
    );
    // And scrapes work again, the probes never stopped.
    let reply = wait_scrape(address, &token, Trust::AnyCertificate).await;
    assert!(
        reply.body.contains("baremetal_ccm_build_info{"),
        "{reply:?}"
    );
    assert_eq!(
        http_get(controller.admin, "/healthz").await.unwrap(),
        "ok\n"
    );
    assert!(controller.process.is_running());
}

/// A copy of `kubeconfig` whose server is `proxy`.
fn through_proxy(
    cluster: &TestCluster,
    kubeconfig: &Path,
    proxy: &rig::proxy::StallingProxy,
    dir: &Path,
) -> std::path::PathBuf {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let replaced = text.replace(cluster.url(), &format!("https://{}", proxy.address));
    assert_ne!(text, replaced, "the kubeconfig names the apiserver's URL");
    let path = dir.join("proxied.kubeconfig");
    std::fs::write(&path, replaced).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_api_server_fails_the_scrape_with_503_instead_of_hanging_it() {
    let cluster = cluster(false).await;
    apply_shipped_rbac(&cluster.client()).await;
    install_prometheus_rbac(&cluster).await;
    let (kubeconfig, _) = cluster
        .service_account_client("kube-system", "baremetal-ccm")
        .await
        .unwrap();
    let target: SocketAddr = cluster
        .url()
        .trim_start_matches("https://")
        .parse()
        .unwrap();
    let proxy = rig::proxy::StallingProxy::start(target).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let proxied = through_proxy(&cluster, &kubeconfig, &proxy, dir.path());
    let review_client = rig::cluster::client_from_kubeconfig(&proxied)
        .await
        .unwrap();
    // The product's metrics listener, driven as the binary drives it, with its reviews
    // going through the proxy.
    let state = AdminState::new("controller", |_| {});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let tls = baremetal_ccm::admin_server::metrics_tls_config(None).unwrap();
    let authorizer = state.authorizer(review_client);
    let server =
        tokio::spawn(async move { state.serve_metrics_on(listener, tls, authorizer).await });
    let trust = Trust::AnyCertificate;
    wait_scrape(address, &prometheus_token(&cluster).await, trust).await;

    // A token not seen before needs the API server, which now says nothing.
    let fresh = prometheus_token(&cluster).await;
    proxy.freeze();
    let asked = tokio::time::Instant::now();
    let reply = tokio::time::timeout(
        REVIEW_TIMEOUT + Duration::from_secs(10),
        rig::https::get(address, "/metrics", Some(&fresh), trust),
    )
    .await
    .expect("the scrape is answered, not hung")
    .unwrap();
    let waited = asked.elapsed();
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(!reply.body.contains("baremetal_ccm_"), "{reply:?}");
    assert!(
        waited >= REVIEW_TIMEOUT - Duration::from_millis(100),
        "{waited:?}: answered after the review timeout"
    );
    // The failure is not remembered: the same token passes once the API server answers.
    proxy.sever();
    let reply = wait_scrape(address, &fresh, trust).await;
    assert!(
        reply.body.contains("baremetal_ccm_build_info{"),
        "{reply:?}"
    );
    server.abort();
}

/// The shipped workloads: the product's admin server stays on loopback (no
/// `--admin-bind-address` off it), the kubelet probes it at 127.0.0.1, and the only ports the
/// pods declare are the metrics listener's, named `metrics`, and the speaker's layer-2 gossip
/// port (UDP, open between the nodes), named `l2-gossip`, and the controller's l2-status observer
/// port, named `l2-observer`.
#[test]
fn the_manifests_probe_on_loopback_and_declare_only_the_metrics_and_gossip_ports() {
    use baremetal_ccm::{
        CONTROLLER_ADMIN_PORT, CONTROLLER_METRICS_PORT, Cli, Command as Sub, SPEAKER_ADMIN_PORT,
        SPEAKER_METRICS_PORT,
    };
    use clap::Parser as _;
    for file in ["controller/controller.yaml", "speaker/speaker.yaml"] {
        let daemonset = documents(file)
            .into_iter()
            .find(|d| d["kind"] == "DaemonSet")
            .unwrap();
        let container = &daemonset["spec"]["template"]["spec"]["containers"][0];
        let mut argv = vec!["baremetal-ccm".to_owned()];
        argv.extend(
            (container["args"].as_array().unwrap().iter()).map(|a| a.as_str().unwrap().to_owned()),
        );
        argv.push("--node-name=n1".to_owned());
        let (admin, metrics, gossip) = match Cli::try_parse_from(&argv).unwrap().command {
            // The controller's l2-status observer gossips on a port of its own.
            Sub::Controller(args) => (
                args.admin.address(CONTROLLER_ADMIN_PORT),
                args.admin.metrics_address(CONTROLLER_METRICS_PORT),
                (args.l2.l2_gossip_key_file.is_some())
                    .then_some(("l2-observer", args.l2_observer_port)),
            ),
            Sub::Speaker(args) => (
                args.admin.address(SPEAKER_ADMIN_PORT),
                args.admin.metrics_address(SPEAKER_METRICS_PORT),
                (args.l2.l2_gossip_key_file.is_some())
                    .then_some(("l2-gossip", args.l2.l2_gossip_port)),
            ),
            Sub::Crd | Sub::Migrate(_) => {
                panic!("{file}: a workload runs the controller or the speaker")
            }
        };
        assert!(admin.ip().is_loopback(), "{file}: admin server on {admin}");
        for probe in ["livenessProbe", "readinessProbe"] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["host"], "127.0.0.1", "{file}: {probe}");
            assert_eq!(get["port"], admin.port(), "{file}: {probe}");
        }
        let metrics = metrics.unwrap_or_else(|| panic!("{file}: the metrics listener is on"));
        let mut ports =
            vec![serde_json::json!({"name": "metrics", "containerPort": metrics.port()})];
        ports.extend(gossip.map(
            |(name, port)| serde_json::json!({"name": name, "containerPort": port, "protocol": "UDP"}),
        ));
        assert_eq!(container["ports"], serde_json::Value::from(ports), "{file}");
        assert!(gossip.is_some(), "{file}: layer 2 is on");
    }
}
