//! Least privilege from the API server's side: what RBAC documents grant each ServiceAccount,
//! expanded rule by rule, against what an audited run actually asked for.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::cluster::{AuditedRequest, TestCluster};

/// One verb on one resource, granted to one ServiceAccount cluster-wide (`namespace: None`) or
/// in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub account: String,
    pub namespace: Option<String>,
    pub group: String,
    /// `resource` or `resource/subresource`.
    pub resource: String,
    pub verb: String,
    /// `resourceNames`, when the rule has them.
    pub names: Vec<String>,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = self.namespace.as_deref().unwrap_or("cluster-wide");
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(
            f,
            "{}: {} {}/{} ({scope})",
            self.account, self.verb, group, self.resource
        )?;
        if !self.names.is_empty() {
            write!(f, " names {:?}", self.names)?;
        }
        Ok(())
    }
}

/// `system:serviceaccount:<namespace>:<name>`.
pub fn user_of(account: &str) -> String {
    format!("system:serviceaccount:{}", account.replace('/', ":"))
}

/// Every grant the (Cluster)Role(Binding)s of `documents` give to ServiceAccounts.
pub fn grants(documents: &[serde_json::Value]) -> Vec<Grant> {
    let role = |kind: &str, name: &str, namespace: Option<&str>| {
        documents.iter().find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"] == name
                && (kind == "ClusterRole" || d["metadata"]["namespace"].as_str() == namespace)
        })
    };
    let strings = |value: &serde_json::Value| -> Vec<String> {
        (value.as_array().into_iter().flatten())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let mut out = BTreeSet::new();
    for binding in documents {
        let namespace = match binding["kind"].as_str() {
            Some("ClusterRoleBinding") => None,
            Some("RoleBinding") => binding["metadata"]["namespace"].as_str(),
            _ => continue,
        };
        let reference = &binding["roleRef"];
        let kind = reference["kind"].as_str().expect("roleRef.kind");
        let name = reference["name"].as_str().expect("roleRef.name");
        let Some(role) = role(kind, name, namespace) else {
            panic!("{kind} {name} bound but not shipped");
        };
        let subjects = (binding["subjects"].as_array().into_iter().flatten())
            .filter(|s| s["kind"] == "ServiceAccount")
            .map(|s| {
                format!(
                    "{}/{}",
                    s["namespace"].as_str().expect("subject namespace"),
                    s["name"].as_str().expect("subject name")
                )
            })
            .collect::<Vec<_>>();
        for rule in role["rules"].as_array().into_iter().flatten() {
            for account in &subjects {
                for group in strings(&rule["apiGroups"]) {
                    for resource in strings(&rule["resources"]) {
                        for verb in strings(&rule["verbs"]) {
                            out.insert(Grant {
                                account: account.clone(),
                                namespace: namespace.map(str::to_owned),
                                group: group.clone(),
                                resource: resource.clone(),
                                verb,
                                names: strings(&rule["resourceNames"]),
                            });
                        }
                    }
                }
            }
        }
    }
    out.into_iter().collect()
}

fn resource_of(request: &AuditedRequest) -> Option<(String, String, Option<&str>, Option<&str>)> {
    let object = request.object_ref.as_ref()?;
    let resource = match &object.subresource {
        Some(sub) => format!("{}/{sub}", object.resource),
        None => object.resource.clone(),
    };
    Some((
        object.api_group.clone().unwrap_or_default(),
        resource,
        object.namespace.as_deref(),
        object.name.as_deref(),
    ))
}

/// Whether `request` is one `grant` allows.
fn allows(grant: &Grant, request: &AuditedRequest) -> bool {
    let Some((group, resource, namespace, name)) = resource_of(request) else {
        return false;
    };
    request.user.username == user_of(&grant.account)
        && request.verb == grant.verb
        && group == grant.group
        && resource == grant.resource
        && (grant.namespace.is_none() || grant.namespace.as_deref() == namespace)
        && (grant.names.is_empty() || name.is_some_and(|n| grant.names.iter().any(|g| g == n)))
}

/// The grants no request of the run used.
pub fn unused(grants: &[Grant], requests: &[AuditedRequest]) -> Vec<String> {
    (grants.iter())
        .filter(|g| !requests.iter().any(|r| allows(g, r)))
        .map(ToString::to_string)
        .collect()
}

/// Requests of `accounts` that RBAC refused (not those an admission policy refused).
pub fn forbidden(accounts: &[&str], requests: &[AuditedRequest]) -> Vec<String> {
    let users: Vec<String> = accounts.iter().map(|a| user_of(a)).collect();
    (requests.iter())
        .filter(|r| users.contains(&r.user.username))
        .filter(|r| {
            r.annotations
                .get("authorization.k8s.io/decision")
                .is_some_and(|d| d == "forbid")
        })
        .map(|r| format!("{} {} {}", r.user.username, r.verb, r.request_uri))
        .collect()
}

/// Binds a ServiceAccount to `cluster-admin` (the controller's own RBAC arrives with its manifests).
pub async fn make_cluster_admin(client: &Client, namespace: &str, account: &str) {
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("{account}-admin")),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.into(),
            namespace: Some(namespace.into()),
            ..Subject::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding created");
}

/// Kubeconfigs of ServiceAccounts `kube-system/<name>` bound to `cluster-admin`, one per
/// name: replicas whose writes the audit log tells apart.
pub async fn admin_accounts(cluster: &TestCluster, names: &[&str]) -> Vec<PathBuf> {
    let mut kubeconfigs = Vec::new();
    for name in names {
        let (kubeconfig, _) = cluster
            .service_account_client("kube-system", name)
            .await
            .expect("the ServiceAccount and its token are created");
        make_cluster_admin(&cluster.client(), "kube-system", name).await;
        kubeconfigs.push(kubeconfig);
    }
    kubeconfigs
}

/// The bearer token of a kubeconfig the rig wrote.
pub fn token_of(kubeconfig: &Path) -> String {
    let text = std::fs::read_to_string(kubeconfig).expect("the kubeconfig exists");
    let config: serde_json::Value = serde_yaml::from_str(&text).expect("valid YAML");
    (config["users"][0]["user"]["token"].as_str())
        .expect("a token user")
        .to_owned()
}
