//! A real Kubernetes control plane for tests: etcd and kube-apiserver on free loopback ports.
//!
//! Each [`TestCluster`] owns a temporary directory with its own CA, serving certificate,
//! service-account signing key, static admin token and etcd data; both processes die and the
//! directory is removed when it is dropped, panics included.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::process::{Process, ProcessError, wait_for};
use crate::tools::{Tool, ToolError};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("filesystem error under {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("generating test certificates failed")]
    Certificates(#[from] rcgen::Error),
    #[error("kube client error")]
    Kube(#[from] kube::Error),
    #[error("kubeconfig error")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("YAML in {path} is invalid")]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{what} did not become ready within {seconds}s; log tail:\n{log}")]
    NotReady {
        what: &'static str,
        seconds: u64,
        log: String,
    },
    #[error("TokenRequest for {namespace}/{name} returned no token")]
    NoToken { namespace: String, name: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_owned(),
        source,
    }
}

const ADMIN_TOKEN: &str = "rig-admin-token";
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A running etcd + kube-apiserver pair with an admin client.
pub struct TestCluster {
    // Field order is drop order: the apiserver goes before etcd, the directory last.
    apiserver: Process,
    etcd: Process,
    etcd_port: u16,
    url: String,
    client: Client,
    dir: tempfile::TempDir,
}

/// The ports [`free_port`] hands out: below Linux's ephemeral range (32768–60999 by
/// default), from which the kernel picks the local port of every outgoing connection.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// Returns a port that was free a moment ago on 127.0.0.1, never the same one twice in a
/// process. Not from the ephemeral range: a port taken from there (`bind` to port 0) could be
/// given to an outgoing connection before its server binds it — etcd once failed so in CI
/// ("address already in use"). Here only another process binding the same port could, and
/// each process starts at a different place.
pub fn free_port() -> Result<u16, std::io::Error> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(PORTS.end - PORTS.start);
    // Where this process starts: spread by its process id and the time.
    let seed = std::process::id()
        ^ (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH))
            .map_or(0, |d| d.subsec_nanos());
    let _ = NEXT.compare_exchange(u32::MAX, seed % span, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let port = PORTS.start + u16::try_from(offset).expect("the span fits a port");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free port between 20000 and 32000 on 127.0.0.1",
    ))
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("url", &self.url)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// Options for [`TestCluster::start_with`].
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Record every write (create, update, patch, delete) in an audit log readable through
    /// [`TestCluster::audited_writes`], so tests can count writes from the apiserver's side.
    pub audit_writes: bool,
    /// Record every request (reads and watches too) in the audit log, readable through
    /// [`TestCluster::audited_requests`]: what a run needed, to compare with what RBAC grants.
    pub audit_requests: bool,
    /// Sized for the scale benchmarks: Service ranges of a million ClusterIPs per family
    /// (a /12 and a /108, the largest kube-apiserver accepts; the default /16 and /112 hold
    /// 65,536) and etcd's quota at 8 GiB (the default 2 GiB fills with 100,000 Services, their
    /// writes and Events before the API server's compaction catches up).
    pub scale: bool,
}

/// One request as the apiserver's audit log recorded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditedRequest {
    #[serde(default, rename = "auditID")]
    pub audit_id: String,
    pub verb: String,
    #[serde(default, rename = "requestURI")]
    pub request_uri: String,
    /// Audit annotations, e.g. `authorization.k8s.io/decision` (`allow` or `forbid`).
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    pub user: AuditUser,
    #[serde(default)]
    pub object_ref: Option<AuditObject>,
    #[serde(default)]
    pub response_status: Option<AuditStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct AuditUser {
    pub username: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditObject {
    #[serde(default)]
    pub api_group: Option<String>,
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub subresource: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct AuditStatus {
    #[serde(default)]
    pub code: u16,
}

const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
";

const AUDIT_EVERYTHING_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
";

impl TestCluster {
    /// Starts etcd and the apiserver and waits until the apiserver is ready and has created
    /// the `default` namespace.
    pub async fn start() -> Result<Self, ClusterError> {
        Self::start_with(ClusterOptions::default()).await
    }

    /// [`TestCluster::start`] with options.
    pub async fn start_with(options: ClusterOptions) -> Result<Self, ClusterError> {
        let apiserver_bin = Tool::KubeApiserver.path()?;
        let etcd_bin = Tool::Etcd.path()?;
        let dir = tempfile::Builder::new()
            .prefix("bmccm-cluster-")
            .tempdir()
            .map_err(io_err(Path::new("/tmp")))?;
        let root = dir.path().to_owned();
        let port = |_| free_port().map_err(io_err(&root));

        let (etcd_client, etcd_peer, secure_port) = (port(())?, port(())?, port(())?);
        let etcd = start_etcd(&etcd_bin, &root, etcd_client, etcd_peer, options.scale)?;
        write_credentials(&root)?;
        let apiserver = start_apiserver(&apiserver_bin, &root, etcd_client, secure_port, &options)?;
        let url = format!("https://127.0.0.1:{secure_port}");
        write_kubeconfig(
            &root.join("admin.kubeconfig"),
            &url,
            &root.join("ca.crt"),
            ADMIN_TOKEN,
        )?;
        let client = client_from_kubeconfig(&root.join("admin.kubeconfig")).await?;
        let mut cluster = Self {
            apiserver,
            etcd,
            etcd_port: etcd_client,
            url,
            client,
            dir,
        };
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    async fn wait_ready(&mut self) -> Result<(), ClusterError> {
        let client = self.client.clone();
        let ready = wait_for(START_TIMEOUT, || {
            let client = client.clone();
            async move {
                let request = http_get("/readyz");
                let ok =
                    matches!(client.request_text(request).await, Ok(body) if body.trim() == "ok");
                let namespaces: Api<Namespace> = Api::all(client);
                (ok && matches!(namespaces.get_opt("default").await, Ok(Some(_)))).then_some(())
            }
        })
        .await;
        if ready.is_none() {
            let log = if self.etcd.is_running() {
                self.apiserver.log_tail(4000)
            } else {
                self.etcd.log_tail(4000)
            };
            return Err(ClusterError::NotReady {
                what: "kube-apiserver",
                seconds: START_TIMEOUT.as_secs(),
                log,
            });
        }
        Ok(())
    }

    /// A client authenticated as a cluster administrator (group `system:masters`).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The apiserver's URL, `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CPU time the API server and etcd have used so far (benchmarks: what a phase cost
    /// them).
    pub fn cpu_times(&self) -> (Duration, Duration) {
        (
            crate::measure::cpu_time(self.apiserver.pid()),
            crate::measure::cpu_time(self.etcd.pid()),
        )
    }

    /// Writes straight into this cluster's etcd, past the API server (benchmarks' setup).
    pub fn etcd(&self) -> crate::etcd::Etcd {
        crate::etcd::Etcd {
            port: self.etcd_port,
        }
    }

    /// A kubeconfig file for the admin, for processes under test (`--kubeconfig`).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// The apiserver's log file, for diagnosing failures.
    pub fn apiserver_log(&self) -> &Path {
        self.apiserver.log_path()
    }

    /// Creates (if needed) a ServiceAccount and returns a kubeconfig and client that use a
    /// token issued for it through the TokenRequest API, so RBAC applies as in a real pod.
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<(PathBuf, Client), ClusterError> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client(), namespace);
        if accounts.get_opt(name).await?.is_none() {
            let account = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            };
            accounts.create(&PostParams::default(), &account).await?;
        }
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let issued = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await?;
        let token = issued
            .status
            .and_then(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ClusterError::NoToken {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })?;
        let path = self
            .dir
            .path()
            .join(format!("sa-{namespace}-{name}.kubeconfig"));
        write_kubeconfig(&path, &self.url, &self.dir.path().join("ca.crt"), &token)?;
        let client = client_from_kubeconfig(&path).await?;
        Ok((path, client))
    }

    /// A client with the token the kubelet would give a pod of `account` running on `node`:
    /// bound to a Pod (created here, `<account>-<node>`, scheduled to `node`), so the API
    /// server authenticates it with the node's name in the user's extra
    /// (`authentication.kubernetes.io/node-name`), as admission policies see it.
    pub async fn pod_service_account_client(
        &self,
        namespace: &str,
        account: &str,
        node: &str,
    ) -> Result<(PathBuf, Client), ClusterError> {
        use k8s_openapi::api::authentication::v1::BoundObjectReference;
        use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client(), namespace);
        if accounts.get_opt(account).await?.is_none() {
            let object = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(account.to_owned()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            };
            accounts.create(&PostParams::default(), &object).await?;
        }
        let pod_name = format!("{account}-{node}");
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(pod_name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.to_owned()),
                service_account_name: Some(account.to_owned()),
                automount_service_account_token: Some(false),
                containers: vec![Container {
                    name: "main".into(),
                    image: Some("registry.invalid/never-pulled:0".into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        let pod = Api::<Pod>::namespaced(self.client(), namespace)
            .create(&PostParams::default(), &pod)
            .await?;
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(pod_name.clone()),
                    uid: pod.metadata.uid.clone(),
                }),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let issued = accounts
            .create_token_request(account, &PostParams::default(), &request)
            .await?;
        let token = (issued.status.and_then(|s| s.token))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ClusterError::NoToken {
                namespace: namespace.to_owned(),
                name: account.to_owned(),
            })?;
        let path = self
            .dir
            .path()
            .join(format!("sa-{namespace}-{pod_name}.kubeconfig"));
        write_kubeconfig(&path, &self.url, &self.dir.path().join("ca.crt"), &token)?;
        let client = client_from_kubeconfig(&path).await?;
        Ok((path, client))
    }

    /// Every write the apiserver has completed so far (needs [`ClusterOptions::audit_writes`]
    /// or [`ClusterOptions::audit_requests`]). With the blocking audit mode a write is logged
    /// before its response is sent.
    pub fn audited_writes(&self) -> Result<Vec<AuditedRequest>, ClusterError> {
        const WRITES: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];
        let mut requests = self.audited_requests()?;
        requests.retain(|r| WRITES.contains(&r.verb.as_str()));
        Ok(requests)
    }

    /// Every request logged so far, once each (needs [`ClusterOptions::audit_requests`] for
    /// reads): a watch is logged when its response starts and again when it ends.
    pub fn audited_requests(&self) -> Result<Vec<AuditedRequest>, ClusterError> {
        let path = self.dir.path().join("audit.log");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(ClusterError::Io { path, source }),
        };
        let mut seen = std::collections::BTreeSet::new();
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str::<AuditedRequest>(line).ok())
            .filter(|r| r.audit_id.is_empty() || seen.insert(r.audit_id.clone()))
            .collect())
    }

    /// Installs CRDs and waits until each is Established.
    pub async fn install_crds(
        &self,
        crds: &[CustomResourceDefinition],
    ) -> Result<(), ClusterError> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client());
        for crd in crds {
            api.create(&PostParams::default(), crd).await?;
        }
        for crd in crds {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let established = wait_for(Duration::from_secs(30), || {
                let (api, name) = (api.clone(), name.clone());
                async move {
                    let crd = api.get_opt(&name).await.ok().flatten()?;
                    let conditions = crd.status?.conditions?;
                    conditions
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                }
            })
            .await;
            if established.is_none() {
                return Err(ClusterError::NotReady {
                    what: "CustomResourceDefinition",
                    seconds: 30,
                    log: name,
                });
            }
        }
        Ok(())
    }

    /// Installs every CRD in the project's `manifests/crds/` directory.
    pub async fn install_project_crds(&self) -> Result<Vec<String>, ClusterError> {
        let crds = project_crds()?;
        self.install_crds(&crds).await?;
        Ok(crds.into_iter().filter_map(|c| c.metadata.name).collect())
    }
}

/// The CRDs committed in `manifests/crds/*.yaml`.
pub fn project_crds() -> Result<Vec<CustomResourceDefinition>, ClusterError> {
    let dir = crate::tools::repo_root().join("manifests/crds");
    let mut crds = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(crds);
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value =
                serde_yaml::Value::deserialize(document).map_err(|source| ClusterError::Yaml {
                    path: path.clone(),
                    source,
                })?;
            if value.is_null() {
                continue;
            }
            let crd = serde_yaml::from_value(value).map_err(|source| ClusterError::Yaml {
                path: path.clone(),
                source,
            })?;
            crds.push(crd);
        }
    }
    Ok(crds)
}

use serde::Deserialize as _;

fn http_get(path: &str) -> http::Request<Vec<u8>> {
    http::Request::get(path)
        .body(Vec::new())
        .expect("a GET with a static path is a valid request")
}

fn start_etcd(
    bin: &Path,
    root: &Path,
    client: u16,
    peer: u16,
    scale: bool,
) -> Result<Process, ClusterError> {
    let data = root.join("etcd");
    let mut cmd = Command::new(bin);
    cmd.arg("--name=rig")
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
        .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
        ))
        .arg(format!("--initial-cluster=rig=http://127.0.0.1:{peer}"))
        .arg("--unsafe-no-fsync=true")
        .arg("--log-level=warn");
    if scale {
        cmd.arg(format!("--quota-backend-bytes={}", 8u64 << 30));
    }
    Ok(Process::spawn("etcd", cmd, &root.join("etcd.log"))?)
}

fn write_credentials(root: &Path) -> Result<(), ClusterError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "baremetal-ccm rig CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let serving_cert = serving.signed_by(&serving_key, &ca)?;

    let service_account_key = KeyPair::generate()?;
    let files = [
        ("ca.crt", ca.pem()),
        ("apiserver.crt", serving_cert.pem()),
        ("apiserver.key", serving_key.serialize_pem()),
        ("sa.key", service_account_key.serialize_pem()),
        ("sa.pub", service_account_key.public_key_pem()),
        (
            "tokens.csv",
            format!("{ADMIN_TOKEN},rig-admin,rig-admin-uid,\"system:masters\"\n"),
        ),
    ];
    for (name, content) in files {
        let path = root.join(name);
        std::fs::write(&path, content).map_err(io_err(&path))?;
    }
    Ok(())
}

fn start_apiserver(
    bin: &Path,
    root: &Path,
    etcd_port: u16,
    secure_port: u16,
    options: &ClusterOptions,
) -> Result<Process, ClusterError> {
    let p = |name: &str| root.join(name).display().to_string();
    let mut cmd = Command::new(bin);
    if options.audit_writes || options.audit_requests {
        let policy = root.join("audit-policy.yaml");
        let text = if options.audit_requests {
            AUDIT_EVERYTHING_POLICY
        } else {
            AUDIT_POLICY
        };
        std::fs::write(&policy, text).map_err(io_err(&policy))?;
        cmd.arg(format!("--audit-policy-file={}", policy.display()))
            .arg(format!("--audit-log-path={}", p("audit.log")))
            .arg("--audit-log-mode=blocking")
            .arg("--audit-log-format=json");
    }
    cmd.arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
        .arg(format!("--secure-port={secure_port}"))
        .arg("--bind-address=127.0.0.1")
        .arg("--advertise-address=127.0.0.1")
        .arg(format!("--cert-dir={}", p("certs")))
        .arg(format!("--tls-cert-file={}", p("apiserver.crt")))
        .arg(format!("--tls-private-key-file={}", p("apiserver.key")))
        .arg(format!("--client-ca-file={}", p("ca.crt")))
        .arg(format!("--token-auth-file={}", p("tokens.csv")))
        .arg("--authorization-mode=RBAC")
        .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
        .arg(format!("--service-account-key-file={}", p("sa.pub")))
        .arg(format!(
            "--service-account-signing-key-file={}",
            p("sa.key")
        ))
        // Dual-stack ranges to allocate ClusterIPs from (so dual-stack Services are accepted);
        // no traffic goes there.
        .arg(if options.scale {
            "--service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/108"
        } else {
            "--service-cluster-ip-range=10.96.0.0/16,fd00:10:96::/112"
        })
        .arg("--allow-privileged=true")
        .arg("--disable-admission-plugins=ServiceAccount")
        .arg("--v=1");
    Ok(Process::spawn(
        "kube-apiserver",
        cmd,
        &root.join("apiserver.log"),
    )?)
}

fn write_kubeconfig(path: &Path, url: &str, ca: &Path, token: &str) -> Result<(), ClusterError> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: rig\n  cluster:\n    server: {url}\n    certificate-authority: {ca}\n\
         users:\n- name: rig\n  user:\n    token: {token}\ncontexts:\n- name: rig\n  context:\n    cluster: rig\n    user: rig\n    namespace: default\n\
         current-context: rig\n",
        ca = ca.display()
    );
    std::fs::write(path, text).map_err(io_err(path))
}

/// Builds a client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> Result<Client, ClusterError> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}
