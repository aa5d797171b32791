//! The metrics the program registers, read from its source: the names (for the docs, the
//! dashboard and the alert rules) and each one's label names.
//!
//! Read from the registration calls (`let x = registry.sub_registry_with_prefix("p")`, then
//! `x.register("name", "help", metrics.field.clone())`) rather than from what the admin server
//! serves: the registry prints a labelled family only once it has a series, so serving alone
//! would miss the ones not yet set. `ccm/tests/docs_reference.rs` checks the reading against
//! what the admin servers do serve.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The directories, below the repository root, whose Rust files register metrics.
const SOURCES: [&str; 2] = ["ccm/src", "ccm/core/src"];

/// Every `.rs` file under [`SOURCES`], as text.
fn sources(repo: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = SOURCES.iter().map(|d| repo.join(d)).collect();
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

/// `text` with every run of whitespace made one space (calls span lines as rustfmt likes).
fn compact(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One registration: the full metric name and the expression registered (`metrics.x.clone()`).
fn registrations(compact: &str) -> Vec<(String, String)> {
    let mut prefixes: BTreeMap<String, String> = BTreeMap::new();
    for (at, _) in compact.match_indices(".sub_registry_with_prefix(\"") {
        let variable = compact[..at]
            .rsplit("let ")
            .next()
            .and_then(|l| l.split(" =").next())
            .expect("a sub-registry is bound with let");
        let rest = &compact[at + ".sub_registry_with_prefix(\"".len()..];
        let prefix = &rest[..rest.find('"').expect("a closing quote")];
        prefixes.insert(variable.trim().to_owned(), prefix.to_owned());
    }
    let mut found = Vec::new();
    for (at, _) in compact.match_indices(".register( \"") {
        let variable = compact[..at]
            .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .expect("a registry variable");
        let rest = &compact[at + ".register( \"".len()..];
        let name = &rest[..rest.find('"').expect("a closing quote")];
        let full = match prefixes.get(variable) {
            Some(prefix) => format!("baremetal_ccm_{prefix}_{name}"),
            None => format!("baremetal_ccm_{name}"),
        };
        // The third argument: after the help string, up to the call's closing parenthesis.
        let after_name = &rest[name.len() + 1..];
        let help_end = after_name
            .find("\",")
            .map_or(0, |i| i + 2)
            .min(after_name.len());
        let value = after_name[help_end..]
            .split(" )")
            .next()
            .unwrap_or_default()
            .trim()
            .trim_end_matches(',')
            .to_owned();
        found.push((full, value));
    }
    found
}

/// Every metric family the program registers (`baremetal_ccm_service_lb_sync_errors`,
/// without the `_total` the exposition adds to counters).
pub fn registered_metrics(repo: &Path) -> BTreeSet<String> {
    (sources(repo).iter())
        .flat_map(|text| registrations(&compact(text)))
        .map(|(name, _)| name)
        .collect()
}

/// The label names of each registered metric family: the fields of the label struct of its
/// `Family<Labels, _>`, or none for a plain metric; an info metric
/// (`Info::new(vec![("version", ..)])`) has the keys of its pairs. Types are looked up in the
/// registering file first, then in every file (a type alias, a struct declared elsewhere).
pub fn registered_metric_labels(repo: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let sources = sources(repo);
    let raw_all = sources.join("\n");
    let all = compact(&raw_all);
    let mut labels = BTreeMap::new();
    for raw in &sources {
        let text = compact(raw);
        for (name, value) in registrations(&text) {
            let found = value_labels(
                Source { raw, text: &text },
                Source {
                    raw: &raw_all,
                    text: &all,
                },
                &value,
            );
            labels.insert(name, found);
        }
    }
    labels
}

/// Source text as written and compacted.
#[derive(Clone, Copy)]
struct Source<'a> {
    raw: &'a str,
    text: &'a str,
}

/// The label names of the registered expression `value` in the file `file` (types not found
/// there are looked up in `all`).
fn value_labels(file: Source<'_>, all: Source<'_>, value: &str) -> BTreeSet<String> {
    let (text, raw, raw_all) = (file.text, file.raw, all.raw);
    let all = all.text;
    if let Some(pairs) = value.strip_prefix("Info::new(") {
        return pairs
            .split(" (\"")
            .skip(1)
            .filter_map(|p| p.split('"').next())
            .map(str::to_owned)
            .collect();
    }
    // `metrics.field.clone()` or `field.clone()`: the field's declared type, or the type of
    // the value it was bound to (`let field = Type::default();`).
    let field = value
        .trim_end_matches(".clone()")
        .rsplit('.')
        .next()
        .unwrap_or_default();
    let declared = |source: &str| {
        let at = source.find(&format!(" {field}: "))?;
        let rest = &source[at + field.len() + 3..];
        Some(rest[..rest.find([',', ';', '}'])?].trim().to_owned())
    };
    let bound = |source: &str| {
        let at = source.find(&format!("let {field} = "))?;
        let rest = &source[at + field.len() + 7..];
        Some(rest[..rest.find("::")?].trim().to_owned())
    };
    let Some(mut ty) = declared(text).or_else(|| bound(text)) else {
        return BTreeSet::new();
    };
    // A type alias (`type AuthMetrics = Family<ResultLabel, Counter>;`).
    if let Some(alias) = [text, all].iter().find_map(|source| {
        let at = source.find(&format!("type {ty} = "))?;
        let rest = &source[at + ty.len() + 8..];
        Some(rest[..rest.find(';')?].trim().to_owned())
    }) {
        ty = alias;
    }
    let Some(labels_type) = ty
        .strip_prefix("Family<")
        .and_then(|rest| rest.split(',').next())
    else {
        return BTreeSet::new();
    };
    struct_fields(raw, labels_type.trim())
        .or_else(|| struct_fields(raw_all, labels_type.trim()))
        .unwrap_or_else(|| panic!("the label struct {labels_type} of {field} is not found"))
}

/// The field names of `struct name { .. }` in `text` (as written: one field a line, doc
/// comments and attributes on lines of their own).
fn struct_fields(text: &str, name: &str) -> Option<BTreeSet<String>> {
    let at = text.find(&format!("struct {name} {{"))?;
    let body = &text[at..];
    let body = &body[body.find('{')? + 1..body.find('}')?];
    Some(
        body.lines()
            .map(str::trim)
            .filter(|line| !line.starts_with("//") && !line.starts_with('#'))
            .filter_map(|line| {
                // The last word before the colon: the name after any visibility
                // (`pub`, `pub(crate)`).
                let name = line.split(':').next()?.split_whitespace().last()?;
                (!name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                    .then(|| name.to_owned())
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_metrics_and_their_labels_are_read_from_the_source() {
        let labels = registered_metric_labels(crate::tools::repo_root());
        let errors = &labels["baremetal_ccm_writer_patch_errors"];
        assert_eq!(
            errors.iter().map(String::as_str).collect::<Vec<_>>(),
            ["reason", "resource"]
        );
        assert_eq!(
            labels["baremetal_ccm_service_lb_allocated_addresses"],
            ["family", "pool"].map(str::to_owned).into()
        );
        assert!(labels["baremetal_ccm_service_lb_conflicting_services"].is_empty());
        assert_eq!(
            labels["baremetal_ccm_build"],
            ["component", "version"].map(str::to_owned).into()
        );
        assert_eq!(
            labels["baremetal_ccm_admin_metrics_requests"],
            ["result".to_owned()].into()
        );
        // A label struct whose fields are `pub(crate)`.
        assert_eq!(
            labels["baremetal_ccm_l2_host_problems"],
            ["problem".to_owned()].into()
        );
        assert!(
            registered_metrics(crate::tools::repo_root()).contains("baremetal_ccm_bgp_sessions")
        );
    }
}
