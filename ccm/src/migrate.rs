//! `baremetal-ccm migrate metallb`: reads MetalLB's configuration (from files or from the
//! cluster), prints the equivalent `IPPool` and `BGPPeer` objects with a report of what maps
//! exactly, approximately or not at all; with `--dry-run`, what would become of every
//! LoadBalancer Service under that configuration. It never writes to the cluster.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use baremetal_ccm_core::migrate::metallb::{self, Converted, Options};
use baremetal_ccm_core::service_lb::class::ClassPolicy;
use baremetal_ccm_core::service_lb::request::Reading;
use baremetal_ccm_core::service_lb::takeover;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use kube::{Client, ResourceExt as _};

use crate::cli::MigrateMetallbArgs;

/// Exit status: the report names configuration with no equivalent (without
/// `--skip-unsupported`), or the dry run found a Service whose address would move.
pub(crate) const EXIT_BLOCKED: u8 = 2;

/// MetalLB's kinds read from the cluster: (group, version, kind, plural).
const KINDS: [(&str, &str, &str, &str); 6] = [
    ("metallb.io", "v1beta1", "IPAddressPool", "ipaddresspools"),
    (
        "metallb.io",
        "v1beta1",
        "L2Advertisement",
        "l2advertisements",
    ),
    (
        "metallb.io",
        "v1beta1",
        "BGPAdvertisement",
        "bgpadvertisements",
    ),
    ("metallb.io", "v1beta2", "BGPPeer", "bgppeers"),
    ("metallb.io", "v1beta1", "Community", "communities"),
    ("metallb.io", "v1beta1", "BFDProfile", "bfdprofiles"),
];

/// Runs the command; the process's exit status.
pub(crate) async fn run(args: MigrateMetallbArgs) -> anyhow::Result<u8> {
    let client = if args.from_cluster || args.dry_run {
        Some(crate::apiserver::client(&args.kube).await?)
    } else {
        None
    };
    let mut objects = Vec::new();
    for path in &args.files {
        objects.extend(read_path(path)?);
    }
    if args.from_cluster {
        let client = client.as_ref().expect("a client for --from-cluster");
        objects.extend(read_cluster(client, &args.metallb_namespace).await?);
    }
    anyhow::ensure!(
        !objects.is_empty(),
        "no MetalLB configuration read: give files (-f) or --from-cluster"
    );
    let options = Options {
        bgp_password_namespace: args.bgp_password_namespace.clone(),
    };
    let converted = metallb::convert(&objects, &options);
    let report = metallb::render_report(&converted.report);
    let mut stderr = std::io::stderr().lock();
    stderr.write_all(report.as_bytes())?;
    let blocked = converted.report.blocking() && !args.skip_unsupported;
    if blocked {
        writeln!(
            stderr,
            "\nSome of MetalLB's configuration has no equivalent (the no-equivalent lines above): nothing printed. \
             Change it, or pass --skip-unsupported to convert the rest."
        )?;
        return Ok(EXIT_BLOCKED);
    }
    if args.dry_run {
        let client = client.as_ref().expect("a client for --dry-run");
        return dry_run(client, &converted, args.lb_class_only).await;
    }
    std::io::stdout()
        .lock()
        .write_all(metallb::render_objects(&converted).as_bytes())?;
    Ok(0)
}

/// Reads one YAML or JSON file (several documents allowed), or every `*.yaml`, `*.yml` and
/// `*.json` file of a directory (sorted).
fn read_path(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = (std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?)
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
        files.sort();
        let mut objects = Vec::new();
        for file in files {
            objects.extend(read_path(&file)?);
        }
        return Ok(objects);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_documents(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Every non-empty document of a YAML stream (JSON is YAML); a `List` is unpacked.
fn parse_documents(text: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value: serde_json::Value = serde::Deserialize::deserialize(document)?;
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::Object(ref map)
                if map.get("kind").and_then(|k| k.as_str()) == Some("List") =>
            {
                if let Some(items) = map.get("items").and_then(|i| i.as_array()) {
                    objects.extend(items.iter().cloned());
                }
            }
            other => objects.push(other),
        }
    }
    Ok(objects)
}

/// MetalLB's objects in `namespace`, and its legacy ConfigMap `config` there if any. A kind
/// whose CRD is not installed is skipped.
async fn read_cluster(client: &Client, namespace: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut objects = Vec::new();
    for (group, version, kind, plural) in KINDS {
        let resource = ApiResource {
            group: group.to_owned(),
            version: version.to_owned(),
            api_version: format!("{group}/{version}"),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                for mut item in list.items {
                    item.types = Some(kube::api::TypeMeta {
                        api_version: resource.api_version.clone(),
                        kind: kind.to_owned(),
                    });
                    objects.push(serde_json::to_value(&item)?);
                }
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                tracing::info!(kind, "not installed in the cluster: skipped");
            }
            Err(error) => return Err(error).with_context(|| format!("listing MetalLB's {kind}s")),
        }
    }
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    if let Some(mut legacy) = maps
        .get_opt("config")
        .await
        .context("reading MetalLB's ConfigMap")?
    {
        legacy.managed_fields_mut().clear();
        let mut value = serde_json::to_value(&legacy)?;
        value["apiVersion"] = "v1".into();
        value["kind"] = "ConfigMap".into();
        objects.push(value);
    }
    Ok(objects)
}

/// Prints what would become of every LoadBalancer Service under the converted pools; non-zero
/// when one would move.
async fn dry_run(
    client: &Client,
    converted: &Converted,
    lb_class_only: bool,
) -> anyhow::Result<u8> {
    let services: Vec<Arc<Service>> = (Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await
        .context("listing Services")?)
    .items
    .into_iter()
    .map(Arc::new)
    .collect();
    let labels: BTreeMap<String, BTreeMap<String, String>> =
        (Api::<Namespace>::all(client.clone())
            .list(&ListParams::default())
            .await
            .context("listing Namespaces")?)
        .items
        .into_iter()
        .map(|n| (n.name_any(), n.labels().clone()))
        .collect();
    let namespaces = |name: &str| labels.get(name).cloned().unwrap_or_default();
    let pools: Vec<Arc<_>> = converted.pools.iter().cloned().map(Arc::new).collect();
    let policy = if lb_class_only {
        ClassPolicy::ExplicitOnly
    } else {
        ClassPolicy::DefaultAndExplicit
    };
    let forecasts = takeover::forecast(
        &pools,
        &namespaces,
        &services,
        policy,
        Reading { metallb: true },
    );
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "SERVICE\tHOLDS\tUNDER THE CONVERTED CONFIGURATION\tDETAIL"
    )?;
    for forecast in &forecasts {
        writeln!(out, "{forecast}")?;
    }
    let tally: Vec<String> = (takeover::tally(&forecasts).into_iter())
        .map(|(label, n)| format!("{label} {n}"))
        .collect();
    writeln!(
        out,
        "\n{} LoadBalancer Services: {}",
        forecasts.len(),
        tally.join(", ")
    )?;
    if takeover::clean(&forecasts) {
        writeln!(out, "No address moves: the takeover is clean.")?;
        Ok(0)
    } else {
        writeln!(
            out,
            "Some addresses would move (MOVED above): do not switch yet."
        )?;
        Ok(EXIT_BLOCKED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_lists_are_read_and_empty_ones_skipped() {
        let text = "---\nkind: IPAddressPool\nmetadata: {name: a}\n---\n---\nkind: List\nitems:\n- {kind: BGPPeer}\n- {kind: Community}\n";
        let objects = parse_documents(text).unwrap();
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["IPAddressPool", "BGPPeer", "Community"]);
        assert!(parse_documents("kind: [unclosed").is_err());
    }
}
