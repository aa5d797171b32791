//! The routers the tests peer with, BIRD 2 or FRR, behind one configuration builder and one
//! set of queries, so a scenario runs unchanged against either.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::bird::{Bird, BirdError};
use crate::frr::{Frr, FrrError};
use crate::netns::Host;

/// Which implementation a router runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouterKind {
    Bird,
    Frr,
}

impl RouterKind {
    pub const ALL: [RouterKind; 2] = [RouterKind::Bird, RouterKind::Frr];
}

impl std::fmt::Display for RouterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RouterKind::Bird => "BIRD",
            RouterKind::Frr => "FRR",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Bird(#[from] BirdError),
    #[error(transparent)]
    Frr(#[from] FrrError),
}

/// The router's side of one BGP session (one address family: the family of the addresses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSession {
    /// BIRD's protocol name (FRR names neighbors by address).
    pub name: String,
    pub local: IpAddr,
    pub neighbor: IpAddr,
    pub local_as: u32,
    pub neighbor_as: u32,
    pub password: Option<String>,
    pub bfd: bool,
    pub graceful_restart: bool,
    pub hold: Option<u32>,
    /// Accept several paths per prefix (ADD-PATH receive).
    pub add_paths_rx: bool,
}

impl PeerSession {
    /// An eBGP session over the family of `local`/`neighbor`, ADD-PATH receive on.
    pub fn new(
        name: &str,
        local: IpAddr,
        local_as: u32,
        neighbor: IpAddr,
        neighbor_as: u32,
    ) -> Self {
        Self {
            name: name.to_owned(),
            local,
            neighbor,
            local_as,
            neighbor_as,
            password: None,
            bfd: false,
            graceful_restart: false,
            hold: None,
            add_paths_rx: true,
        }
    }
}

/// A whole router configuration: learn everything from the sessions, send nothing, install
/// BGP routes (ECMP merged) into the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    pub router_id: IpAddr,
    pub sessions: Vec<PeerSession>,
}

impl RouterConfig {
    pub fn bfd(&self) -> bool {
        self.sessions.iter().any(|s| s.bfd)
    }

    /// bird.conf.
    pub fn bird(&self) -> String {
        let mut conf = format!(
            "router id {};\nprotocol device {{ }}\n\
protocol kernel k4 {{ ipv4 {{ export where source = RTS_BGP; }}; merge paths on; }}\n\
protocol kernel k6 {{ ipv6 {{ export where source = RTS_BGP; }}; merge paths on; }}\n",
            self.router_id
        );
        if self.bfd() {
            conf.push_str("protocol bfd { }\n");
        }
        for s in &self.sessions {
            let mut extra = String::new();
            if let Some(password) = &s.password {
                writeln!(extra, "  password \"{password}\";").expect("write to a string");
            }
            if s.bfd {
                extra.push_str("  bfd on;\n");
            }
            if s.graceful_restart {
                extra.push_str("  graceful restart on;\n");
            }
            if let Some(hold) = s.hold {
                writeln!(extra, "  hold time {hold};").expect("write to a string");
            }
            if s.local_as == s.neighbor_as {
                extra.push_str("  direct;\n");
            }
            let add_paths = if s.add_paths_rx { " add paths rx;" } else { "" };
            let channel = if s.neighbor.is_ipv4() {
                format!("  ipv4 {{ import all; export none;{add_paths} }};\n")
            } else {
                format!(
                    "  ipv4 {{ import none; export none; }};\n  ipv6 {{ import all; export none;{add_paths} }};\n"
                )
            };
            write!(
                conf,
                "protocol bgp {} {{\n  local {} as {};\n  neighbor {} as {};\n{extra}{channel}}}\n",
                s.name, s.local, s.local_as, s.neighbor, s.neighbor_as
            )
            .expect("write to a string");
        }
        conf
    }

    /// bird.conf with, besides, a static protocol per family originating `routes` as blackholes
    /// (routes BIRD holds without any session; the kernel protocols export BGP routes only).
    pub fn bird_with_blackholes(&self, routes: &[IpNet]) -> String {
        let mut conf = self.bird();
        for (name, family, v4) in [("s4", "ipv4", true), ("s6", "ipv6", false)] {
            let family_routes: Vec<_> = (routes.iter())
                .filter(|r| matches!(r, IpNet::V4(_)) == v4)
                .map(|r| format!(" route {r} blackhole;"))
                .collect();
            if !family_routes.is_empty() {
                writeln!(
                    conf,
                    "protocol static {name} {{ {family};{} }}",
                    family_routes.concat()
                )
                .expect("write to a string");
            }
        }
        conf
    }

    /// FRR's bgpd configuration: an inbound route map accepting everything (FRR discards
    /// every eBGP route without one), an outbound one denying everything, ECMP over up to
    /// 16 paths.
    pub fn frr(&self) -> String {
        let asn = self.sessions.first().map_or(64500, |s| s.local_as);
        let mut conf = format!(
            "router bgp {asn}\n bgp router-id {}\n no bgp default ipv4-unicast\n",
            self.router_id
        );
        for s in &self.sessions {
            let n = s.neighbor;
            writeln!(conf, " neighbor {n} remote-as {}", s.neighbor_as).expect("write");
            writeln!(conf, " neighbor {n} update-source {}", s.local).expect("write");
            writeln!(conf, " neighbor {n} timers connect 1").expect("write");
            if let Some(password) = &s.password {
                writeln!(conf, " neighbor {n} password {password}").expect("write");
            }
            if s.bfd {
                writeln!(conf, " neighbor {n} bfd").expect("write");
            }
            if s.graceful_restart {
                writeln!(conf, " neighbor {n} graceful-restart").expect("write");
            }
            if let Some(hold) = s.hold {
                writeln!(conf, " neighbor {n} timers {} {hold}", (hold / 3).max(1)).expect("write");
            }
        }
        for (afi, v4) in [("ipv4", true), ("ipv6", false)] {
            let sessions: Vec<_> = (self.sessions.iter())
                .filter(|s| s.neighbor.is_ipv4() == v4)
                .collect();
            if sessions.is_empty() {
                continue;
            }
            writeln!(conf, " address-family {afi} unicast").expect("write");
            conf.push_str("  maximum-paths 16\n  maximum-paths ibgp 16\n");
            for s in sessions {
                let n = s.neighbor;
                writeln!(conf, "  neighbor {n} activate").expect("write");
                writeln!(conf, "  neighbor {n} route-map ccm-in in").expect("write");
                writeln!(conf, "  neighbor {n} route-map ccm-out out").expect("write");
                if !s.add_paths_rx {
                    writeln!(conf, "  neighbor {n} disable-addpath-rx").expect("write");
                }
            }
            conf.push_str(" exit-address-family\n");
        }
        conf.push_str("exit\nroute-map ccm-in permit 10\nexit\nroute-map ccm-out deny 10\nexit\n");
        conf
    }
}

/// One path of a prefix at a router, whichever kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterPath {
    /// The session's neighbor it came from.
    pub neighbor: Option<IpAddr>,
    pub next_hops: Vec<IpAddr>,
    /// Kept for a restarting neighbor (graceful restart), not refreshed yet. BIRD 2.0 shows no
    /// per-route flag: there every path of a session in graceful-restart recovery ("Neighbor
    /// graceful restart active", until the neighbor's End-of-RIB) counts as stale, so "none
    /// stale" at BIRD means it has finished the recovery and dropped what was not refreshed.
    pub stale: bool,
    /// `asn:value`.
    pub communities: BTreeSet<String>,
    /// `global:local1:local2`.
    pub large_communities: BTreeSet<String>,
    pub local_pref: Option<u64>,
    /// The AS path, ASNs separated by spaces (`64512`).
    pub as_path: String,
    /// `IGP`, `EGP` or `incomplete` (as the router prints it).
    pub origin: Option<String>,
}

/// A running router of either kind.
#[derive(Debug)]
pub enum Router {
    Bird { bird: Bird, config: RouterConfig },
    Frr { frr: Frr, config: RouterConfig },
}

impl Router {
    /// Starts a router of `kind` in `host` with `config`.
    pub async fn start(
        kind: RouterKind,
        host: &Host,
        config: RouterConfig,
    ) -> Result<Router, RouterError> {
        Ok(match kind {
            RouterKind::Bird => Router::Bird {
                bird: Bird::start(host, &config.bird()).await?,
                config,
            },
            RouterKind::Frr => Router::Frr {
                frr: Frr::start(host, &config.frr(), config.bfd()).await?,
                config,
            },
        })
    }

    /// Starts FRR with a configuration written by hand (e.g. taken from the docs).
    pub async fn start_frr_with(
        host: &Host,
        text: &str,
        bfd: bool,
        config: RouterConfig,
    ) -> Result<Router, RouterError> {
        Ok(Router::Frr {
            frr: Frr::start(host, text, bfd).await?,
            config,
        })
    }

    /// Starts BIRD with a configuration written by hand (e.g. taken from the docs).
    pub async fn start_bird_with(
        host: &Host,
        text: &str,
        config: RouterConfig,
    ) -> Result<Router, RouterError> {
        Ok(Router::Bird {
            bird: Bird::start(host, text).await?,
            config,
        })
    }

    /// Kills the router and starts it again with its configuration (a reboot: sessions and
    /// routes are lost, BFD sessions re-created).
    pub async fn restart(&mut self) -> Result<(), RouterError> {
        match self {
            Router::Bird { bird, .. } => bird.restart().await?,
            Router::Frr { frr, .. } => frr.restart().await?,
        }
        Ok(())
    }

    pub fn kind(&self) -> RouterKind {
        match self {
            Router::Bird { .. } => RouterKind::Bird,
            Router::Frr { .. } => RouterKind::Frr,
        }
    }

    pub fn config(&self) -> &RouterConfig {
        match self {
            Router::Bird { config, .. } | Router::Frr { config, .. } => config,
        }
    }

    pub fn bird(&self) -> Option<&Bird> {
        match self {
            Router::Bird { bird, .. } => Some(bird),
            Router::Frr { .. } => None,
        }
    }

    pub fn frr(&self) -> Option<&Frr> {
        match self {
            Router::Frr { frr, .. } => Some(frr),
            Router::Bird { .. } => None,
        }
    }

    fn session_name(&self, neighbor: IpAddr) -> Option<&str> {
        (self.config().sessions.iter())
            .find(|s| s.neighbor == neighbor)
            .map(|s| s.name.as_str())
    }

    fn neighbor_of(&self, protocol: &str) -> Option<IpAddr> {
        (self.config().sessions.iter())
            .find(|s| s.name == protocol)
            .map(|s| s.neighbor)
    }

    /// The neighbor of the configured session `session` (e.g. `spk4`); the tests name only
    /// sessions they configured.
    pub fn neighbor(&self, session: &str) -> IpAddr {
        self.neighbor_of(session)
            .unwrap_or_else(|| panic!("no session {session} at the {}", self.kind()))
    }

    /// Every path the router holds for `prefix`.
    pub fn paths(&self, prefix: &IpNet) -> Result<Vec<RouterPath>, RouterError> {
        match self {
            Router::Bird { bird, .. } => {
                let restarting = bird_restarting(&bird.birdc(&["show", "protocols", "all"])?);
                Ok((bird.routes()?.into_iter())
                    .filter(|r| r.prefix == *prefix)
                    .map(|r| RouterPath {
                        neighbor: self.neighbor_of(&r.protocol),
                        stale: restarting.contains(&r.protocol),
                        communities: bird_pairs(r.attributes.get("BGP.community")),
                        large_communities: bird_pairs(r.attributes.get("BGP.large_community")),
                        local_pref: (r.attributes.get("BGP.local_pref"))
                            .and_then(|v| v.parse().ok()),
                        as_path: (r.attributes.get("BGP.as_path"))
                            .cloned()
                            .unwrap_or_default(),
                        origin: r.attributes.get("BGP.origin").cloned(),
                        next_hops: r.next_hops,
                    })
                    .collect())
            }
            Router::Frr { frr, .. } => Ok((frr.paths(prefix)?.into_iter())
                .map(|p| RouterPath {
                    neighbor: p.peer,
                    next_hops: p.next_hops,
                    stale: p.stale,
                    communities: p.communities.into_iter().collect(),
                    large_communities: p.large_communities.into_iter().collect(),
                    local_pref: p.local_pref,
                    as_path: p.as_path,
                    origin: p.origin,
                })
                .collect()),
        }
    }

    /// Whether the session with `neighbor` is Established.
    pub fn established(&self, neighbor: IpAddr) -> bool {
        match self {
            Router::Bird { bird, .. } => self
                .session_name(neighbor)
                .and_then(|name| bird.protocol_info(name).ok())
                .is_some_and(|info| info.contains("Established")),
            Router::Frr { frr, .. } => frr.neighbors().is_ok_and(|all| {
                all.iter()
                    .any(|n| n.address == neighbor && n.state == "Established")
            }),
        }
    }

    /// Routes (paths) accepted from `neighbor`.
    pub fn imported(&self, neighbor: IpAddr) -> Option<u64> {
        match self {
            Router::Bird { bird, .. } => {
                let name = self.session_name(neighbor)?;
                let info = bird.birdc(&["show", "protocols", "all", name]).ok()?;
                (info.lines())
                    .find_map(|l| l.trim().strip_prefix("Routes:"))
                    .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            }
            Router::Frr { frr, .. } => frr
                .neighbors()
                .ok()?
                .into_iter()
                .find(|n| n.address == neighbor)
                .map(|n| n.accepted),
        }
    }

    /// The router's own view of its sessions, for failure messages.
    pub fn describe(&self) -> String {
        match self {
            Router::Bird { bird, .. } => bird
                .birdc(&["show", "protocols", "all"])
                .unwrap_or_else(|e| e.to_string()),
            Router::Frr { frr, .. } => frr
                .vtysh(&["show bgp summary", "show bfd peers brief"])
                .unwrap_or_else(|e| e.to_string()),
        }
    }

    /// The router's log tail.
    pub fn log_tail(&self) -> String {
        match self {
            Router::Bird { bird, .. } => {
                std::fs::read_to_string(bird.log_path()).unwrap_or_default()
            }
            Router::Frr { frr, .. } => frr.log_tail(8000),
        }
    }
}

/// The protocols of `birdc show protocols all` that keep their routes for a restarting
/// neighbor (graceful-restart recovery).
fn bird_restarting(text: &str) -> BTreeSet<String> {
    let mut restarting = BTreeSet::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            current = line.split_whitespace().next();
        } else if line.contains("Neighbor graceful restart active") {
            restarting.extend(current.map(str::to_owned));
        }
    }
    restarting
}

/// BIRD prints `(64512,100) (64512,200)` and `(64512, 7, 9)`: the same as `asn:value` strings.
fn bird_pairs(value: Option<&String>) -> BTreeSet<String> {
    let Some(value) = value else {
        return BTreeSet::new();
    };
    value
        .split(')')
        .filter_map(|part| {
            let inner = part.trim().strip_prefix('(')?;
            Some(
                inner
                    .split(',')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(":"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_communities_read_as_colon_pairs() {
        let pairs = bird_pairs(Some(&"(64512,100) (64512,200)".to_owned()));
        assert_eq!(
            pairs,
            BTreeSet::from(["64512:100".into(), "64512:200".into()])
        );
        let large = bird_pairs(Some(&"(64512, 7, 9)".to_owned()));
        assert_eq!(large, BTreeSet::from(["64512:7:9".to_owned()]));
    }

    #[test]
    fn bird_sessions_in_graceful_restart_recovery_are_found() {
        let text = [
            "BIRD 2.0.12 ready.",
            "Name       Proto      Table      State  Since         Info",
            "s11v4      BGP        ---        up     22:10:11.602  Established",
            "  BGP state:          Established",
            "s12v4      BGP        ---        start  22:10:12.000  Active        Socket: Connection closed",
            "  BGP state:          Active",
            "    Neighbor graceful restart active",
            "k4         Kernel     master4    up     22:10:10.000",
        ]
        .join("\n");
        assert_eq!(bird_restarting(&text), BTreeSet::from(["s12v4".to_owned()]));
    }

    #[test]
    fn frr_config_accepts_in_denies_out_and_balances() {
        let config = RouterConfig {
            router_id: "198.51.100.1".parse().unwrap(),
            sessions: vec![PeerSession::new(
                "s",
                "198.51.100.1".parse().unwrap(),
                64500,
                "198.51.100.2".parse().unwrap(),
                64512,
            )],
        };
        let text = config.frr();
        for line in [
            "neighbor 198.51.100.2 route-map ccm-in in",
            "neighbor 198.51.100.2 route-map ccm-out out",
            "maximum-paths 16",
            "route-map ccm-out deny 10",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
        assert!(!text.contains("ipv6 unicast"));
    }
}
