//! The host settings that break layer 2 on a node (design 0003, "What the operator sees"):
//! decided from plain readings — kube-proxy's IPVS interface, the kernel's ARP and proxy
//! settings of the interfaces the speaker answers on, whether packet sockets were refused —
//! into findings that name the problem and its fix. The speaker reads the host and reports.
//!
//! The kernel combines an interface's setting with `all` as it does in `net/ipv4/arp.c` and
//! `net/ipv6/ndisc.c`: the larger value of `arp_ignore` and `arp_announce`, either one of
//! `proxy_arp` and `proxy_ndp`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The dummy interface kube-proxy's IPVS mode binds every Service address to.
pub const IPVS_INTERFACE: &str = "kube-ipvs0";

/// The name a finding gives the `all` settings.
const ALL: &str = "all";

/// A problem, as the bounded label of `baremetal_ccm_l2_host_problems{problem}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Problem {
    /// kube-proxy in IPVS mode without `strictARP`: every node's kernel answers ARP for the
    /// Service addresses.
    IpvsWithoutStrictArp,
    /// `proxy_arp` on an announcing interface: the kernel may answer ARP for them too.
    ProxyArp,
    /// `proxy_ndp` on an announcing interface: the kernel may answer NS for them too.
    ProxyNdp,
    /// The kernel refused a packet socket: the speaker lacks `CAP_NET_RAW`.
    NoNetRaw,
    /// `--l2-reply-in-kernel` is on and the program could not be loaded or attached: the
    /// reply thread answers every request.
    NoInKernelReply,
}

impl Problem {
    pub const ALL: [Problem; 5] = [
        Problem::IpvsWithoutStrictArp,
        Problem::ProxyArp,
        Problem::ProxyNdp,
        Problem::NoNetRaw,
        Problem::NoInKernelReply,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Problem::IpvsWithoutStrictArp => "ipvs_without_strict_arp",
            Problem::ProxyArp => "proxy_arp",
            Problem::ProxyNdp => "proxy_ndp",
            Problem::NoNetRaw => "no_net_raw",
            Problem::NoInKernelReply => "no_in_kernel_reply",
        }
    }

    /// The problem a label names (a speaker gossips its problems by label); `None` for a
    /// label this version does not know (a newer speaker's).
    pub fn from_label(label: &str) -> Option<Problem> {
        Problem::ALL.into_iter().find(|p| p.label() == label)
    }

    /// What the problem does and how to fix it, in one sentence (the speaker's log and
    /// `/readyz` name the details: interfaces and settings).
    pub fn fix(self) -> &'static str {
        match self {
            Problem::IpvsWithoutStrictArp => {
                "kube-proxy runs in IPVS mode without strict ARP, so this node's kernel answers \
                 ARP for every Service address; set strictARP: true in kube-proxy's \
                 configuration (--ipvs-strict-arp)"
            }
            Problem::ProxyArp => {
                "proxy_arp is on for an interface the speaker answers on, so the kernel may \
                 answer ARP for Service addresses too; turn it off \
                 (net.ipv4.conf.<interface>.proxy_arp=0, and for all)"
            }
            Problem::ProxyNdp => {
                "proxy_ndp is on for an interface the speaker answers on, so the kernel answers \
                 solicitations for its proxy entries; turn it off \
                 (net.ipv6.conf.<interface>.proxy_ndp=0, and for all) or remove the entries of \
                 Service addresses"
            }
            Problem::NoNetRaw => {
                "the kernel refused the speaker's packet sockets, so it answers nothing; add \
                 NET_RAW to the speaker container's capabilities"
            }
            Problem::NoInKernelReply => {
                "--l2-reply-in-kernel is on but its eBPF program could not be loaded or \
                 attached, so the reply thread answers every request; give the speaker \
                 CAP_BPF and CAP_NET_ADMIN on Linux 6.6 or later, or turn the option off"
            }
        }
    }

    /// Whether the node's answers are wrong while the problem lasts — other kernels answer
    /// for our addresses, or this node cannot answer at all — so that the speaker is not
    /// ready; otherwise the problem is a risk the operator is warned of. The proxy settings
    /// are risks: the kernel proxies only for addresses it routes through another interface
    /// (`proxy_arp`, with forwarding on) or holds a proxy entry for (`proxy_ndp`).
    pub fn makes_unready(self) -> bool {
        match self {
            Problem::IpvsWithoutStrictArp | Problem::NoNetRaw => true,
            Problem::ProxyArp | Problem::ProxyNdp | Problem::NoInKernelReply => false,
        }
    }
}

/// The kernel's settings of one interface (`net.ipv4.conf.<if>.*`, `net.ipv6.conf.<if>.*`),
/// or of `all`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conf {
    pub arp_ignore: u32,
    pub arp_announce: u32,
    pub proxy_arp: bool,
    /// False where the host has no IPv6.
    pub proxy_ndp: bool,
}

impl Conf {
    /// What the kernel applies on an interface with `self`, given the `all` settings.
    fn effective(self, all: Conf) -> Conf {
        Conf {
            arp_ignore: self.arp_ignore.max(all.arp_ignore),
            arp_announce: self.arp_announce.max(all.arp_announce),
            proxy_arp: self.proxy_arp || all.proxy_arp,
            proxy_ndp: self.proxy_ndp || all.proxy_ndp,
        }
    }

    /// Whether the kernel keeps quiet, on this interface, about addresses held by another
    /// one (kube-ipvs0): `arp_ignore` 1 and 2 answer only for the receiving interface's own
    /// addresses, 8 never answers; 0, 3 (only scope host left out) and the reserved values
    /// answer for any local address. And `arp_announce` 2 never takes such an address as the
    /// source of the kernel's own requests (which would teach the neighbours our MAC for it).
    fn strict_arp(self) -> bool {
        matches!(self.arp_ignore, 1 | 2 | 8) && self.arp_announce == 2
    }
}

/// What the speaker read from its host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readings {
    /// How many IPv4 addresses kube-proxy's IPVS interface holds; `None` without one. Only
    /// ARP matters: the kernel answers a Neighbor Solicitation only for an address of the
    /// receiving interface.
    pub ipvs_ipv4_addresses: Option<usize>,
    pub all: Conf,
    /// The interfaces the speaker answers on, each with its own settings.
    pub announcing: BTreeMap<String, Conf>,
    /// Interfaces whose packet sockets the kernel refused with EPERM.
    pub packet_sockets_refused: BTreeSet<String>,
    /// Interfaces where `--l2-reply-in-kernel` is on and its program was refused.
    pub in_kernel_reply_refused: BTreeSet<String>,
}

/// One interface whose kernel answers ARP for kube-ipvs0's addresses, with its effective
/// settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LooseArp {
    pub interface: String,
    pub arp_ignore: u32,
    pub arp_announce: u32,
}

/// A problem found, with what the message names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    IpvsWithoutStrictArp { loose: Vec<LooseArp> },
    ProxyArp { interfaces: Vec<String> },
    ProxyNdp { interfaces: Vec<String> },
    NoNetRaw { interfaces: Vec<String> },
    NoInKernelReply { interfaces: Vec<String> },
}

impl Finding {
    pub fn problem(&self) -> Problem {
        match self {
            Finding::IpvsWithoutStrictArp { .. } => Problem::IpvsWithoutStrictArp,
            Finding::ProxyArp { .. } => Problem::ProxyArp,
            Finding::ProxyNdp { .. } => Problem::ProxyNdp,
            Finding::NoNetRaw { .. } => Problem::NoNetRaw,
            Finding::NoInKernelReply { .. } => Problem::NoInKernelReply,
        }
    }
}

/// The problem and its fix, for the log and `/readyz`.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::IpvsWithoutStrictArp { loose } => {
                let settings: Vec<String> = (loose.iter())
                    .map(|l| {
                        format!(
                            "{}: arp_ignore {}, arp_announce {}",
                            l.interface, l.arp_ignore, l.arp_announce
                        )
                    })
                    .collect();
                write!(
                    f,
                    "kube-proxy runs in IPVS mode without strict ARP ({IPVS_INTERFACE} holds the \
                     Service addresses and this node's kernel answers ARP for them: {}); set \
                     strictARP: true in kube-proxy's configuration (--ipvs-strict-arp), which \
                     sets net.ipv4.conf.all.arp_ignore=1 and arp_announce=2",
                    settings.join("; ")
                )
            }
            Finding::ProxyArp { interfaces } => write!(
                f,
                "proxy_arp is on for {} (net.ipv4.conf.<interface or all>.proxy_arp): the \
                 kernel may answer ARP for the Service addresses too; turn it off",
                interfaces.join(", ")
            ),
            Finding::ProxyNdp { interfaces } => write!(
                f,
                "proxy_ndp is on for {} (net.ipv6.conf.<interface or all>.proxy_ndp): the \
                 kernel answers Neighbor Solicitations for the addresses it has proxy entries \
                 for; turn it off or remove the entries of Service addresses",
                interfaces.join(", ")
            ),
            Finding::NoNetRaw { interfaces } => write!(
                f,
                "the kernel refused packet sockets on {}: the speaker needs CAP_NET_RAW (add \
                 NET_RAW to its container's capabilities)",
                interfaces.join(", ")
            ),
            Finding::NoInKernelReply { interfaces } => write!(
                f,
                "--l2-reply-in-kernel is on but its eBPF program could not be loaded or attached \
                 on {} (the speaker's log says why), so the reply thread answers every request \
                 there; give the speaker CAP_BPF and CAP_NET_ADMIN on Linux 6.6 or later, or \
                 turn the option off",
                interfaces.join(", ")
            ),
        }
    }
}

/// Every problem `readings` show, at most one finding per [`Problem`], in the order of
/// [`Problem::ALL`].
pub fn check(readings: &Readings) -> Vec<Finding> {
    let mut findings = Vec::new();
    let effective: BTreeMap<&str, Conf> = (readings.announcing.iter())
        .map(|(name, conf)| (name.as_str(), conf.effective(readings.all)))
        .collect();
    if readings.ipvs_ipv4_addresses.is_some_and(|n| n > 0) {
        // Before the speaker answers anywhere, `all` stands for every interface.
        let checked = if effective.is_empty() {
            BTreeMap::from([(ALL, readings.all)])
        } else {
            effective.clone()
        };
        let loose: Vec<LooseArp> = (checked.iter())
            .filter(|(_, conf)| !conf.strict_arp())
            .map(|(name, conf)| LooseArp {
                interface: (*name).to_owned(),
                arp_ignore: conf.arp_ignore,
                arp_announce: conf.arp_announce,
            })
            .collect();
        if !loose.is_empty() {
            findings.push(Finding::IpvsWithoutStrictArp { loose });
        }
    }
    let with = |on: fn(&Conf) -> bool| -> Vec<String> {
        (effective.iter())
            .filter(|(_, conf)| on(conf))
            .map(|(name, _)| (*name).to_owned())
            .collect()
    };
    let interfaces = with(|c| c.proxy_arp);
    if !interfaces.is_empty() {
        findings.push(Finding::ProxyArp { interfaces });
    }
    let interfaces = with(|c| c.proxy_ndp);
    if !interfaces.is_empty() {
        findings.push(Finding::ProxyNdp { interfaces });
    }
    if !readings.packet_sockets_refused.is_empty() {
        findings.push(Finding::NoNetRaw {
            interfaces: readings.packet_sockets_refused.iter().cloned().collect(),
        });
    }
    if !readings.in_kernel_reply_refused.is_empty() {
        findings.push(Finding::NoInKernelReply {
            interfaces: readings.in_kernel_reply_refused.iter().cloned().collect(),
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_found_again_by_its_label_and_has_a_fix() {
        for problem in Problem::ALL {
            assert_eq!(Problem::from_label(problem.label()), Some(problem));
            assert!(
                problem.fix().contains(';'),
                "{problem:?}: what it does; the fix"
            );
        }
        assert_eq!(Problem::from_label("a_newer_speakers_problem"), None);
    }

    /// A host as kubeadm leaves it, kube-proxy in iptables or nftables mode: kernel defaults,
    /// one announcing interface.
    fn plain_host() -> Readings {
        Readings {
            ipvs_ipv4_addresses: None,
            all: Conf::default(),
            announcing: BTreeMap::from([("eth0".to_owned(), Conf::default())]),
            packet_sockets_refused: BTreeSet::new(),
            in_kernel_reply_refused: BTreeSet::new(),
        }
    }

    /// kube-proxy in IPVS mode: its interface holds the Service addresses.
    fn ipvs_host() -> Readings {
        Readings {
            ipvs_ipv4_addresses: Some(12),
            ..plain_host()
        }
    }

    fn problems(readings: &Readings) -> Vec<Problem> {
        check(readings).iter().map(Finding::problem).collect()
    }

    #[test]
    fn a_host_with_kube_proxy_in_iptables_or_nftables_mode_and_kernel_defaults_is_fine() {
        assert_eq!(check(&plain_host()), vec![]);
    }

    #[test]
    fn ipvs_mode_with_kernel_defaults_makes_every_node_answer_arp_and_the_speaker_unready() {
        let findings = check(&ipvs_host());
        assert_eq!(
            findings,
            vec![Finding::IpvsWithoutStrictArp {
                loose: vec![LooseArp {
                    interface: "eth0".into(),
                    arp_ignore: 0,
                    arp_announce: 0
                }]
            }]
        );
        assert!(findings[0].problem().makes_unready());
        let message = findings[0].to_string();
        assert!(message.contains("--ipvs-strict-arp"), "{message}");
        assert!(message.contains("strictARP: true"), "{message}");
        assert!(message.contains("eth0: arp_ignore 0"), "{message}");
    }

    #[test]
    fn ipvs_mode_with_strict_arp_as_kube_proxy_sets_it_is_fine() {
        let mut host = ipvs_host();
        host.all.arp_ignore = 1;
        host.all.arp_announce = 2;
        assert_eq!(check(&host), vec![]);
    }

    #[test]
    fn strict_arp_on_all_is_not_undone_by_an_interface_left_at_zero_but_a_looser_interface_counts()
    {
        // The kernel takes the larger value of `all` and the interface: an interface at 0
        // keeps `all`'s 1, but one at 3 (which answers for any address not of scope host)
        // overrides it.
        let mut host = ipvs_host();
        host.all.arp_ignore = 1;
        host.all.arp_announce = 2;
        host.announcing.insert(
            "eth1".into(),
            Conf {
                arp_ignore: 3,
                ..Conf::default()
            },
        );
        assert_eq!(
            check(&host),
            vec![Finding::IpvsWithoutStrictArp {
                loose: vec![LooseArp {
                    interface: "eth1".into(),
                    arp_ignore: 3,
                    arp_announce: 2
                }]
            }]
        );
    }

    #[test]
    fn arp_ignore_set_without_arp_announce_still_lets_the_kernel_announce_service_addresses() {
        let mut host = ipvs_host();
        host.all.arp_ignore = 1;
        assert_eq!(problems(&host), vec![Problem::IpvsWithoutStrictArp]);
        host.all.arp_announce = 1;
        assert_eq!(
            problems(&host),
            vec![Problem::IpvsWithoutStrictArp],
            "1 only prefers a matching source"
        );
        host.all.arp_announce = 2;
        assert_eq!(problems(&host), vec![]);
    }

    #[test]
    fn arp_ignore_2_and_8_are_strict_enough_and_3_is_not() {
        for (arp_ignore, strict) in [
            (0, false),
            (1, true),
            (2, true),
            (3, false),
            (5, false),
            (8, true),
        ] {
            let mut host = ipvs_host();
            host.all.arp_ignore = arp_ignore;
            host.all.arp_announce = 2;
            assert_eq!(check(&host).is_empty(), strict, "arp_ignore {arp_ignore}");
        }
    }

    #[test]
    fn a_leftover_ipvs_interface_without_addresses_answers_nothing() {
        // kube-proxy switched to nftables mode without `--cleanup`: the interface stays, empty.
        let host = Readings {
            ipvs_ipv4_addresses: Some(0),
            ..plain_host()
        };
        assert_eq!(check(&host), vec![]);
    }

    #[test]
    fn before_any_interface_answers_the_all_settings_are_checked() {
        let host = Readings {
            announcing: BTreeMap::new(),
            ..ipvs_host()
        };
        let findings = check(&host);
        assert!(
            matches!(&findings[..], [Finding::IpvsWithoutStrictArp { loose }] if loose[0].interface == "all"),
            "{findings:?}"
        );
    }

    #[test]
    fn proxy_arp_on_an_announcing_interface_or_on_all_is_a_warning_naming_the_interfaces() {
        let mut host = plain_host();
        host.announcing.insert("eth1".into(), Conf::default());
        host.announcing.get_mut("eth1").unwrap().proxy_arp = true;
        let findings = check(&host);
        assert_eq!(
            findings,
            vec![Finding::ProxyArp {
                interfaces: vec!["eth1".into()]
            }]
        );
        assert!(!findings[0].problem().makes_unready());
        host.all.proxy_arp = true;
        assert_eq!(
            check(&host),
            vec![Finding::ProxyArp {
                interfaces: vec!["eth0".into(), "eth1".into()]
            }]
        );
    }

    #[test]
    fn proxy_ndp_is_a_warning_of_its_own() {
        let mut host = plain_host();
        host.all.proxy_ndp = true;
        let findings = check(&host);
        assert_eq!(
            findings,
            vec![Finding::ProxyNdp {
                interfaces: vec!["eth0".into()]
            }]
        );
        assert!(!findings[0].problem().makes_unready());
        assert!(findings[0].to_string().contains("proxy_ndp is on for eth0"));
    }

    #[test]
    fn without_any_announcing_interface_proxy_settings_concern_nobody() {
        let mut host = plain_host();
        host.announcing.clear();
        host.all.proxy_arp = true;
        host.all.proxy_ndp = true;
        assert_eq!(check(&host), vec![]);
    }

    #[test]
    fn refused_packet_sockets_say_the_speaker_needs_cap_net_raw() {
        let mut host = plain_host();
        host.packet_sockets_refused.insert("eth0".into());
        let findings = check(&host);
        assert_eq!(problems(&host), vec![Problem::NoNetRaw]);
        assert!(findings[0].problem().makes_unready());
        assert!(
            findings[0].to_string().contains("needs CAP_NET_RAW"),
            "{}",
            findings[0]
        );
    }

    #[test]
    fn a_refused_in_kernel_reply_is_a_warning_naming_the_capabilities() {
        let mut host = plain_host();
        host.in_kernel_reply_refused.insert("eth1".into());
        let findings = check(&host);
        assert_eq!(problems(&host), vec![Problem::NoInKernelReply]);
        assert!(
            !findings[0].problem().makes_unready(),
            "the reply thread answers"
        );
        let message = findings[0].to_string();
        assert!(
            message.contains("on eth1") && message.contains("CAP_BPF"),
            "{message}"
        );
    }

    #[test]
    fn every_problem_at_once_is_reported_once_each_in_label_order() {
        let mut host = ipvs_host();
        host.all.proxy_arp = true;
        host.all.proxy_ndp = true;
        host.packet_sockets_refused.insert("eth0".into());
        host.in_kernel_reply_refused.insert("eth0".into());
        assert_eq!(problems(&host), Problem::ALL.to_vec());
        let labels: BTreeSet<&str> = Problem::ALL.iter().map(|p| p.label()).collect();
        assert_eq!(labels.len(), Problem::ALL.len(), "distinct labels");
    }
}
