//! Network-namespace topologies for tests: hosts, layer-2 segments (bridges) and veth links.
//!
//! Every namespace of a [`Lab`] carries the lab's unique prefix and is deleted when the lab
//! is dropped, panics included. Tests use only documentation address ranges
//! (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) inside these namespaces.

use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use ipnet::IpNet;

use crate::process::{ProcessError, run};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error(transparent)]
    Command(#[from] ProcessError),
    #[error(
        "network namespace name {0:?} is too long (the lab prefix plus name must fit 15 characters)"
    )]
    NameTooLong(String),
}

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// A set of network namespaces removed together on drop.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
}

/// A network namespace acting as one machine. Cheap to clone; the [`Lab`] owns its lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    name: String,
}

/// A layer-2 segment: a bridge `br0` inside a namespace of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    host: Host,
}

impl Lab {
    /// A new, empty lab with a prefix unique to this process and call.
    pub fn new() -> Result<Self, NetnsError> {
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("bm{:x}{n:x}", std::process::id() % 0xfffff);
        Ok(Self {
            prefix,
            namespaces: Vec::new(),
        })
    }

    fn namespace(&mut self, name: &str) -> Result<Host, NetnsError> {
        let full = format!("{}-{name}", self.prefix);
        if full.len() > 30 {
            return Err(NetnsError::NameTooLong(full));
        }
        run(ip(["netns", "add", &full]))?;
        self.namespaces.push(full.clone());
        let host = Host { name: full };
        host.run(["ip", "link", "set", "lo", "up"])?;
        // Addresses must be usable at once: no duplicate address detection in a test lab.
        host.run(["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"])?;
        host.run(["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"])?;
        Ok(host)
    }

    /// Adds a host (a namespace with loopback up).
    pub fn host(&mut self, name: &str) -> Result<Host, NetnsError> {
        self.namespace(name)
    }

    /// Adds a layer-2 segment (a bridge in its own namespace).
    pub fn segment(&mut self, name: &str) -> Result<Segment, NetnsError> {
        let host = self.namespace(name)?;
        host.run([
            "ip",
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
            "stp_state",
            "0",
        ])?;
        host.run(["ip", "link", "set", "br0", "up"])?;
        Ok(Segment { host })
    }

    /// A new host `name` plugged into `segment` at `eth0`, addressed with `addrs`: the usual
    /// member of a one-segment fabric.
    pub fn host_on(
        &mut self,
        name: &str,
        segment: &Segment,
        addrs: &[IpNet],
    ) -> Result<Host, NetnsError> {
        let host = self.host(name)?;
        self.connect(&host, segment, "eth0", addrs)?;
        Ok(host)
    }

    /// Plugs `host` into `segment` with a veth named `ifname` on the host, addressed with `addrs`.
    pub fn connect(
        &mut self,
        host: &Host,
        segment: &Segment,
        ifname: &str,
        addrs: &[IpNet],
    ) -> Result<(), NetnsError> {
        let n = segment
            .host
            .run_capture(["ip", "-o", "link", "show", "master", "br0"])?
            .lines()
            .count();
        let port = format!("p{n}");
        run(ip([
            "link",
            "add",
            ifname,
            "netns",
            &host.name,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            &segment.host.name,
        ]))?;
        segment
            .host
            .run(["ip", "link", "set", &port, "master", "br0", "up"])?;
        host.configure(ifname, addrs)
    }

    /// Links two hosts directly with a veth pair (`a_if` in `a`, `b_if` in `b`).
    pub fn link(
        &mut self,
        a: &Host,
        a_if: &str,
        a_addrs: &[IpNet],
        b: &Host,
        b_if: &str,
        b_addrs: &[IpNet],
    ) -> Result<(), NetnsError> {
        run(ip([
            "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
            &b.name,
        ]))?;
        a.configure(a_if, a_addrs)?;
        b.configure(b_if, b_addrs)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in self.namespaces.drain(..).rev() {
            if let Err(error) = run(ip(["netns", "del", &name])) {
                eprintln!("rig: could not delete network namespace {name}: {error}");
            }
        }
    }
}

fn ip<const N: usize>(args: [&str; N]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    cmd
}

impl Host {
    /// The namespace name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs inside this namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs a command inside the namespace; a non-zero exit is an error.
    pub fn run<const N: usize>(&self, argv: [&str; N]) -> Result<(), NetnsError> {
        self.run_capture(argv).map(drop)
    }

    /// Runs a command inside the namespace and returns its stdout.
    pub fn run_capture<const N: usize>(&self, argv: [&str; N]) -> Result<String, NetnsError> {
        let (program, rest) = argv.split_first().expect("a command line has a program");
        let mut cmd = self.command(program);
        cmd.args(rest);
        Ok(run(cmd)?)
    }

    fn configure(&self, ifname: &str, addrs: &[IpNet]) -> Result<(), NetnsError> {
        for addr in addrs {
            let addr = addr.to_string();
            if addr.contains(':') {
                self.run(["ip", "addr", "add", &addr, "dev", ifname, "nodad"])?;
            } else {
                self.run(["ip", "addr", "add", &addr, "dev", ifname])?;
            }
        }
        self.run(["ip", "link", "set", ifname, "up"])
    }

    /// The kernel's routes for `prefix` in this namespace's main table, as next-hop addresses
    /// (several for an ECMP route), from `ip -j route`.
    pub fn kernel_next_hops(&self, prefix: &IpNet) -> Result<Vec<IpAddr>, NetnsError> {
        let family = if matches!(prefix, IpNet::V6(_)) {
            "-6"
        } else {
            "-4"
        };
        let text = self.run_capture([
            "ip",
            "-j",
            family,
            "route",
            "show",
            "exact",
            &prefix.to_string(),
        ])?;
        Ok(parse_ip_route_next_hops(&text))
    }
}

fn parse_ip_route_next_hops(json: &str) -> Vec<IpAddr> {
    let Ok(serde_json::Value::Array(routes)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        return Vec::new();
    };
    let mut hops = Vec::new();
    for route in &routes {
        let gateways = route
            .get("nexthops")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_else(|| vec![route.clone()]);
        hops.extend(
            gateways
                .iter()
                .filter_map(|h| h.get("gateway")?.as_str()?.parse::<IpAddr>().ok()),
        );
    }
    hops.sort();
    hops
}

impl Segment {
    /// The namespace holding the bridge (for captures on `br0`).
    pub fn host(&self) -> &Host {
        &self.host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecmp_next_hops_are_read_from_ip_json() {
        // Shape of `ip -j route show exact 198.51.100.10/32` for a two-way ECMP route
        // (captured from iproute2 6.1 in a lab namespace).
        let json = r#"[{"dst":"198.51.100.10","protocol":"bird","metric":32,"flags":[],"nexthops":[{"gateway":"192.0.2.3","dev":"eth0","weight":1,"flags":[]},{"gateway":"192.0.2.2","dev":"eth0","weight":1,"flags":[]}]}]"#;
        let hops = parse_ip_route_next_hops(json);
        assert_eq!(
            hops,
            [
                "192.0.2.2".parse::<IpAddr>().unwrap(),
                "192.0.2.3".parse().unwrap()
            ]
        );
        let single = r#"[{"dst":"198.51.100.10","gateway":"192.0.2.2","dev":"eth0","protocol":"bird","metric":32,"flags":[]}]"#;
        assert_eq!(parse_ip_route_next_hops(single).len(), 1);
        assert!(parse_ip_route_next_hops("[]").is_empty());
    }
}
