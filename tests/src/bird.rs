//! A real BIRD 2 inside a lab namespace, and its routes read back in structured form.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ipnet::IpNet;

use crate::netns::Host;
use crate::process::{Process, ProcessError, run, wait_for};
use crate::tools::{Tool, ToolError};

#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("filesystem error under {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("BIRD did not start within {seconds}s; log tail:\n{log}")]
    NotReady { seconds: u64, log: String },
}

/// One route as `birdc show route all` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdRoute {
    pub table: String,
    pub prefix: IpNet,
    /// The protocol instance that supplied the route (e.g. the BGP session's name).
    pub protocol: String,
    /// Whether BIRD selected this route as best (`*`).
    pub primary: bool,
    pub next_hops: Vec<IpAddr>,
    /// Attribute lines such as `BGP.local_pref` → `100`, `BGP.community` → `(65000,1)`.
    pub attributes: BTreeMap<String, String>,
}

/// A running `bird` with its control socket.
#[derive(Debug)]
pub struct Bird {
    process: Process,
    host: Host,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Bird {
    /// Starts BIRD in `host` with `config` (the whole bird.conf text); returns once it answers.
    pub async fn start(host: &Host, config: &str) -> Result<Self, BirdError> {
        let dir = tempfile::Builder::new()
            .prefix("bmccm-bird-")
            .tempdir()
            .map_err(|source| BirdError::Io {
                path: "/tmp".into(),
                source,
            })?;
        let conf = dir.path().join("bird.conf");
        std::fs::write(&conf, config).map_err(|source| BirdError::Io {
            path: conf.clone(),
            source,
        })?;
        let socket = dir.path().join("bird.ctl");
        let process = spawn(host, dir.path(), &socket)?;
        let bird = Self {
            process,
            host: host.clone(),
            socket,
            dir,
        };
        bird.wait_ready().await?;
        Ok(bird)
    }

    async fn wait_ready(&self) -> Result<(), BirdError> {
        let ready = wait_for(Duration::from_secs(10), || async {
            self.birdc(&["show", "status"]).ok().map(drop)
        })
        .await;
        if ready.is_none() {
            return Err(BirdError::NotReady {
                seconds: 10,
                log: self.process.log_tail(4000),
            });
        }
        Ok(())
    }

    /// Kills BIRD (SIGKILL) and starts it again with the same configuration, as a router
    /// reboot would.
    pub async fn restart(&mut self) -> Result<(), BirdError> {
        self.process.kill();
        if self.socket.exists() {
            std::fs::remove_file(&self.socket).map_err(|source| BirdError::Io {
                path: self.socket.clone(),
                source,
            })?;
        }
        self.process = spawn(&self.host, self.dir.path(), &self.socket)?;
        self.wait_ready().await
    }

    /// Runs `birdc` with `args` against this BIRD and returns its output.
    pub fn birdc(&self, args: &[&str]) -> Result<String, BirdError> {
        let mut cmd = Command::new(Tool::Birdc.path()?);
        cmd.arg("-s").arg(&self.socket).args(args);
        Ok(run(cmd)?)
    }

    /// All routes of all tables (`show route all`).
    pub fn routes(&self) -> Result<Vec<BirdRoute>, BirdError> {
        Ok(parse_show_route_all(
            &self.birdc(&["show", "route", "all"])?,
        ))
    }

    /// The state column of `show protocols` for `protocol` (e.g. `Established`).
    pub fn protocol_info(&self, protocol: &str) -> Result<String, BirdError> {
        let text = self.birdc(&["show", "protocols", protocol])?;
        Ok(text
            .lines()
            .find(|line| line.split_whitespace().next() == Some(protocol))
            .map(|line| {
                line.split_whitespace()
                    .skip(5)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default())
    }

    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The control socket (for [`crate::bird_control::BirdControl`]).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn spawn(host: &Host, dir: &Path, socket: &Path) -> Result<Process, BirdError> {
    let mut cmd = host.command(Tool::Bird.path()?);
    cmd.arg("-f")
        .arg("-c")
        .arg(dir.join("bird.conf"))
        .arg("-s")
        .arg(socket)
        .arg("-P")
        .arg(dir.join("bird.pid"));
    Ok(Process::spawn("bird", cmd, &dir.join("bird.log"))?)
}

/// Parses `birdc show route all` output (BIRD 2.0 format).
pub fn parse_show_route_all(text: &str) -> Vec<BirdRoute> {
    let mut routes: Vec<BirdRoute> = Vec::new();
    let mut table = String::new();
    let mut prefix: Option<IpNet> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Table ") {
            table = rest.trim_end_matches(':').to_owned();
            continue;
        }
        if line.starts_with('\t') || line.starts_with("        \t") {
            let Some(route) = routes.last_mut() else {
                continue;
            };
            let body = line.trim();
            if body.starts_with("via ") {
                route.next_hops.extend(via_hop(body));
            } else if let Some((key, value)) = body.split_once(": ") {
                route.attributes.insert(key.to_owned(), value.to_owned());
            } else if let Some(key) = body.strip_suffix(':') {
                route.attributes.insert(key.to_owned(), String::new());
            }
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || line.starts_with("BIRD ") || line.starts_with("Access ") {
            continue;
        }
        let mut tokens = trimmed.split_whitespace();
        let first = tokens.next().unwrap_or_default();
        if !line.starts_with(' ') {
            match first.parse::<IpNet>() {
                Ok(p) => prefix = Some(p),
                Err(_) => continue,
            }
        }
        let Some(current) = prefix else { continue };
        // The route line: `[prefix] <type> [<protocol> <since>] [*] (<pref>) ...`.
        let protocol = trimmed
            .split_once('[')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or_default()
            .trim_end_matches(']')
            .to_owned();
        let primary = trimmed
            .split_once(']')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('*'));
        let mut route = BirdRoute {
            table: table.clone(),
            prefix: current,
            protocol,
            primary,
            next_hops: Vec::new(),
            attributes: BTreeMap::new(),
        };
        // Single-line form: `... via 192.0.2.2 on eth0 ...` on the route line itself.
        route.next_hops.extend(via_hop(trimmed));
        routes.push(route);
    }
    routes
}

/// The address after the first `via ` in `text`, if any.
fn via_hop(text: &str) -> Option<IpAddr> {
    let (_, rest) = text.split_once("via ")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from BIRD 2.0.12 (Debian bookworm) in the rig's `bgp_rig` topology, plus a
    /// second route for the IPv4 prefix in the continuation form BIRD prints for alternatives.
    const SAMPLE: &str = "BIRD 2.0.12 ready.
Table master4:
198.51.100.10/32     unicast [spk4 22:30:18.380] * (100) [AS64512i]
\tvia 192.0.2.1 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64512
\tBGP.next_hop: 192.0.2.1
\tBGP.local_pref: 100
                     unicast [spk4b 22:30:19.001] (100) [AS64512i]
\tvia 192.0.2.2 on eth0
\tType: BGP univ
\tBGP.community: (64512,100) (64512,200)

Table master6:
2001:db8:100::10/128 unicast [spk6 22:30:18.300] * (100) [AS64512i]
\tvia 2001:db8::1 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64512
\tBGP.next_hop: 2001:db8::1
\tBGP.local_pref: 100
";

    #[test]
    fn show_route_all_is_parsed_into_routes_with_attributes() {
        let routes = parse_show_route_all(SAMPLE);
        assert_eq!(routes.len(), 3);
        let first = &routes[0];
        assert_eq!(first.table, "master4");
        assert_eq!(first.prefix, "198.51.100.10/32".parse::<IpNet>().unwrap());
        assert_eq!((first.protocol.as_str(), first.primary), ("spk4", true));
        assert_eq!(first.next_hops, ["192.0.2.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(first.attributes["BGP.local_pref"], "100");

        let alternative = &routes[1];
        assert_eq!(
            alternative.prefix, first.prefix,
            "a continuation line belongs to the previous prefix"
        );
        assert_eq!(
            (alternative.protocol.as_str(), alternative.primary),
            ("spk4b", false)
        );
        assert_eq!(
            alternative.attributes["BGP.community"],
            "(64512,100) (64512,200)"
        );

        assert_eq!(routes[2].table, "master6");
        assert_eq!(
            routes[2].next_hops,
            ["2001:db8::1".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn empty_tables_yield_no_routes() {
        assert!(
            parse_show_route_all("BIRD 2.0.12 ready.\nTable master4:\n\nTable master6:\n")
                .is_empty()
        );
    }
}
