//! Running the pinned `helm` on the chart: lint, render, and the values schema.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rig::tools::Tool;
use serde::Deserialize as _;
use serde_json::Value;

use super::repo;

pub(crate) fn chart_dir() -> PathBuf {
    repo().join("charts/baremetal-ccm")
}

/// The value sets the chart is checked with: the defaults (no file) and every
/// `charts/baremetal-ccm/ci/*.yaml`.
pub(crate) fn value_sets() -> Vec<Option<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("ci"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "the chart's CI value sets: {files:?}");
    std::iter::once(None)
        .chain(files.into_iter().map(Some))
        .collect()
}

pub(crate) fn name(values: Option<&Path>) -> String {
    values.map_or("default values".to_owned(), |p| p.display().to_string())
}

/// Runs the pinned helm with `args`, with a cache and configuration of its own and no
/// kubeconfig (nothing here may reach a developer's cluster).
pub(crate) fn helm(args: &[&str]) -> Output {
    helm_with_kubeconfig(args, None)
}

/// [`helm`] against the cluster of `kubeconfig` (a test cluster's), if any.
pub(crate) fn helm_with_kubeconfig(args: &[&str], kubeconfig: Option<&Path>) -> Output {
    let home = tempfile::tempdir().unwrap();
    let none = home.path().join("no-kubeconfig");
    Command::new(Tool::Helm.path().unwrap())
        .args(args)
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .env("KUBECONFIG", kubeconfig.unwrap_or(&none))
        .output()
        .unwrap()
}

fn values_args(values: &[&Path]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| ["--values".to_owned(), v.display().to_string()])
        .collect()
}

/// `helm template` of the chart with the values files, as YAML documents; panics with helm's
/// message when it fails.
pub(crate) fn render(values: &[&Path]) -> Vec<Value> {
    let output = render_output(values);
    assert!(
        output.status.success(),
        "helm template with {values:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    documents(&String::from_utf8(output.stdout).unwrap())
}

pub(crate) fn render_output(values: &[&Path]) -> Output {
    helm(
        &template_args(values)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
}

fn template_args(values: &[&Path]) -> Vec<String> {
    let chart = chart_dir().display().to_string();
    let mut args = vec![
        "template".to_owned(),
        "baremetal-ccm".to_owned(),
        chart,
        "--namespace".to_owned(),
        "kube-system".to_owned(),
    ];
    args.extend(values_args(values));
    args
}

/// [`render`] as `helm upgrade` renders against the cluster of `kubeconfig`: with
/// `--dry-run=server`, so that the templates' `lookup` reads that cluster.
pub(crate) fn render_against(kubeconfig: &Path, values: &[&Path]) -> Vec<Value> {
    let mut args = template_args(values);
    args.push("--dry-run=server".to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = helm_with_kubeconfig(&args, Some(kubeconfig));
    assert!(
        output.status.success(),
        "helm template --dry-run=server failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    documents(&String::from_utf8(output.stdout).unwrap())
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("helm renders valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// A values file with `text`, kept as long as the returned directory.
pub(crate) fn values_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("values.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn helm_lint_strict_passes_with_every_value_set() {
    for values in value_sets() {
        let chart = chart_dir().display().to_string();
        let mut args = vec!["lint".to_owned(), "--strict".to_owned(), chart];
        args.extend(values_args(
            values.as_deref().into_iter().collect::<Vec<_>>().as_slice(),
        ));
        let output = helm(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            output.status.success(),
            "helm lint --strict with {}: {}{}",
            name(values.as_deref()),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_values_schema_refuses_bad_values_naming_the_field() {
    // Each: a values file and what helm's answer must name.
    let cases = [
        ("controller:\n  replicass: 3\n", "replicass"),
        ("controller:\n  kind: StatefulSet\n", "kind"),
        (
            "controller:\n  controllers: [\"*\", \"-bgp\"]\n",
            "controllers",
        ),
        ("speaker:\n  extraArgs: [\"bgp-asn=1\"]\n", "extraArgs"),
        ("image:\n  digest: latest\n", "digest"),
        ("cloudConfig:\n  provider: aws\n", "provider"),
        (
            "cloudConfig:\n  provider: static\n  static:\n    defaults: {zonne: a}\n",
            "zonne",
        ),
        // The OpenNebula provider without its settings.
        ("cloudConfig:\n  provider: opennebula\n", "opennebula"),
        ("crds:\n  install: \"yes\"\n", "install"),
        ("nodeSelector: {}\n", "nodeSelector"),
        // A gossip port below 1024 would need NET_BIND_SERVICE, which the speaker lacks.
        ("speaker:\n  l2:\n    gossipPort: 500\n", "gossipPort"),
        (
            "speaker:\n  l2:\n    existingSecret: My_Key\n",
            "existingSecret",
        ),
    ];
    for (text, field) in cases {
        let (_dir, path) = values_file(text);
        for output in [
            render_output(&[&path]),
            helm(&[
                "lint",
                "--strict",
                &chart_dir().display().to_string(),
                "--values",
                &path.display().to_string(),
            ]),
        ] {
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(
                !output.status.success(),
                "helm accepted the values {text:?}: {said}"
            );
            assert!(
                said.contains(field) && said.contains("schema"),
                "helm's answer to {text:?} does not name {field} as a schema error: {said}"
            );
        }
    }
}

#[test]
fn the_chart_ships_the_generated_crds_unchanged() {
    let chart = std::fs::read_to_string(chart_dir().join("files/crds.yaml")).unwrap();
    let generated = std::fs::read_to_string(repo().join("manifests/crds/crds.yaml")).unwrap();
    assert!(
        chart == generated,
        "charts/baremetal-ccm/files/crds.yaml differs from manifests/crds/crds.yaml (the output of \
         `baremetal-ccm crd`): cp manifests/crds/crds.yaml charts/baremetal-ccm/files/crds.yaml"
    );
}

/// The command line a container's program sees: its arguments, and its `BAREMETAL_CCM_*`
/// variables as the flags they set (a variable no flag reads is a failure).
fn command_line(command: &clap::Command, container: &Value) -> Vec<String> {
    let mut argv = vec!["baremetal-ccm".to_owned()];
    argv.extend(
        (container["args"].as_array().unwrap().iter()).map(|a| a.as_str().unwrap().to_owned()),
    );
    let subcommand = command.find_subcommand(&argv[1]).expect("a subcommand");
    for variable in container["env"].as_array().into_iter().flatten() {
        let name = variable["name"].as_str().unwrap();
        if !name.starts_with("BAREMETAL_CCM_") {
            continue;
        }
        let flag = (subcommand.get_arguments())
            .find(|a| a.get_env().is_some_and(|e| e == name))
            .and_then(|a| a.get_long())
            .unwrap_or_else(|| panic!("{name} is read by no flag of {}", argv[1]));
        // A value from the downward API: any value of the right shape.
        let value = variable["value"].as_str().unwrap_or("node-1");
        argv.push(format!("--{flag}={value}"));
    }
    argv
}

#[test]
fn the_chart_sets_only_flags_the_program_has() {
    use clap::CommandFactory as _;
    let mut command = baremetal_ccm::Cli::command();
    command.build();
    let mut checked = 0;
    for values in value_sets() {
        for doc in render(values.as_deref().into_iter().collect::<Vec<_>>().as_slice()) {
            let Some(containers) = doc["spec"]["template"]["spec"]["containers"].as_array() else {
                continue;
            };
            for container in containers.iter().filter(|c| c["name"] != "gobgpd") {
                let argv = command_line(&command, container);
                let parsed = command.clone().try_get_matches_from(&argv);
                assert!(
                    parsed.is_ok(),
                    "{}: the program refuses {argv:?}: {}",
                    name(values.as_deref()),
                    parsed.unwrap_err()
                );
                checked += 1;
            }
        }
    }
    // The controller in every set, the speaker in two.
    assert!(checked >= 5, "{checked} containers checked");
}

/// `speaker.l2.realtimeReplies` adds `--l2-reply-realtime` and CAP_SYS_NICE to the speaker,
/// `speaker.l2.inKernelReplies` adds `--l2-reply-in-kernel`, CAP_BPF and CAP_NET_ADMIN, and
/// nothing without them.
#[test]
fn real_time_and_in_kernel_replies_add_their_flags_and_capabilities_only_when_asked() {
    let mut seen = [0, 0];
    for values in value_sets() {
        let path: Vec<&Path> = values.as_deref().into_iter().collect();
        let text = (values.as_deref()).map(|p| std::fs::read_to_string(p).unwrap());
        let asked = text
            .as_deref()
            .is_some_and(|t| t.contains("realtimeReplies: true"));
        let in_kernel = text
            .as_deref()
            .is_some_and(|t| t.contains("inKernelReplies: true"));
        for doc in render(&path) {
            let Some(containers) = doc["spec"]["template"]["spec"]["containers"].as_array() else {
                continue;
            };
            for speaker in containers.iter().filter(|c| c["args"][0] == "speaker") {
                let args = speaker["args"].as_array().unwrap();
                let flag = args.iter().any(|a| a == "--l2-reply-realtime");
                let in_kernel_flag = args.iter().any(|a| a == "--l2-reply-in-kernel");
                let added = &speaker["securityContext"]["capabilities"]["add"];
                let mut expected = vec!["NET_RAW"];
                if asked {
                    expected.push("SYS_NICE");
                }
                if in_kernel {
                    expected.extend(["BPF", "NET_ADMIN"]);
                }
                assert_eq!(flag, asked, "{}", name(values.as_deref()));
                assert_eq!(in_kernel_flag, in_kernel, "{}", name(values.as_deref()));
                assert_eq!(
                    added,
                    &serde_json::json!(expected),
                    "{}",
                    name(values.as_deref())
                );
                seen[usize::from(asked)] += 1;
            }
        }
    }
    assert!(
        seen[0] > 0 && seen[1] > 0,
        "speakers rendered without and with: {seen:?}"
    );
}

#[test]
fn the_notes_render_for_every_value_set() {
    for values in value_sets() {
        let chart = chart_dir().display().to_string();
        let mut args: Vec<String> = [
            "install",
            "baremetal-ccm",
            &chart,
            "--namespace",
            "kube-system",
        ]
        .map(str::to_owned)
        .into();
        args.push("--dry-run=client".to_owned());
        args.extend(values_args(
            values.as_deref().into_iter().collect::<Vec<_>>().as_slice(),
        ));
        let output = helm(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}: {}",
            name(values.as_deref()),
            String::from_utf8_lossy(&output.stderr)
        );
        let notes = text.split("NOTES:").nth(1).expect("NOTES are shown");
        assert!(notes.contains("is installed in kube-system"), "{notes}");
    }
}

fn schema() -> Value {
    let text = std::fs::read_to_string(chart_dir().join("values.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_schema_knows_exactly_the_controllers_the_program_has() {
    // The names `--controllers` takes, as the program spells them (`Controller::name`).
    let source = std::fs::read_to_string(repo().join("ccm/src/controller/selection.rs")).unwrap();
    let program: std::collections::BTreeSet<String> = (source.lines())
        .filter_map(|l| l.trim().strip_prefix("Controller::"))
        .filter_map(|l| {
            l.split_once("=> \"")
                .map(|(_, n)| n.trim_end_matches("\",").to_owned())
        })
        .flat_map(|n| [n.clone(), format!("-{n}")])
        .chain(["*".to_owned()])
        .collect();
    assert!(program.len() >= 9, "{program:?}");
    let schema = schema();
    let allowed: std::collections::BTreeSet<String> =
        (schema["properties"]["controller"]["properties"]["controllers"]["items"]["enum"])
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
    assert_eq!(allowed, program);
}

#[test]
fn docs_install_md_describes_every_value() {
    let docs = std::fs::read_to_string(repo().join("docs/install.md")).unwrap();
    let schema = schema();
    let mut missing = Vec::new();
    for (top, child) in schema["properties"].as_object().unwrap() {
        if top == "global" {
            continue;
        }
        let Some(properties) = child["properties"].as_object() else {
            if !docs.contains(&format!("`{top}`")) {
                missing.push(top.clone());
            }
            continue;
        };
        for name in properties.keys() {
            // In the values table: `top.name`, or `.name` after a sibling in the same cell;
            // cloudConfig's keys are the cloud config's, documented in cloud-config.md.
            let full = format!("`{top}.{name}");
            let short = format!("`.{name}`");
            if top != "cloudConfig" && !docs.contains(&full) && !docs.contains(&short) {
                missing.push(format!("{top}.{name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "values docs/install.md does not describe: {missing:?}"
    );
}
