//! The Grafana dashboard and the Prometheus alert rules name only metrics the program
//! registers, with only the labels those metrics have (or that Prometheus adds when it
//! scrapes a pod); the rules are well-formed; and they cover what an operator must see.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::chart::{chart_dir, render, values_file};
use super::repo;

/// Labels Prometheus' Kubernetes service discovery and scraping add to every series, which
/// the dashboard and rules may group by; `le` is a histogram bucket's bound.
const TARGET_LABELS: [&str; 6] = ["job", "instance", "namespace", "pod", "container", "le"];

/// Each registered metric family with its label names, read from the source.
fn registered() -> &'static BTreeMap<String, BTreeSet<String>> {
    static REGISTERED: std::sync::OnceLock<BTreeMap<String, BTreeSet<String>>> =
        std::sync::OnceLock::new();
    REGISTERED.get_or_init(|| rig::metrics_source::registered_metric_labels(&repo()))
}

/// A metric's family name: without the suffixes the exposition adds.
fn family(name: &str) -> &str {
    ["_total", "_info", "_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

fn identifier_end(text: &str) -> usize {
    text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len())
}

/// The `baremetal_ccm_*` metric names an expression uses.
fn metrics_of(expr: &str) -> BTreeSet<String> {
    (expr.match_indices("baremetal_ccm_"))
        .map(|(at, _)| expr[at..at + identifier_end(&expr[at..])].to_owned())
        .collect()
}

/// The label names an expression uses: in selectors (`{a="x", b!~"y"}`) and in the lists of
/// `by`, `without`, `on`, `ignoring`, `group_left` and `group_right`.
fn labels_of(expr: &str) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    let mut rest = expr;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').expect("a selector is closed") + open;
        for matcher in rest[open + 1..close].split(',') {
            let name = matcher.trim();
            let name = &name[..identifier_end(name)];
            if !name.is_empty() {
                labels.insert(name.to_owned());
            }
        }
        rest = &rest[close + 1..];
    }
    for keyword in [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        for (at, _) in expr.match_indices(keyword) {
            let before = expr[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let after = expr[at + keyword.len()..].trim_start();
            let Some(list) = after.strip_prefix('(') else {
                continue;
            };
            for name in list[..list.find(')').unwrap()].split(',') {
                if !name.trim().is_empty() {
                    labels.insert(name.trim().to_owned());
                }
            }
        }
    }
    labels
}

/// The `{{name}}` / `{{ $labels.name }}` references of a legend or an annotation.
fn template_labels(text: &str) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    for part in text.split("{{").skip(1) {
        let inner = part.split("}}").next().unwrap().trim();
        let inner = inner.strip_prefix("$labels.").unwrap_or(inner);
        if inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !inner.is_empty() {
            labels.insert(inner.to_owned());
        }
    }
    labels
}

/// Checks one expression (and the labels its legend or annotations name); returns the
/// problems found.
fn check(where_: &str, expr: &str, templates: &[&str]) -> Vec<String> {
    let registered = registered();
    let mut problems = Vec::new();
    let metrics = metrics_of(expr);
    if metrics.is_empty() {
        problems.push(format!("{where_}: names no baremetal_ccm_ metric: {expr}"));
    }
    let mut allowed: BTreeSet<String> = TARGET_LABELS.iter().map(|l| (*l).to_owned()).collect();
    for metric in &metrics {
        match registered.get(family(metric)) {
            Some(labels) => allowed.extend(labels.iter().cloned()),
            None => problems.push(format!(
                "{where_}: {metric} is not registered by the program"
            )),
        }
    }
    let mut used = labels_of(expr);
    for template in templates {
        used.extend(template_labels(template));
    }
    for label in used.difference(&allowed) {
        problems.push(format!(
            "{where_}: label `{label}` belongs to none of {metrics:?}: {expr}"
        ));
    }
    if expr.matches('(').count() != expr.matches(')').count() {
        problems.push(format!("{where_}: unbalanced parentheses: {expr}"));
    }
    problems
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(chart_dir().join("dashboards/baremetal-ccm.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn rules() -> Value {
    let text =
        std::fs::read_to_string(chart_dir().join("alerts/baremetal-ccm.rules.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// Every panel's (title, expr, legend), rows looked through.
fn dashboard_targets() -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let dashboard = dashboard();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            panels.extend(inner);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            found.push((
                panel["title"].as_str().unwrap().to_owned(),
                target["expr"].as_str().unwrap().to_owned(),
                target["legendFormat"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    found
}

#[test]
fn the_dashboard_names_only_registered_metrics_and_their_labels() {
    let targets = dashboard_targets();
    assert!(targets.len() >= 20, "{} queries", targets.len());
    let problems: Vec<String> = (targets.iter())
        .flat_map(|(title, expr, legend)| check(&format!("panel {title:?}"), expr, &[legend]))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_dashboard_shows_what_an_operator_needs() {
    let exprs: String = (dashboard_targets().into_iter())
        .map(|(_, e, _)| e)
        .collect::<Vec<_>>()
        .join("\n");
    for metric in [
        "baremetal_ccm_service_lb_allocated_addresses",
        "baremetal_ccm_service_lb_pool_addresses",
        "baremetal_ccm_service_lb_pending_services",
        "baremetal_ccm_service_lb_conflicting_services",
        "baremetal_ccm_service_lb_contested_services",
        "baremetal_ccm_service_lb_outside_pool_services",
        "baremetal_ccm_bgp_sessions",
        "baremetal_ccm_bgp_converges_total",
        "baremetal_ccm_service_lb_sync_errors_total",
        "baremetal_ccm_writer_patch_duration_seconds_bucket",
        "baremetal_ccm_writer_patch_errors_total",
        "baremetal_ccm_cloud_node_initialized_nodes_total",
        "baremetal_ccm_cloud_node_initialization_errors_total",
        "baremetal_ccm_l2_members",
        "baremetal_ccm_l2_owned_addresses",
        "baremetal_ccm_l2_conflicts_total",
        "baremetal_ccm_l2_host_problems",
    ] {
        assert!(exprs.contains(metric), "no panel shows {metric}");
    }
    // Grafana's dashboard model: a uid, a schema version, the data source as a variable.
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "baremetal-ccm");
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    assert!(
        (dashboard["templating"]["list"].as_array().unwrap().iter())
            .any(|v| v["type"] == "datasource")
    );
}

#[test]
fn the_alert_rules_are_well_formed_and_name_only_registered_metrics_and_labels() {
    let rules = rules();
    let mut problems = Vec::new();
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_array().unwrap() {
        assert!(group["name"].is_string());
        for rule in group["rules"].as_array().unwrap() {
            let alert = rule["alert"].as_str().expect("every rule is an alert");
            assert!(alerts.insert(alert.to_owned()), "{alert} twice");
            let keys: BTreeSet<&str> = rule
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let known: BTreeSet<&str> = ["alert", "expr", "for", "labels", "annotations"].into();
            assert!(keys.is_subset(&known), "{alert}: {keys:?}");
            let duration = rule["for"].as_str().expect("every alert waits");
            assert!(
                duration.len() > 1
                    && duration.ends_with(['s', 'm', 'h'])
                    && duration[..duration.len() - 1]
                        .chars()
                        .all(|c| c.is_ascii_digit()),
                "{alert}: for: {duration}"
            );
            assert!(
                ["warning", "critical"].contains(&rule["labels"]["severity"].as_str().unwrap()),
                "{alert}: severity"
            );
            let annotations: Vec<&str> = (rule["annotations"].as_object().unwrap().values())
                .map(|v| v.as_str().unwrap())
                .collect();
            assert!(
                rule["annotations"]["summary"].is_string(),
                "{alert}: summary"
            );
            // Annotations may name labels the expression keeps (`by (…)`), checked below.
            problems.extend(check(
                &format!("alert {alert}"),
                rule["expr"].as_str().unwrap(),
                &annotations,
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    for needed in [
        "BaremetalCcmPoolNearlyExhausted",
        "BaremetalCcmServicesPending",
        "BaremetalCcmBgpSessionsDown",
        "BaremetalCcmServiceSyncErrors",
        "BaremetalCcmNodesNotInitialized",
    ] {
        assert!(alerts.contains(needed), "no alert {needed}: {alerts:?}");
    }
    // Every alert is explained for the operator.
    let docs = std::fs::read_to_string(repo().join("docs/observability.md")).unwrap();
    for alert in &alerts {
        assert!(
            docs.contains(&format!("`{alert}`")),
            "docs/observability.md does not explain {alert}"
        );
    }
}

#[test]
fn the_label_check_catches_an_invented_label_and_metric() {
    let problems = check(
        "sample",
        "sum by (peer) (baremetal_ccm_bgp_sessions{state=\"Idle\"}) + baremetal_ccm_bgp_nothing",
        &["{{ $labels.pool }}"],
    );
    let text = problems.join("\n");
    assert!(text.contains("`peer`"), "{text}");
    assert!(text.contains("`pool`"), "{text}");
    assert!(text.contains("baremetal_ccm_bgp_nothing"), "{text}");
    assert!(!text.contains("`state`"), "{text}");
}

#[test]
fn the_chart_installs_the_same_rules_and_dashboard_when_asked() {
    let (_dir, values) = values_file(
        "prometheusRule:\n  enabled: true\n  labels: {release: prometheus}\ngrafanaDashboard:\n  enabled: true\n",
    );
    let objects = render(&[&values]);
    let rule = (objects.iter())
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("a PrometheusRule");
    assert_eq!(rule["spec"], rules());
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let dashboard = (objects.iter())
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "baremetal-ccm-dashboard")
        .expect("a dashboard ConfigMap");
    let json: Value =
        serde_json::from_str(dashboard["data"]["baremetal-ccm.json"].as_str().unwrap()).unwrap();
    assert_eq!(json, super::observability::dashboard());
    // Off by default: the manifests' equivalent has neither.
    assert!(!render(&[]).iter().any(|o| o["kind"] == "PrometheusRule"));
}
