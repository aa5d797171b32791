//! The CustomResourceDefinitions this program owns, rendered as the YAML in `manifests/crds/`.

pub mod bgppeer;
pub mod community;
pub mod ippool;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResourceExt as _;

use crate::selector::{RequirementSpec, SelectorSpec};

/// A Kubernetes label selector as the plain data the decision modules evaluate.
pub fn selector_spec(selector: &LabelSelector) -> SelectorSpec {
    SelectorSpec {
        match_labels: selector.match_labels.clone().unwrap_or_default(),
        match_expressions: (selector.match_expressions.iter().flatten())
            .map(|r| RequirementSpec {
                key: r.key.clone(),
                operator: r.operator.clone(),
                values: r.values.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

/// Every CRD of the project, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![ippool::IPPool::crd(), bgppeer::BGPPeer::crd()]
}

/// Every CRD as a YAML document, each after a `---` line.
pub fn render_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `manifests/crds/crds.yaml` is generated; regenerate with
    /// `cargo run -p baremetal-ccm -- crd > manifests/crds/crds.yaml`.
    #[test]
    fn committed_manifests_equal_the_generated_crds() {
        let generated = render_yaml().expect("rendering to memory cannot fail");
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../manifests/crds/crds.yaml"
        );
        let committed = std::fs::read_to_string(path).expect("manifests/crds/crds.yaml exists");
        assert_eq!(
            committed, generated,
            "manifests/crds/crds.yaml is stale: run `cargo run -p baremetal-ccm -- crd > manifests/crds/crds.yaml`"
        );
    }
}
