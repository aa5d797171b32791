//! Installing the product: the Helm chart (`charts/baremetal-ccm`) passes `helm lint
//! --strict`, its values schema refuses bad values by name, every object it renders for each
//! value set is accepted by a real API server (server-side dry run), it renders exactly what
//! the kustomize manifests (`manifests/`) ship, its layer-2 gossip key Secret is generated once
//! and kept, and its dashboard and alert rules name only metrics and labels the program
//! registers. The kubeadm guide shows the configuration files
//! `hack/test` validates with kubeadm.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod chart;
mod drift;
mod dry_run;
mod l2;
mod observability;

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_kubeadm_guide_shows_each_validated_configuration_file_as_it_is() {
    let guide = std::fs::read_to_string(repo().join("docs/bootstrap-kubeadm.md")).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("docs/kubeadm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            guide.contains(&format!("```yaml\n{text}```")),
            "docs/bootstrap-kubeadm.md does not show {} as it is (hack/test validates the file)",
            file.display()
        );
    }
}
