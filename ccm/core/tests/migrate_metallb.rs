//! The MetalLB converter against a corpus of MetalLB configurations written from MetalLB's
//! documented examples and API types: `tests/metallb/<case>/input.yaml` (multi-document),
//! with the expected `expected.yaml` (`render_objects`) and `report.txt` (`render_report`).
//!
//! `UPDATE_GOLDEN=1 cargo test -p baremetal-ccm-core --test migrate_metallb` rewrites the
//! expected files from the current output; review the diff before committing it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::path::{Path, PathBuf};

use baremetal_ccm_core::migrate::metallb::{self, Options};
use proptest::prelude::*;
use serde::Deserialize as _;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/metallb")
}

fn read_documents(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| serde_json::Value::deserialize(document).unwrap())
        .filter(|value| !value.is_null())
        .collect()
}

fn check(dir: &Path, name: &str, actual: &str, failures: &mut Vec<String>) {
    let path = dir.join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{}:\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        ));
    }
}

#[test]
fn every_case_of_the_corpus_converts_as_recorded() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("input.yaml").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for dir in &cases {
        let converted = metallb::convert(
            &read_documents(&dir.join("input.yaml")),
            &Options::default(),
        );
        check(
            dir,
            "expected.yaml",
            &metallb::render_objects(&converted),
            &mut failures,
        );
        check(
            dir,
            "report.txt",
            &metallb::render_report(&converted.report),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// What a blocking case is, from its name: the corpus says which cases must block.
#[test]
fn the_cases_named_blocking_block_and_no_other_does() {
    for entry in std::fs::read_dir(corpus()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("input.yaml").exists() {
            continue;
        }
        let converted = metallb::convert(
            &read_documents(&dir.join("input.yaml")),
            &Options::default(),
        );
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            converted.report.blocking(),
            name.starts_with("blocking-"),
            "{name}:\n{}",
            metallb::render_report(&converted.report)
        );
    }
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u32>().prop_map(serde_json::Value::from),
        "[a-zA-Z0-9:./ -]{0,12}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("metallb.io/v1beta1"),
            Just("metallb.io/v1beta2"),
            Just("IPAddressPool"),
            Just("BGPPeer"),
            Just("L2Advertisement"),
            Just("BGPAdvertisement"),
            Just("BFDProfile"),
            Just("Community"),
            Just("ConfigMap"),
            Just("192.0.2.0/24"),
            Just("192.0.2.1-192.0.2.9"),
            Just("2001:db8::/64"),
            Just("65000:1"),
            Just("large:1:2:3"),
            Just("10s"),
            Just("lan"),
        ]
        .prop_map(serde_json::Value::from),
    ];
    let keys = prop_oneof![
        Just("apiVersion".to_owned()),
        Just("kind".to_owned()),
        Just("metadata".to_owned()),
        Just("name".to_owned()),
        Just("spec".to_owned()),
        Just("addresses".to_owned()),
        Just("ipAddressPools".to_owned()),
        Just("peers".to_owned()),
        Just("communities".to_owned()),
        Just("nodeSelectors".to_owned()),
        Just("serviceAllocation".to_owned()),
        Just("data".to_owned()),
        Just("config".to_owned()),
        Just("peerAddress".to_owned()),
        Just("myASN".to_owned()),
        Just("peerASN".to_owned()),
        Just("holdTime".to_owned()),
        Just("ipAddressPoolSelectors".to_owned()),
        Just("matchLabels".to_owned()),
        "[a-z]{1,6}",
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Garbage in: a report out, never a panic, and whatever is emitted renders.
    #[test]
    fn converting_arbitrary_json_never_panics(objects in prop::collection::vec(json(), 0..6)) {
        let converted = metallb::convert(&objects, &Options::default());
        let _ = metallb::render_objects(&converted);
        let _ = metallb::render_report(&converted.report);
    }
}
