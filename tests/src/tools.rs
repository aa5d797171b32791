//! Where the rig finds the real components' binaries.
//!
//! `hack/test` builds them at the versions in `hack/versions.env` and exports their paths as
//! `BAREMETAL_CCM_<TOOL>` variables; without those the rig looks in the same cache directory
//! `hack/` uses. A missing binary is an error that says how to get it, never a skip.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(
        "{tool} not found (looked for {looked}); run `hack/test` (or `hack/tools`) to build and install the test prerequisites"
    )]
    Missing { tool: &'static str, looked: String },
    #[error("cannot read {path}")]
    Versions {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{key} is not set in {path}")]
    VersionMissing { key: &'static str, path: PathBuf },
}

/// A binary the rig runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    KubeApiserver,
    Etcd,
    Gobgpd,
    Gobgp,
    Bird,
    Birdc,
    Arping,
    Ndisc6,
    Ip,
    /// FRR's daemons (Debian package `frr`, in `/usr/lib/frr`) and its shell.
    FrrZebra,
    FrrBgpd,
    FrrBfdd,
    Vtysh,
    /// Helm, built by `hack/tools` from the pinned `helm.sh/helm/v4` module.
    Helm,
    /// MetalLB's controller, built by `hack/tools` from the pinned `go.universe.tf/metallb`
    /// module; its CRDs are in `crds/` beside it ([`metallb_crds_dir`]).
    MetallbController,
    /// kwok, built by `hack/tools` from the pinned `sigs.k8s.io/kwok` module: the scale rig's
    /// kubelets ([`crate::kwok`]).
    Kwok,
}

impl Tool {
    fn env_var(self) -> &'static str {
        match self {
            Tool::KubeApiserver => "BAREMETAL_CCM_KUBE_APISERVER",
            Tool::Etcd => "BAREMETAL_CCM_ETCD",
            Tool::Gobgpd => "BAREMETAL_CCM_GOBGPD",
            Tool::Gobgp => "BAREMETAL_CCM_GOBGP",
            Tool::Bird => "BAREMETAL_CCM_BIRD",
            Tool::Birdc => "BAREMETAL_CCM_BIRDC",
            Tool::Arping => "BAREMETAL_CCM_ARPING",
            Tool::Ndisc6 => "BAREMETAL_CCM_NDISC6",
            Tool::Ip => "BAREMETAL_CCM_IP",
            Tool::FrrZebra => "BAREMETAL_CCM_FRR_ZEBRA",
            Tool::FrrBgpd => "BAREMETAL_CCM_FRR_BGPD",
            Tool::FrrBfdd => "BAREMETAL_CCM_FRR_BFDD",
            Tool::Vtysh => "BAREMETAL_CCM_VTYSH",
            Tool::Helm => "BAREMETAL_CCM_HELM",
            Tool::MetallbController => "BAREMETAL_CCM_METALLB_CONTROLLER",
            Tool::Kwok => "BAREMETAL_CCM_KWOK",
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            Tool::KubeApiserver => "kube-apiserver",
            Tool::Etcd => "etcd",
            Tool::Gobgpd => "gobgpd",
            Tool::Gobgp => "gobgp",
            Tool::Bird => "bird",
            Tool::Birdc => "birdc",
            Tool::Arping => "arping",
            Tool::Ndisc6 => "ndisc6",
            Tool::Ip => "ip",
            Tool::FrrZebra => "zebra",
            Tool::FrrBgpd => "bgpd",
            Tool::FrrBfdd => "bfdd",
            Tool::Vtysh => "vtysh",
            Tool::Helm => "helm",
            Tool::MetallbController => "controller",
            Tool::Kwok => "kwok",
        }
    }

    /// Default locations: the hack/ cache for Go-built tools, the Debian paths for packages.
    fn candidates(self) -> Result<Vec<PathBuf>, ToolError> {
        let cache = cache_bin_dir();
        Ok(match self {
            Tool::KubeApiserver | Tool::Etcd => {
                let mut dirs = Vec::new();
                if let Some(assets) = std::env::var_os("KUBEBUILDER_ASSETS") {
                    dirs.push(PathBuf::from(assets));
                }
                let dir = if self == Tool::Etcd {
                    format!("etcd-{}", version("ETCD_VERSION")?)
                } else {
                    format!("kubernetes-{}", version("KUBERNETES_VERSION")?)
                };
                dirs.push(cache.join(dir));
                dirs.into_iter().map(|d| d.join(self.file_name())).collect()
            }
            Tool::Gobgpd | Tool::Gobgp => {
                vec![
                    cache
                        .join(format!("gobgp-{}", version("GOBGP_VERSION")?))
                        .join(self.file_name()),
                ]
            }
            Tool::Helm => {
                vec![
                    cache
                        .join(format!("helm-{}", version("HELM_VERSION")?))
                        .join(self.file_name()),
                ]
            }
            Tool::MetallbController => {
                vec![
                    cache
                        .join(format!("metallb-{}", version("METALLB_VERSION")?))
                        .join(self.file_name()),
                ]
            }
            Tool::Kwok => {
                vec![
                    cache
                        .join(format!("kwok-{}", version("KWOK_VERSION")?))
                        .join(self.file_name()),
                ]
            }
            Tool::FrrZebra | Tool::FrrBgpd | Tool::FrrBfdd => {
                vec![Path::new("/usr/lib/frr").join(self.file_name())]
            }
            _ => ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
                .iter()
                .map(|d| Path::new(d).join(self.file_name()))
                .collect(),
        })
    }

    /// The path of this tool's binary.
    pub fn path(self) -> Result<PathBuf, ToolError> {
        if let Some(path) = std::env::var_os(self.env_var()) {
            let path = PathBuf::from(path);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(ToolError::Missing {
                    tool: self.file_name(),
                    looked: format!("{}={}", self.env_var(), path.display()),
                })
            };
        }
        let candidates = self.candidates()?;
        candidates
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .ok_or_else(|| ToolError::Missing {
                tool: self.file_name(),
                looked: candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The directory of MetalLB's CRDs (`crds/` beside its controller).
pub fn metallb_crds_dir() -> Result<PathBuf, ToolError> {
    let controller = Tool::MetallbController.path()?;
    Ok(controller.with_file_name("crds"))
}

/// The repository root (the workspace directory above this crate).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the rig crate lives one level below the repository root")
}

fn cache_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BAREMETAL_CCM_CACHE") {
        return PathBuf::from(dir).join("bin");
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        });
    base.join("baremetal-ccm").join("bin")
}

/// A version pinned in `hack/versions.env`.
pub fn version(key: &'static str) -> Result<String, ToolError> {
    let path = repo_root().join("hack/versions.env");
    let text = std::fs::read_to_string(&path).map_err(|source| ToolError::Versions {
        path: path.clone(),
        source,
    })?;
    text.lines()
        .filter_map(|line| line.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_owned())
        .ok_or(ToolError::VersionMissing { key, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_versions_are_readable() {
        assert!(version("GOBGP_VERSION").unwrap().starts_with("4."));
        assert!(version("KUBERNETES_VERSION").unwrap().starts_with("1.3"));
        assert!(matches!(
            version("NO_SUCH_KEY"),
            Err(ToolError::VersionMissing { .. })
        ));
    }
}
