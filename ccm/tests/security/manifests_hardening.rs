//! The shipped workloads are hardened (issue 11, items 2, 3 and part of 7): no pod automounts
//! the API token, only the product's own container mounts one (never the gobgpd sidecar,
//! which parses BGP from the network), every pod runs under the RuntimeDefault seccomp
//! profile, every container drops every capability and only the speaker adds one (NET_RAW,
//! for layer 2, as uid 0 so that it holds), the gossip key is a read-only file from a Secret
//! that must exist, and the admin ports are free on kubeadm nodes and distinct from each
//! other (the controller and the speaker share the host network of control-plane nodes) —
//! read from the manifests, and proven by running both, as the manifests start them, beside
//! every port a kubeadm control-plane node's components hold.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeSet;

use serde_json::Value;

const WORKLOADS: [&str; 2] = ["controller/controller.yaml", "speaker/speaker.yaml"];
const TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Ports a kubeadm node's components hold: the kubelet (10248, 10250, 10255), kube-proxy
/// (10249, 10256), kube-controller-manager (10257), kube-scheduler (10259), etcd and the
/// API server.
const KUBEADM_PORTS: [u16; 11] = [
    10248, 10249, 10250, 10255, 10256, 10257, 10259, 2379, 2380, 2381, 6443,
];

fn pod_specs() -> Vec<(String, Value)> {
    let mut specs = Vec::new();
    for file in WORKLOADS {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/").to_owned() + file;
        let text = std::fs::read_to_string(&path).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            use serde::Deserialize as _;
            let value =
                serde_json::to_value(serde_yaml::Value::deserialize(document).unwrap()).unwrap();
            let spec = &value["spec"]["template"]["spec"];
            if spec.is_object() {
                specs.push((file.to_owned(), spec.clone()));
            }
        }
    }
    assert_eq!(specs.len(), 2, "both workloads are found");
    specs
}

fn containers(spec: &Value) -> &Vec<Value> {
    spec["containers"].as_array().unwrap()
}

#[test]
fn no_pod_automounts_the_token_and_only_the_product_container_mounts_one() {
    for (file, spec) in pod_specs() {
        assert_eq!(
            spec["automountServiceAccountToken"],
            Value::Bool(false),
            "{file}"
        );
        let token_volumes: BTreeSet<&str> = (spec["volumes"].as_array().unwrap().iter())
            .filter(|v| {
                (v["projected"]["sources"].as_array().into_iter().flatten())
                    .any(|s| s.get("serviceAccountToken").is_some())
            })
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert_eq!(token_volumes.len(), 1, "{file}: one projected token volume");
        let mounting: Vec<&str> = containers(&spec)
            .iter()
            .filter(|c| {
                (c["volumeMounts"].as_array().into_iter().flatten()).any(|m| {
                    m["name"]
                        .as_str()
                        .is_some_and(|n| token_volumes.contains(n))
                        || m["mountPath"] == TOKEN_PATH
                })
            })
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(mounting.len(), 1, "{file}: {mounting:?}");
        assert_ne!(mounting[0], "gobgpd", "{file}: the sidecar holds no token");
        let product = containers(&spec)
            .iter()
            .find(|c| c["name"] == mounting[0])
            .unwrap();
        assert_eq!(
            product["image"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .rsplit('/')
                .next(),
            Some("baremetal-ccm"),
            "{file}: the token goes to the product's own container"
        );
    }
}

#[test]
fn every_pod_runs_under_the_runtime_default_seccomp_profile() {
    for (file, spec) in pod_specs() {
        assert_eq!(
            spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{file}"
        );
    }
}

#[test]
fn only_the_speaker_adds_a_capability_net_raw_as_uid_0_in_the_sidecars_group() {
    let mut added = Vec::new();
    for (file, spec) in pod_specs() {
        let sidecar_group = (containers(&spec).iter())
            .find(|c| c["name"] == "gobgpd")
            .map(|c| c["securityContext"]["runAsGroup"].clone())
            .unwrap();
        assert_eq!(sidecar_group, 65532, "{file}: gobgpd's group is explicit");
        for container in containers(&spec) {
            let name = format!("{file}: {}", container["name"].as_str().unwrap());
            let context = &container["securityContext"];
            assert_eq!(context["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(context["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(
                context["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{name}"
            );
            match context["capabilities"].get("add") {
                None => {
                    assert_eq!(context["runAsNonRoot"], true, "{name}");
                    assert_eq!(context["runAsUser"], 65532, "{name}");
                }
                Some(add) => {
                    // Kubernetes gives an added capability only to a root process: a non-root
                    // one loses it when the container starts (no ambient capabilities), so a
                    // capability added to a non-root container is never held.
                    assert_eq!(
                        context["runAsUser"], 0,
                        "{name}: the capability would not hold"
                    );
                    // Without CAP_DAC_OVERRIDE, uid 0 reaches gobgpd's socket (0770) only
                    // through the sidecar's group.
                    assert_eq!(context["runAsGroup"], sidecar_group, "{name}");
                    added.push((name, add.clone()));
                }
            }
        }
    }
    assert_eq!(
        added,
        [(
            "speaker/speaker.yaml: speaker".to_owned(),
            serde_json::json!(["NET_RAW"])
        )],
        "only the speaker adds a capability, and only NET_RAW"
    );
}

#[test]
fn the_gossip_key_is_a_read_only_file_from_a_secret_that_must_exist() {
    let (_, spec) = (pod_specs().into_iter())
        .find(|(f, _)| f == "speaker/speaker.yaml")
        .unwrap();
    let speaker = &containers(&spec)[0];
    let file = (speaker["args"].as_array().unwrap().iter())
        .find_map(|a| a.as_str()?.strip_prefix("--l2-gossip-key-file="))
        .expect("layer 2 is on: the key file is passed");
    let (dir, name) = file.rsplit_once('/').unwrap();
    let mount = (speaker["volumeMounts"].as_array().unwrap().iter())
        .find(|m| m["mountPath"] == dir)
        .expect("the key's directory is mounted");
    assert_eq!(mount["readOnly"], true);
    let volume = (spec["volumes"].as_array().unwrap().iter())
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let secret = &volume["secret"];
    assert_eq!(secret["secretName"], "baremetal-ccm-l2-gossip");
    // The whole Secret: `key`, and `previous-key` during a rotation (an item naming a key
    // the Secret lacks would keep the pod from starting).
    assert_eq!(name, "key");
    assert!(secret.get("items").is_none(), "{secret}");
    assert_eq!(secret["defaultMode"], 0o400);
    assert_eq!(
        secret["optional"], false,
        "a missing Secret is a pod event, not layer 2 silently off"
    );
    // Kustomize cannot draw the key: the command that creates the Secret is documented.
    for doc in ["manifests/README.md", "docs/install.md"] {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../").to_owned() + doc;
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(
                "kubectl -n kube-system create secret generic baremetal-ccm-l2-gossip \\\n  --from-literal=key=\"$(head -c 32 /dev/urandom | base64)\""
            ),
            "{doc} gives the command that creates the gossip key Secret"
        );
    }
}

/// The admin port a product container serves on (its `--admin-bind-address`, else the
/// subcommand's default) and the ports its probes use.
fn admin_ports(container: &Value) -> Option<(u16, BTreeSet<u16>)> {
    let args: Vec<&str> = (container["args"].as_array()?.iter())
        .filter_map(Value::as_str)
        .collect();
    let default = match *args.first()? {
        "controller" => baremetal_ccm::CONTROLLER_ADMIN_PORT,
        "speaker" => baremetal_ccm::SPEAKER_ADMIN_PORT,
        _ => return None,
    };
    let port = (args.iter())
        .find_map(|a| a.strip_prefix("--admin-bind-address="))
        .map_or(default, |address| {
            address.rsplit(':').next().unwrap().parse().unwrap()
        });
    let probes = ["livenessProbe", "readinessProbe"]
        .iter()
        .filter_map(|p| container[*p]["httpGet"]["port"].as_u64())
        .map(|p| u16::try_from(p).unwrap())
        .collect();
    Some((port, probes))
}

#[test]
fn admin_ports_are_free_on_kubeadm_nodes_and_distinct() {
    let mut ports = Vec::new();
    for (file, spec) in pod_specs() {
        for container in containers(&spec) {
            let Some((port, probes)) = admin_ports(container) else {
                continue;
            };
            assert!(
                !KUBEADM_PORTS.contains(&port),
                "{file}: admin port {port} is taken on kubeadm nodes"
            );
            assert_eq!(
                probes,
                BTreeSet::from([port]),
                "{file}: probes use the admin port"
            );
            ports.push(port);
        }
    }
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert_ne!(
        ports[0], ports[1],
        "the controller and the speaker share control-plane nodes' host network"
    );
}

/// The container arguments of `file`'s product container.
fn shipped_args(file: &str) -> Vec<String> {
    let (_, spec) = pod_specs().into_iter().find(|(f, _)| f == file).unwrap();
    let container = &spec["containers"][0];
    (container["args"].as_array().unwrap().iter())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_start_with_their_shipped_ports_beside_a_kubeadm_control_plane_node() {
    // What kubeadm's components hold on a control-plane node (kube-scheduler's 10259 among
    // them), held here on every address; a port something else already holds is taken too.
    let _held: Vec<std::net::TcpListener> = (KUBEADM_PORTS.iter())
        .filter_map(|port| std::net::TcpListener::bind(("0.0.0.0", *port)).ok())
        .collect();
    let cluster = rig::ccm::cluster(false).await;
    let kubeconfig = format!("--kubeconfig={}", cluster.admin_kubeconfig().display());
    let config = rig::nodes::cloud_config("static: {}\n");
    // The speaker's gossip key (the manifest's path is the Secret's mount in the pod). No Node
    // exists here: layer 2 waits for its node's address and opens nothing.
    let (_key_dir, key) = rig::l2::gossip_key();
    let start = |file: &str, extra: Vec<String>| {
        let mut argv = shipped_args(file);
        argv.retain(|a| !a.starts_with("--cloud-config="));
        for arg in &mut argv {
            if arg.starts_with("--l2-gossip-key-file=") {
                *arg = format!("--l2-gossip-key-file={}", key.display());
            }
        }
        argv.extend(extra);
        argv.push(kubeconfig.clone());
        let mut cmd = std::process::Command::new(rig::ccm::binary());
        cmd.args(&argv);
        let log = std::env::temp_dir().join(format!(
            "bmccm-ports-{}-{}.log",
            argv[0],
            std::process::id()
        ));
        rig::process::Process::spawn(&argv[0], cmd, &log).unwrap()
    };
    let mut controller = start(
        "controller/controller.yaml",
        vec![
            format!(
                "--cloud-config={}",
                config.path().join("cloud.yaml").display()
            ),
            "--identity=cp-1".into(),
            "--controllers=cloud-node".into(),
        ],
    );
    let mut speaker = start(
        "speaker/speaker.yaml",
        vec![
            "--node-name=cp-1".into(),
            "--gobgp-endpoint=unix:///nonexistent/gobgpd.sock".into(),
        ],
    );
    // Their probes (loopback, the manifests' ports) and their metrics listeners answer.
    for (process, admin, metrics) in [
        (&mut controller, 10258, 10263),
        (&mut speaker, 10262, 10264),
    ] {
        let admin = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
        let alive = rig::process::wait_for(rig::ccm::WAIT, || async {
            rig::ccm::http_get(admin, "/healthz").await.map(drop)
        })
        .await;
        assert!(alive.is_some(), "{}", process.log_tail(4000));
        let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], metrics));
        let reply = rig::https::get(metrics, "/metrics", None, rig::https::Trust::AnyCertificate)
            .await
            .unwrap();
        assert_eq!(reply.status, 401, "the metrics listener asks for a token");
        assert!(process.is_running(), "{}", process.log_tail(4000));
    }
}
