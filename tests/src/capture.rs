//! What a namespace sees on its wire: tcpdump writing the ARP and Neighbor Discovery frames of
//! one interface to a file, with the kernel's nanosecond timestamps, read back as [`Frame`]s.
//! The timestamps are taken where the kernel hands frames to packet sockets (outgoing ones just
//! before the interface transmits them, incoming ones as it receives them), so a request and
//! its reply are timed at the same point whatever the tool that sent the request was doing.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::netns::Host;
use crate::process::Process;

/// ARP frames and Neighbor Solicitations (135) and Advertisements (136).
const FILTER: &str = "arp or (icmp6 and (ip6[40] == 135 or ip6[40] == 136))";

/// One ARP or Neighbor Discovery frame seen on the interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Kernel timestamp, from the epoch.
    pub at: Duration,
    pub what: What,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    /// `who-has target tell sender` (a gratuitous one has sender = target).
    ArpRequest { target: IpAddr, sender: IpAddr },
    /// `address is-at …`.
    ArpReply { address: IpAddr },
    /// A Neighbor Solicitation for `target`.
    Solicitation { target: IpAddr },
    /// A Neighbor Advertisement for `target`.
    Advertisement { target: IpAddr },
}

/// A running tcpdump; killed on drop.
#[derive(Debug)]
pub struct Capture {
    process: Process,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    /// Starts capturing on `interface` inside `host` and waits until tcpdump listens.
    pub fn start(host: &Host, interface: &str) -> Capture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("capture.pcap");
        let mut cmd = host.command("tcpdump");
        cmd.args(["-i", interface, "-nn", "-U", "-B", "16384"])
            .args(["--time-stamp-precision=nano", "-w"])
            .arg(&file)
            .arg(FILTER);
        let process = Process::spawn("tcpdump", cmd, &dir.path().join("tcpdump.log"))
            .expect("tcpdump starts (Debian package tcpdump)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !process.log_tail(4096).contains("listening on") {
            assert!(
                std::time::Instant::now() < deadline,
                "tcpdump never listened: {}",
                process.log_tail(4096)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Capture {
            process,
            file,
            _dir: dir,
        }
    }

    /// Every frame captured so far (tcpdump writes each one as it comes: `-U`).
    pub fn frames(&self) -> Vec<Frame> {
        let out = std::process::Command::new("tcpdump")
            .args(["-nn", "-tt", "--time-stamp-precision=nano", "-r"])
            .arg(&self.file)
            .output()
            .expect("tcpdump reads its file");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(parse)
            .collect()
    }

    /// Stops tcpdump and returns every frame it captured.
    pub fn stop(mut self) -> Vec<Frame> {
        self.process.terminate(Duration::from_secs(5));
        self.frames()
    }
}

/// One line of `tcpdump -nn -tt --time-stamp-precision=nano`; `None` for anything else.
pub fn parse(line: &str) -> Option<Frame> {
    let (stamp, rest) = line.split_once(' ')?;
    let (seconds, nanos) = stamp.split_once('.')?;
    let at = Duration::new(seconds.parse().ok()?, nanos.parse().ok()?);
    let word_after = |marker: &str| -> Option<IpAddr> {
        let tail = &rest[rest.find(marker)? + marker.len()..];
        tail.split([' ', ',']).next()?.parse().ok()
    };
    let what = if rest.starts_with("ARP, Request who-has ") {
        What::ArpRequest {
            target: word_after("who-has ")?,
            sender: word_after(" tell ")?,
        }
    } else if rest.starts_with("ARP, Reply ") {
        What::ArpReply {
            address: word_after("Reply ")?,
        }
    } else if rest.contains("neighbor solicitation, who has ") {
        What::Solicitation {
            target: word_after("who has ")?,
        }
    } else if rest.contains("neighbor advertisement, tgt is ") {
        What::Advertisement {
            target: word_after("tgt is ")?,
        }
    } else {
        return None;
    };
    Some(Frame { at, what })
}

/// For each reply to `target` (an ARP reply from it, or an Advertisement for it) that follows
/// a request for it (ARP who-has, or a Solicitation) with no other reply between them, the
/// time from the request to the reply. Gratuitous frames (request with sender = target,
/// replies nobody asked for) pair with nothing.
pub fn request_reply_times(frames: &[Frame], target: IpAddr) -> Vec<Duration> {
    let mut asked: Option<Duration> = None;
    let mut times = Vec::new();
    for frame in frames {
        match frame.what {
            What::ArpRequest { target: t, sender } if t == target && sender != target => {
                asked = Some(frame.at);
            }
            What::Solicitation { target: t } if t == target => asked = Some(frame.at),
            What::ArpReply { address } if address == target => {
                if let Some(at) = asked.take() {
                    times.push(frame.at.saturating_sub(at));
                }
            }
            What::Advertisement { target: t } if t == target => {
                if let Some(at) = asked.take() {
                    times.push(frame.at.saturating_sub(at));
                }
            }
            _ => {}
        }
    }
    times
}

/// How many requests for `target` (ARP who-has from another sender, or Solicitations) the
/// capture holds.
pub fn requests_for(frames: &[Frame], target: IpAddr) -> usize {
    (frames.iter())
        .filter(|f| match f.what {
            What::ArpRequest { target: t, sender } => t == target && sender != target,
            What::Solicitation { target: t } => t == target,
            _ => false,
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines captured from `tcpdump -nn -tt --time-stamp-precision=nano -r` (tcpdump 4.99)
    // while arping and ndisc6 asked a veth peer.
    const SAMPLE: &str = "\
1796609493.161542501 ARP, Request who-has 10.9.0.2 tell 10.9.0.1, length 44
1796609493.161567759 ARP, Reply 10.9.0.2 is-at 8a:dc:e4:94:22:87, length 28
1796609493.201902234 IP6 fe80::c0cf:96ff:fe9a:2ebe > ff02::1:ff00:2: ICMP6, neighbor solicitation, who has 2001:db8:9::2, length 32
1796609493.201934242 IP6 2001:db8:9::2 > fe80::c0cf:96ff:fe9a:2ebe: ICMP6, neighbor advertisement, tgt is 2001:db8:9::2, length 32
1796609494.245681975 ARP, Request who-has 10.9.0.2 tell 10.9.0.2, length 44
1796609494.245709416 ARP, Reply 10.9.0.2 is-at 8a:dc:e4:94:22:87, length 28
reading from file /tmp/t.pcap, link-type EN10MB (Ethernet), snapshot length 262144";

    #[test]
    fn requests_pair_with_the_next_reply_and_gratuitous_frames_with_nothing() {
        let frames: Vec<Frame> = SAMPLE.lines().filter_map(parse).collect();
        assert_eq!(frames.len(), 6);
        let v4 = request_reply_times(&frames, "10.9.0.2".parse().unwrap());
        assert_eq!(v4, vec![Duration::from_nanos(25_258)]);
        let v6 = request_reply_times(&frames, "2001:db8:9::2".parse().unwrap());
        assert_eq!(v6, vec![Duration::from_nanos(32_008)]);
    }
}
