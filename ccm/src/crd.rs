//! The CustomResourceDefinitions this program owns, rendered as the YAML in `manifests/crds/`.

use std::io::Write;

/// Writes every CRD as a YAML document. No kinds are defined yet (IPPool and BGPPeer arrive
/// with their features), so the stream holds only a comment saying so.
pub fn print(out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "# baremetal-ccm.io CustomResourceDefinitions: none are defined yet"
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `manifests/crds/crds.yaml` is generated; regenerate with
    /// `cargo run -p baremetal-ccm -- crd > manifests/crds/crds.yaml`.
    #[test]
    fn committed_manifests_equal_the_generated_crds() {
        let mut generated = Vec::new();
        print(&mut generated).expect("rendering to memory cannot fail");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/crds/crds.yaml");
        let committed = std::fs::read_to_string(path).expect("manifests/crds/crds.yaml exists");
        assert_eq!(
            committed,
            String::from_utf8(generated).expect("YAML is UTF-8"),
            "manifests/crds/crds.yaml is stale: run `cargo run -p baremetal-ccm -- crd > manifests/crds/crds.yaml`"
        );
    }
}
