//! A real FRR (zebra, bgpd and, when asked, bfdd) inside a lab namespace, never the packaged
//! system service: each instance has its own directory for configuration, pid files, the
//! zserv socket and the vty sockets `vtysh` talks to. Queries go through `vtysh` and FRR's
//! JSON output.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;

use crate::netns::Host;
use crate::process::{Process, ProcessError, run, wait_for};
use crate::tools::{Tool, ToolError};

#[derive(Debug, thiserror::Error)]
pub enum FrrError {
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
    #[error("FRR ({daemon}) did not answer within {seconds}s; log tail:\n{log}")]
    NotReady {
        daemon: &'static str,
        seconds: u64,
        log: String,
    },
    #[error("vtysh `{command}` printed something that is not JSON: {text}")]
    Json {
        command: String,
        text: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The FRR user the daemons drop privileges to (created by Debian's package). The daemons
/// refuse to run as root unless root is in FRR's vty group, so they run as `frr` and the
/// instance directory belongs to it.
const FRR_USER: &str = "frr";

/// A running FRR instance.
#[derive(Debug)]
pub struct Frr {
    /// Stopped in reverse order (bgpd and bfdd before zebra).
    daemons: Vec<Process>,
    host: Host,
    dir: tempfile::TempDir,
    bfd: bool,
    bgpd_config: String,
    runs: u32,
}

impl Frr {
    /// Starts zebra and bgpd (and bfdd when `bfd`) in `host`, bgpd with `bgpd_config` (FRR
    /// configuration text: `router bgp …`, route maps, prefix lists; a `bfd` block goes to
    /// bfdd). Returns once bgpd answers.
    pub async fn start(host: &Host, bgpd_config: &str, bfd: bool) -> Result<Self, FrrError> {
        let dir = tempfile::Builder::new()
            .prefix("bmccm-frr-")
            .tempdir()
            .map_err(|source| FrrError::Io {
                path: "/tmp".into(),
                source,
            })?;
        let mut frr = Self {
            daemons: Vec::new(),
            host: host.clone(),
            dir,
            bfd,
            bgpd_config: bgpd_config.to_owned(),
            runs: 0,
        };
        frr.launch().await?;
        Ok(frr)
    }

    fn write(&self, name: &str, text: &str) -> Result<PathBuf, FrrError> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).map_err(|source| FrrError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    async fn launch(&mut self) -> Result<(), FrrError> {
        self.runs += 1;
        let (bfd_block, bgp_block) = split_bfd_block(&self.bgpd_config);
        self.write("zebra.conf", "")?;
        self.write("bgpd.conf", &bgp_block)?;
        self.write("bfdd.conf", &bfd_block)?;
        let mut chown = Command::new("chown");
        chown
            .arg("-R")
            .arg(format!("{FRR_USER}:{FRR_USER}"))
            .arg(self.dir.path());
        run(chown)?;
        self.spawn("zebra", Tool::FrrZebra, &[])?;
        self.wait_vty("zebra", "zebra.vty").await?;
        if self.bfd {
            let ctl = self.dir.path().join("bfdd.sock");
            let ctl = ctl.display().to_string();
            self.spawn("bfdd", Tool::FrrBfdd, &["--bfdctl", &ctl])?;
            self.wait_vty("bfdd", "bfdd.vty").await?;
        }
        self.spawn("bgpd", Tool::FrrBgpd, &[])?;
        self.wait_vty("bgpd", "bgpd.vty").await?;
        let ready = wait_for(Duration::from_secs(10), || async {
            self.vtysh(&["show bgp summary json"]).ok().map(drop)
        })
        .await;
        ready.ok_or_else(|| self.not_ready("bgpd"))
    }

    fn spawn(&mut self, daemon: &'static str, tool: Tool, extra: &[&str]) -> Result<(), FrrError> {
        let dir = self.dir.path();
        let mut cmd = self.host.command(tool.path()?);
        cmd.arg("-f")
            .arg(dir.join(format!("{daemon}.conf")))
            .arg("-i")
            .arg(dir.join(format!("{daemon}.pid")))
            .arg("--vty_socket")
            .arg(dir)
            .arg("-z")
            .arg(dir.join("zserv.api"))
            .args(["-u", FRR_USER, "-g", FRR_USER])
            // No TCP vty listener: vtysh uses the sockets.
            .args(["-P", "0"])
            .arg(format!(
                "--log=file:{}",
                dir.join(format!("{daemon}.log")).display()
            ))
            .args(extra);
        let out = dir.join(format!("{daemon}-{}.out", self.runs));
        self.daemons.push(Process::spawn(daemon, cmd, &out)?);
        Ok(())
    }

    async fn wait_vty(&self, daemon: &'static str, socket: &str) -> Result<(), FrrError> {
        let path = self.dir.path().join(socket);
        let up = wait_for(Duration::from_secs(10), || async {
            path.exists().then_some(())
        })
        .await;
        up.ok_or_else(|| self.not_ready(daemon))
    }

    fn not_ready(&self, daemon: &'static str) -> FrrError {
        FrrError::NotReady {
            daemon,
            seconds: 10,
            log: self.log_tail(4000),
        }
    }

    /// Kills every daemon (SIGKILL, as a crash) and starts them again with the same
    /// configuration, as a router reboot would.
    pub async fn restart(&mut self) -> Result<(), FrrError> {
        self.kill();
        for name in [
            "zebra.vty",
            "bgpd.vty",
            "bfdd.vty",
            "zserv.api",
            "bfdd.sock",
        ] {
            let path = self.dir.path().join(name);
            if path.exists() {
                std::fs::remove_file(&path).map_err(|source| FrrError::Io { path, source })?;
            }
        }
        self.launch().await
    }

    /// Kills every daemon.
    pub fn kill(&mut self) {
        for mut daemon in self.daemons.drain(..).rev() {
            daemon.kill();
        }
    }

    /// Runs `vtysh -c <command>` for each command against this instance.
    pub fn vtysh(&self, commands: &[&str]) -> Result<String, FrrError> {
        let mut cmd = Command::new(Tool::Vtysh.path()?);
        cmd.arg("--vty_socket").arg(self.dir.path());
        for command in commands {
            cmd.arg("-c").arg(command);
        }
        Ok(run(cmd)?)
    }

    /// `vtysh -c <command>` parsed as JSON.
    pub fn json(&self, command: &str) -> Result<Value, FrrError> {
        let text = self.vtysh(&[command])?;
        serde_json::from_str(&text).map_err(|source| FrrError::Json {
            command: command.to_owned(),
            text,
            source,
        })
    }

    /// Every path bgpd holds for `prefix` (`show bgp <afi> unicast <prefix> json`).
    pub fn paths(&self, prefix: &IpNet) -> Result<Vec<FrrPath>, FrrError> {
        let afi = if matches!(prefix, IpNet::V4(_)) {
            "ipv4"
        } else {
            "ipv6"
        };
        let json = self.json(&format!("show bgp {afi} unicast {prefix} json"))?;
        Ok(parse_paths(&json))
    }

    /// The state of each neighbor (`show bgp neighbors json`): address → (`bgpState`, the
    /// prefixes accepted from it over all families).
    pub fn neighbors(&self) -> Result<Vec<FrrNeighbor>, FrrError> {
        Ok(parse_neighbors(&self.json("show bgp neighbors json")?))
    }

    /// The kernel routes zebra knows for `prefix` (`show ip route <prefix> json`): the next
    /// hops of routes installed in the FIB.
    pub fn fib_next_hops(&self, prefix: &IpNet) -> Result<Vec<IpAddr>, FrrError> {
        let family = if matches!(prefix, IpNet::V4(_)) {
            "ip"
        } else {
            "ipv6"
        };
        let json = self.json(&format!("show {family} route {prefix} json"))?;
        Ok(parse_fib_next_hops(&json, prefix))
    }

    /// The daemons' log files, concatenated tails (for failure messages).
    pub fn log_tail(&self, max_bytes: usize) -> String {
        let mut out = String::new();
        for daemon in &self.daemons {
            out.push_str(&daemon.log_tail(max_bytes / 4));
        }
        for name in ["zebra.log", "bgpd.log", "bfdd.log"] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let start = text.len().saturating_sub(max_bytes / 4);
            let start = (start..text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(text.len());
            out.push_str(&format!("--- {name}\n{}", &text[start..]));
        }
        out
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One path of a prefix at FRR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrrPath {
    /// The neighbor it came from.
    pub peer: Option<IpAddr>,
    pub next_hops: Vec<IpAddr>,
    pub stale: bool,
    pub valid: bool,
    /// The ADD-PATH identifier it was received with (0 without ADD-PATH).
    pub rx_path_id: u64,
    /// `asn:value` strings.
    pub communities: Vec<String>,
    /// `global:local1:local2` strings.
    pub large_communities: Vec<String>,
    pub local_pref: Option<u64>,
    /// The AS path as FRR prints it (`64512`), empty for a local route.
    pub as_path: String,
    pub origin: Option<String>,
}

/// A BGP neighbor at FRR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrrNeighbor {
    pub address: IpAddr,
    pub state: String,
    /// Prefixes accepted from the neighbor, summed over its families.
    pub accepted: u64,
}

fn split_bfd_block(config: &str) -> (String, String) {
    // A top-level `bfd` block (up to its `exit`) belongs to bfdd, the rest to bgpd.
    let mut bfd = String::new();
    let mut bgp = String::new();
    let mut in_bfd = false;
    for line in config.lines() {
        if line == "bfd" {
            in_bfd = true;
        }
        if in_bfd {
            bfd.push_str(line);
            bfd.push('\n');
            if line == "exit" {
                in_bfd = false;
            }
        } else {
            bgp.push_str(line);
            bgp.push('\n');
        }
    }
    (bfd, bgp)
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(|v| v.get("string"))
        .and_then(Value::as_str)
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn parse_paths(json: &Value) -> Vec<FrrPath> {
    let Some(paths) = json.get("paths").and_then(Value::as_array) else {
        return Vec::new();
    };
    paths
        .iter()
        .map(|p| FrrPath {
            peer: (p.pointer("/peer/peerId").and_then(Value::as_str)).and_then(|s| s.parse().ok()),
            next_hops: (p.get("nexthops").and_then(Value::as_array))
                .map(|hops| {
                    hops.iter()
                        .filter_map(|h| h.get("ip")?.as_str()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
            stale: p.get("stale").and_then(Value::as_bool).unwrap_or(false),
            valid: p.get("valid").and_then(Value::as_bool).unwrap_or(false),
            rx_path_id: p.get("addpathRxId").and_then(Value::as_u64).unwrap_or(0),
            communities: strings(p.get("community")),
            large_communities: strings(p.get("largeCommunity")),
            local_pref: p.get("locPrf").and_then(Value::as_u64),
            as_path: (p.pointer("/aspath/string").and_then(Value::as_str))
                .unwrap_or_default()
                .to_owned(),
            origin: (p.get("origin").and_then(Value::as_str)).map(str::to_owned),
        })
        .collect()
}

fn parse_neighbors(json: &Value) -> Vec<FrrNeighbor> {
    let Some(map) = json.as_object() else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(address, n)| {
            let address = address.parse().ok()?;
            let state = n.get("bgpState")?.as_str()?.to_owned();
            let accepted = (n.get("addressFamilyInfo").and_then(Value::as_object))
                .map(|families| {
                    families
                        .values()
                        .filter_map(|f| f.get("acceptedPrefixCounter")?.as_u64())
                        .sum()
                })
                .unwrap_or(0);
            Some(FrrNeighbor {
                address,
                state,
                accepted,
            })
        })
        .collect()
}

fn parse_fib_next_hops(json: &Value, prefix: &IpNet) -> Vec<IpAddr> {
    let Some(routes) = json.get(prefix.to_string()).and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut hops: Vec<IpAddr> = routes
        .iter()
        .filter(|r| r.get("installed").and_then(Value::as_bool) == Some(true))
        .flat_map(|r| {
            (r.get("nexthops").and_then(Value::as_array))
                .into_iter()
                .flatten()
                .filter(|h| h.get("fib").and_then(Value::as_bool) == Some(true))
                .filter_map(|h| h.get("ip")?.as_str()?.parse().ok())
        })
        .collect();
    hops.sort();
    hops
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shape of `show bgp ipv4 unicast 192.0.2.0/32 json` from FRR 8.4.4 (Debian bookworm)
    /// in the rig, trimmed to the fields read: a fresh path and a stale one over ADD-PATH.
    const PATHS: &str = r#"{"prefix":"192.0.2.0/32","paths":[
      {"aspath":{"string":"64512"},"origin":"IGP","valid":true,"community":{"string":"64512:100"},
       "largeCommunity":{"string":"64512:7:9"},"addpathRxId":2,"locPrf":100,
       "nexthops":[{"ip":"198.51.100.12","afi":"ipv4","used":true}],
       "peer":{"peerId":"198.51.100.2","routerId":"198.51.100.2","type":"external"}},
      {"valid":true,"stale":true,"addpathRxId":4,
       "nexthops":[{"ip":"198.51.100.13","afi":"ipv4","used":true}],
       "peer":{"peerId":"198.51.100.2"}}]}"#;

    #[test]
    fn paths_are_read_with_stale_flag_identifier_and_communities() {
        let paths = parse_paths(&serde_json::from_str(PATHS).unwrap());
        assert_eq!(paths.len(), 2);
        assert_eq!(paths[0].communities, ["64512:100"]);
        assert_eq!(paths[0].large_communities, ["64512:7:9"]);
        assert_eq!(paths[0].as_path, "64512");
        assert_eq!(paths[0].origin.as_deref(), Some("IGP"));
        assert_eq!((paths[0].stale, paths[0].rx_path_id), (false, 2));
        assert_eq!((paths[1].stale, paths[1].rx_path_id), (true, 4));
        assert_eq!(
            paths[1].next_hops,
            ["198.51.100.13".parse::<IpAddr>().unwrap()]
        );
        assert!(parse_paths(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn a_bfd_block_goes_to_bfdd_and_the_rest_to_bgpd() {
        let (bfd, bgp) =
            split_bfd_block("router bgp 1\n neighbor x bfd\nexit\nbfd\n profile p\n exit\nexit\n");
        assert_eq!(bfd, "bfd\n profile p\n exit\nexit\n");
        assert_eq!(bgp, "router bgp 1\n neighbor x bfd\nexit\n");
    }
}
