//! The documentation names only what exists, and documents everything that exists: CRD fields
//! (against the generated CRDs), command-line flags and their environment variables (against
//! the CLI definition), the rig's environment variables, and metrics (against the registries
//! the admin servers serve).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every text file under `dirs` (below the repository) whose name passes `keep`, sorted,
/// as (path, text); files that are not UTF-8 are left out.
fn files_under(dirs: &[&str], keep: impl Fn(&Path) -> bool) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = dirs.iter().map(|d| repo().join(d)).collect();
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if keep(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some((p.display().to_string(), text))
        })
        .collect()
}

/// Every Markdown file under `docs/`, plus the README, as (path, text).
fn docs() -> Vec<(String, String)> {
    let readme = repo().join("README.md");
    let mut files = vec![(
        readme.display().to_string(),
        std::fs::read_to_string(&readme).unwrap(),
    )];
    files.extend(files_under(&["docs"], |p| {
        p.extension().is_some_and(|e| e == "md")
    }));
    files
}

fn doc(name: &str) -> String {
    std::fs::read_to_string(repo().join("docs").join(name)).unwrap()
}

/// Tokens matching `[prefix][chars]*`, where `chars` are the token's allowed characters.
fn tokens(text: &str, prefix: &str, allowed: impl Fn(char) -> bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at + prefix.len()..];
        let end = rest.find(|c: char| !allowed(c)).unwrap_or(rest.len());
        if end > 0 {
            found.insert(format!("{prefix}{}", &rest[..end]));
        }
    }
    found
}

// ---- CRD fields ----

/// Every property path of a schema (`announce.bgp.communities`), with whether it is a map
/// whose keys are free (then anything below it exists).
fn schema_paths(schema: &Value, prefix: &str, out: &mut BTreeMap<String, bool>) {
    if let Some(items) = schema.get("items") {
        schema_paths(items, prefix, out);
    }
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, child) in properties {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let open = child.get("additionalProperties").is_some()
            || child.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        out.insert(path.clone(), open);
        schema_paths(child, &path, out);
    }
}

fn crd_paths(kind: &str) -> BTreeMap<String, bool> {
    let crd = baremetal_ccm_core::crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    let schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    let mut paths = BTreeMap::new();
    for top in ["spec", "status"] {
        let mut below = BTreeMap::new();
        schema_paths(&schema["properties"][top], "", &mut below);
        paths.extend(below.into_iter().map(|(p, o)| (format!("{top}.{p}"), o)));
    }
    paths
}

/// Whether `path` exists in `paths`, directly or below a free-keyed map.
fn exists(paths: &BTreeMap<String, bool>, path: &str) -> bool {
    if paths.contains_key(path) {
        return true;
    }
    let mut prefix = String::new();
    for segment in path.split('.') {
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(segment);
        if paths.get(&prefix) == Some(&true) {
            return true;
        }
    }
    false
}

/// The YAML code blocks of a Markdown text.
fn yaml_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(lang)) if lang.trim() == "yaml" => current = Some(String::new()),
            (Some(block), Some(_)) => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), None) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// Every key path (`spec.announce.mode`) of a YAML value, arrays looked through.
fn key_paths(value: &serde_yaml::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        serde_yaml::Value::Mapping(map) => {
            for (key, child) in map {
                let Some(key) = key.as_str() else { continue };
                let path = if prefix.is_empty() {
                    key.to_owned()
                } else {
                    format!("{prefix}.{key}")
                };
                out.insert(path.clone());
                key_paths(child, &path, out);
            }
        }
        serde_yaml::Value::Sequence(items) => {
            for item in items {
                key_paths(item, prefix, out);
            }
        }
        _ => {}
    }
}

/// Field paths the docs' YAML examples use, per kind: whole objects (`kind: IPPool`) and
/// fragments that start at `spec:` in the page about that kind.
fn documented_example_paths() -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut found: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in docs() {
        for block in yaml_blocks(&text) {
            for document in serde_yaml::Deserializer::from_str(&block) {
                use serde::Deserialize as _;
                let Ok(value) = serde_yaml::Value::deserialize(document) else {
                    continue;
                };
                let kind = match value.get("kind").and_then(|k| k.as_str()) {
                    Some("IPPool") => "IPPool",
                    Some("BGPPeer") => "BGPPeer",
                    Some(_) => continue,
                    // A `spec:` fragment on a page about one of our kinds: checked against
                    // whichever kind it fits (see the test).
                    None if value.get("spec").is_some()
                        && (path.ends_with("bgp.md") || path.ends_with("ippool.md")) =>
                    {
                        "fragment"
                    }
                    None => continue,
                };
                let mut keys = BTreeSet::new();
                for top in ["spec", "status"] {
                    if let Some(part) = value.get(top) {
                        key_paths(part, top, &mut keys);
                    }
                }
                found.entry(kind).or_default().extend(keys);
            }
        }
    }
    found
}

#[test]
fn every_field_the_docs_examples_use_exists_in_the_generated_crds() {
    let examples = documented_example_paths();
    assert!(
        examples
            .get("IPPool")
            .is_some_and(|p| p.contains("spec.avoidBuggyIPs")),
        "the IPPool example is found: {examples:?}"
    );
    let (pools, peers) = (crd_paths("IPPool"), crd_paths("BGPPeer"));
    for (kind, used) in &examples {
        let fits = |p: &String| match *kind {
            "IPPool" => exists(&pools, p),
            "BGPPeer" => exists(&peers, p),
            _ => exists(&pools, p) || exists(&peers, p),
        };
        let missing: Vec<&String> = used.iter().filter(|p| !fits(p)).collect();
        assert!(
            missing.is_empty(),
            "{kind} fields in the docs' examples that the CRD does not have: {missing:?}"
        );
    }
}

#[test]
fn every_crd_field_is_documented() {
    let pages: [(&str, Vec<String>); 2] = [
        ("IPPool", vec![doc("ippool.md"), doc("bgp.md")]),
        ("BGPPeer", vec![doc("bgp.md")]),
    ];
    for (kind, texts) in pages {
        let text = texts.join("\n");
        let mut undocumented = Vec::new();
        for path in crd_paths(kind).keys() {
            // Kubernetes' own Condition type, documented upstream.
            // Kubernetes' own Condition and LabelSelector types, documented upstream.
            if path.contains(".conditions.") || path.contains("Selector.") {
                continue;
            }
            let name = path.rsplit('.').next().unwrap();
            // Named in backticks, as a YAML key, or as a path (`announce.mode`).
            let named = text.contains(&format!("`{name}`"))
                || text.contains(&format!("{name}:"))
                || text.contains(&format!(".{name}`"));
            if !named {
                undocumented.push(path.clone());
            }
        }
        assert!(
            undocumented.is_empty(),
            "{kind} fields no doc names: {undocumented:?}"
        );
    }
}

#[test]
fn the_reference_tables_of_ippool_md_name_only_existing_fields() {
    let paths = crd_paths("IPPool");
    let text = doc("ippool.md");
    let mut section = "";
    let mut in_field_table = false;
    let mut checked = 0;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading.trim();
            continue;
        }
        if line.starts_with('|') && !line.starts_with("| `") && !line.starts_with("|-") {
            in_field_table = line.starts_with("| field ");
        }
        if !["spec", "status"].contains(&section) || !in_field_table {
            continue;
        }
        let Some(cell) = line.strip_prefix("| `") else {
            continue;
        };
        // `families.IPv4` / `families.IPv6`: each backticked name of the first cell.
        let first = cell.split('|').next().unwrap();
        for name in first.split('`').step_by(2).map(str::trim) {
            let name = name.trim_start_matches("/ ").trim();
            if name.is_empty() || name.starts_with('/') {
                continue;
            }
            let path = format!("{section}.{name}");
            assert!(exists(&paths, &path), "docs/ippool.md names {path}");
            checked += 1;
        }
    }
    assert!(checked >= 10, "the tables were found ({checked} fields)");
}

// ---- flags and environment variables ----

/// (subcommand, `--flag`, environment variable) of every flag of the program; a nested
/// subcommand is named by its path (`migrate metallb`). Flags without a variable are listed
/// with an empty one.
fn cli_flags() -> BTreeSet<(String, String, String)> {
    let mut command = baremetal_ccm::Cli::command();
    // Building propagates the global flags (logging) into every subcommand.
    command.build();
    let mut flags = BTreeSet::new();
    for sub in command.get_subcommands() {
        collect_flags(sub, sub.get_name(), &mut flags);
    }
    flags
}

fn collect_flags(
    command: &clap::Command,
    path: &str,
    flags: &mut BTreeSet<(String, String, String)>,
) {
    // A command that only groups others (`migrate`) runs nothing: its flags are its leaves'.
    if command.has_subcommands() {
        for sub in command.get_subcommands() {
            collect_flags(sub, &format!("{path} {}", sub.get_name()), flags);
        }
        return;
    }
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else {
            continue;
        };
        if long == "help" || long == "version" {
            continue;
        }
        let env = (arg.get_env()).map_or_else(String::new, |e| e.to_string_lossy().into_owned());
        flags.insert((path.to_owned(), format!("--{long}"), env));
    }
}

/// The rows of `docs/reference.md`'s flag tables: (subcommand, flag, variable).
fn reference_rows() -> BTreeSet<(String, String, String)> {
    let text = doc("reference.md");
    let mut rows = BTreeSet::new();
    let mut subcommand = String::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## `baremetal-ccm ") {
            subcommand = heading.trim_end_matches('`').to_owned();
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with("`--") {
            continue;
        }
        let variable = cells[2].trim_matches('`');
        rows.insert((
            subcommand.clone(),
            cells[1].trim_matches('`').to_owned(),
            if variable == "—" {
                String::new()
            } else {
                variable.to_owned()
            },
        ));
    }
    rows
}

#[test]
fn docs_reference_lists_exactly_the_flags_and_variables_of_the_program() {
    let program = cli_flags();
    let documented = reference_rows();
    let undocumented: Vec<_> = program.difference(&documented).collect();
    let invented: Vec<_> = documented.difference(&program).collect();
    assert!(
        undocumented.is_empty() && invented.is_empty(),
        "docs/reference.md differs from the CLI: missing {undocumented:?}, not in the program {invented:?}"
    );
}

/// Flags of other programs that the docs name (the kubelet's, the API server's and the
/// controller manager's, gobgpd's, etcd's, the GoBGP CLI's, cargo's, kube-proxy's, MetalLB's),
/// so that a typo in one of ours is not taken for one of theirs.
const FOREIGN_FLAGS: [&str; 16] = [
    "--allocate-node-cidrs",
    "--kubelet-preferred-address-types",
    "--node-monitor-grace-period",
    "--root-dir",
    "--vty_socket",
    "--node-ip",
    "--cloud-provider",
    "--provider-id",
    "--api-hosts",
    "--graceful-restart",
    "--unsafe-no-fsync",
    "--target",
    "--ipvs-strict-arp",
    "--lb-class",
    "--pod-name",
    "--service-cluster-ip-range",
];

#[test]
fn every_flag_and_variable_the_docs_name_exists() {
    let program = cli_flags();
    let ours: BTreeSet<&str> = program.iter().map(|(_, f, _)| f.as_str()).collect();
    let variables: BTreeSet<String> = program
        .iter()
        .map(|(_, _, e)| e.clone())
        .chain(rig_variables())
        .collect();
    for (path, text) in docs() {
        for flag in tokens(&text, "`--", |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
        }) {
            let flag = flag.trim_start_matches('`');
            assert!(
                ours.contains(flag) || FOREIGN_FLAGS.contains(&flag),
                "{path} names {flag}, which no subcommand has"
            );
        }
        for variable in tokens(&text, "BAREMETAL_CCM_", |c| {
            c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
        }) {
            assert!(
                variables.contains(&variable),
                "{path} names {variable}, which nothing reads"
            );
        }
    }
}

/// The variables the test rig and `hack/` read (`BAREMETAL_CCM_*` string literals there).
fn rig_variables() -> BTreeSet<String> {
    (files_under(&["tests/src", "hack"], |_| true).iter())
        .flat_map(|(_, text)| {
            tokens(text, "BAREMETAL_CCM_", |c| {
                c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
            })
        })
        .collect()
}

#[test]
fn every_variable_of_the_rig_is_documented() {
    let text: String = docs().into_iter().map(|(_, t)| t).collect();
    let named = tokens(&text, "BAREMETAL_CCM_", |c| {
        c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
    });
    let undocumented: Vec<String> = rig_variables().difference(&named).cloned().collect();
    assert!(
        undocumented.is_empty(),
        "variables the rig reads that no doc names: {undocumented:?}"
    );
}

// ---- metrics ----

/// A metric's family name: without the suffixes the exposition adds (`_total` of counters,
/// `_info` of infos, the series of histograms).
fn family(name: &str) -> &str {
    ["_total", "_info", "_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// Every metric family the program registers, read from its registration calls (the rig's
/// reader, shared with the dashboard and alert checks of `ccm/tests/install`): the registry
/// prints a labelled family only once it has a series, so serving alone would miss the ones
/// not yet set.
fn registered_metrics() -> BTreeSet<String> {
    rig::metrics_source::registered_metrics(&repo())
}

#[test]
fn docs_name_exactly_the_metrics_the_program_registers() {
    let registered = registered_metrics();
    // What the admin servers serve is all registered (the reading of the source is right).
    for state in [
        baremetal_ccm::admin_server::controller().0,
        baremetal_ccm::admin_server::speaker().0,
    ] {
        let text = state.encode_metrics().unwrap();
        for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let name = line.split_whitespace().next().unwrap();
            assert!(
                registered.contains(family(name)),
                "{name} is served but was not found among the registrations: {registered:?}"
            );
        }
    }
    assert!(
        registered.contains("baremetal_ccm_service_lb_sync_errors"),
        "{registered:?}"
    );
    let text: String = docs().into_iter().map(|(_, t)| t).collect();
    let named: BTreeSet<String> = tokens(&text, "baremetal_ccm_", |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
    })
    .iter()
    .map(|n| family(n).to_owned())
    .collect();
    let invented: Vec<&String> = named.difference(&registered).collect();
    let undocumented: Vec<&String> = registered.difference(&named).collect();
    assert!(
        invented.is_empty(),
        "docs name metrics the program does not register: {invented:?}"
    );
    assert!(
        undocumented.is_empty(),
        "metrics no doc names: {undocumented:?}"
    );
}
