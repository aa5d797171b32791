//! The speaker's host checks: reads what the core's `l2::host::check` decides from — kube-
//! proxy's IPVS interface in the interface list, the kernel's settings of the interfaces the
//! speaker answers on — and reports each finding where the operator looks: a `warn` line when
//! it appears, the gauge `baremetal_ccm_l2_host_problems{problem}`, and readiness for those
//! that make the node's answers wrong.
//!
//! The settings are read from `/proc/sys/net`, which shows the network namespace of the
//! reading thread: the speaker runs in the host's, the tests in their own.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use baremetal_ccm_core::l2::host::{self, Conf, Finding, IPVS_INTERFACE, Problem, Readings};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::links::Link;
use super::metrics::ProblemLabels;

const PROC_SYS_NET: &str = "/proc/sys/net";

/// Why the host's settings could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} holds {text:?}, not a number", path.display())]
    NotANumber {
        path: PathBuf,
        text: String,
        #[source]
        source: std::num::ParseIntError,
    },
}

/// What the kernel refused the responders, by interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Refused {
    /// Packet sockets, for want of `CAP_NET_RAW`.
    pub(crate) packet_sockets: BTreeSet<String>,
    /// The in-kernel reply, asked for with `--l2-reply-in-kernel`.
    pub(crate) in_kernel_reply: BTreeSet<String>,
}

/// Reads the host: kube-proxy's IPVS interface from `links`, the settings of `all` and of
/// every interface the speaker answers on (an interface that vanishes meanwhile is left out:
/// its removal is a link event, which checks again), and takes the interfaces whose packet
/// sockets were refused for want of `CAP_NET_RAW`.
pub(crate) fn read(links: &[Link], refused: Refused) -> Result<Readings, HostError> {
    let root = Path::new(PROC_SYS_NET);
    let all = read_conf(root, "all")?.ok_or_else(|| HostError::Read {
        path: root.join("ipv4/conf/all"),
        source: io::ErrorKind::NotFound.into(),
    })?;
    let mut announcing = std::collections::BTreeMap::new();
    for link in links.iter().filter(|l| l.usable()) {
        if let Some(conf) = read_conf(root, &link.name)? {
            announcing.insert(link.name.clone(), conf);
        }
    }
    let ipvs_ipv4_addresses = (links.iter())
        .find(|l| l.name == IPVS_INTERFACE)
        .map(|l| l.addresses.iter().filter(|a| a.addr().is_ipv4()).count());
    Ok(Readings {
        ipvs_ipv4_addresses,
        all,
        announcing,
        packet_sockets_refused: refused.packet_sockets,
        in_kernel_reply_refused: refused.in_kernel_reply,
    })
}

/// The settings of `interface` (or `all`); `None` when the interface has no IPv4 settings:
/// it is gone. Without IPv6 settings (IPv6 off on the host) `proxy_ndp` is off.
fn read_conf(root: &Path, interface: &str) -> Result<Option<Conf>, HostError> {
    let ipv4 = root.join("ipv4/conf").join(interface);
    let Some(arp_ignore) = read_number(&ipv4.join("arp_ignore"))? else {
        return Ok(None);
    };
    let required = |name: &str| {
        let path = ipv4.join(name);
        read_number(&path)?.ok_or_else(|| HostError::Read {
            path,
            source: io::ErrorKind::NotFound.into(),
        })
    };
    let arp_announce = required("arp_announce")?;
    let proxy_arp = required("proxy_arp")? != 0;
    let proxy_ndp = read_number(&root.join("ipv6/conf").join(interface).join("proxy_ndp"))?
        .is_some_and(|v| v != 0);
    Ok(Some(Conf {
        arp_ignore,
        arp_announce,
        proxy_arp,
        proxy_ndp,
    }))
}

/// A number from a sysctl file; `None` when the file does not exist. A small read of procfs,
/// which never waits on a device: fine on the runtime's thread.
fn read_number(path: &Path) -> Result<Option<u32>, HostError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(HostError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let text = text.trim();
    text.parse()
        .map(Some)
        .map_err(|source| HostError::NotANumber {
            path: path.to_owned(),
            text: text.to_owned(),
            source,
        })
}

/// The findings of the last check and their gauge.
#[derive(Debug)]
pub(crate) struct HostChecks {
    findings: Vec<Finding>,
    gauge: Family<ProblemLabels, Gauge>,
}

impl HostChecks {
    /// Every problem at 0 until a check finds it.
    pub(crate) fn new(gauge: Family<ProblemLabels, Gauge>) -> Self {
        for problem in Problem::ALL {
            gauge.get_or_create(&ProblemLabels::of(problem)).set(0);
        }
        HostChecks {
            findings: Vec::new(),
            gauge,
        }
    }

    /// Checks the host again and reports what changed. A host that cannot be read keeps the
    /// last findings (a problem is not taken for fixed because it could not be looked at).
    pub(crate) fn check(&mut self, links: &[Link], refused: Refused) {
        match read(links, refused) {
            Ok(readings) => self.update(host::check(&readings)),
            Err(error) => {
                tracing::warn!(error = %crate::error_chain(&error), "cannot read the host's network settings");
            }
        }
    }

    fn update(&mut self, findings: Vec<Finding>) {
        for finding in &findings {
            if !self.findings.contains(finding) {
                tracing::warn!(problem = finding.problem().label(), details = %finding, "a host setting breaks layer 2");
            }
        }
        for before in &self.findings {
            if !findings.iter().any(|f| f.problem() == before.problem()) {
                tracing::info!(
                    problem = before.problem().label(),
                    "a host problem of layer 2 is gone"
                );
            }
        }
        for problem in Problem::ALL {
            let present = findings.iter().any(|f| f.problem() == problem);
            (self.gauge.get_or_create(&ProblemLabels::of(problem))).set(i64::from(present));
        }
        self.findings = findings;
    }

    /// Every problem found, by label, as the speaker gossips them.
    pub(crate) fn problems(&self) -> Vec<String> {
        (self.findings.iter())
            .map(|f| f.problem().label().to_owned())
            .collect()
    }

    /// The findings that make the speaker not ready, as `/readyz` says them. `no_net_raw`
    /// is left to the responders' own failures, which name the interface and the capability.
    pub(crate) fn unready(&self) -> impl Iterator<Item = String> {
        (self.findings.iter())
            .filter(|f| f.problem().makes_unready() && f.problem() != Problem::NoNetRaw)
            .map(ToString::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge_of(checks: &HostChecks, problem: Problem) -> i64 {
        checks
            .gauge
            .get_or_create(&ProblemLabels::of(problem))
            .get()
    }

    #[test]
    fn the_gauge_follows_the_findings_and_only_ipvs_makes_the_speaker_unready_here() {
        let mut checks = HostChecks::new(Family::default());
        assert!(Problem::ALL.iter().all(|p| gauge_of(&checks, *p) == 0));
        checks.update(vec![
            Finding::ProxyArp {
                interfaces: vec!["eth0".into()],
            },
            Finding::NoNetRaw {
                interfaces: vec!["eth0".into()],
            },
        ]);
        assert_eq!(gauge_of(&checks, Problem::ProxyArp), 1);
        assert_eq!(gauge_of(&checks, Problem::NoNetRaw), 1);
        assert_eq!(gauge_of(&checks, Problem::IpvsWithoutStrictArp), 0);
        assert_eq!(
            checks.unready().count(),
            0,
            "warnings, and a responder failure"
        );
        let ipvs = Finding::IpvsWithoutStrictArp { loose: vec![] };
        checks.update(vec![ipvs.clone()]);
        assert_eq!(checks.unready().collect::<Vec<_>>(), vec![ipvs.to_string()]);
        assert_eq!(gauge_of(&checks, Problem::ProxyArp), 0);
        assert_eq!(gauge_of(&checks, Problem::IpvsWithoutStrictArp), 1);
    }

    #[test]
    fn a_sysctl_that_is_not_a_number_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arp_ignore");
        std::fs::write(&path, "one\n").unwrap();
        let error = read_number(&path).unwrap_err();
        assert!(error.to_string().contains("arp_ignore"), "{error}");
        assert_eq!(read_number(&dir.path().join("absent")).unwrap(), None);
        std::fs::write(&path, "1\n").unwrap();
        assert_eq!(read_number(&path).unwrap(), Some(1));
    }
}
