//! The responder against the kernel's own ARP and NDP: a speaker namespace runs a
//! [`Responder`] on its `eth0` (the addresses it answers for configured on no interface),
//! and client namespaces on the same bridge resolve them with their kernels (ping, `ip neigh`
//! NUD probes), `arping` and `ndisc6`; and the host checks against a namespace's own
//! interfaces and sysctls. Needs root (network namespaces), as CI has.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baremetal_ccm_core::l2::frame::Mac;
use baremetal_ccm_core::l2::host::{Finding, Problem, check};
use baremetal_ccm_core::l2::respond::Interface;
use baremetal_ccm_core::l2::schedule::Cadence;
use rig::netns::{Host, Lab};
use tokio::sync::{mpsc, watch};

use super::responder::{Counters, Duty, ReplyOptions, Report, Responder, Task};
use super::socket::{Protocol, enter_netns};
use super::{host, links};

const VIP4: &str = "192.0.2.100";
const VIP6: &str = "2001:db8::100";

#[derive(Default)]
struct Counted {
    frames: Mutex<BTreeMap<(String, &'static str), u64>>,
    announcements: Mutex<u64>,
    announced: Mutex<BTreeMap<IpAddr, u64>>,
}

impl Counters for Counted {
    fn frame(&self, protocol: Protocol, outcome: &'static str) {
        self.frames(protocol, outcome, 1);
    }
    fn frames(&self, protocol: Protocol, outcome: &'static str, count: u64) {
        let mut frames = self.frames.lock().unwrap();
        *frames
            .entry((format!("{protocol:?}"), outcome))
            .or_default() += count;
    }
    fn announcement(&self, address: IpAddr) {
        *self.announcements.lock().unwrap() += 1;
        *self.announced.lock().unwrap().entry(address).or_default() += 1;
    }
}

/// A responder running in its own thread inside `host`'s namespace.
struct Running {
    duty: watch::Sender<Duty>,
    /// Sent to drop the responder's future where it stands, as the supervisor's abort does.
    abort: tokio::sync::oneshot::Sender<()>,
    reports: Mutex<mpsc::UnboundedReceiver<Report>>,
    mac: Mac,
    counters: Arc<Counted>,
    /// What the responder returned (the error chain if it failed); `Ok` when aborted.
    thread: std::thread::JoinHandle<Result<(), String>>,
}

fn start(host: &Host, duty: Duty) -> Running {
    start_on(host, "eth0", duty)
}

fn start_on(host: &Host, interface: &str, duty: Duty) -> Running {
    start_with(host, interface, duty, ReplyOptions::default())
}

/// [`start_on`], replying as `options` say.
fn start_with(host: &Host, interface: &str, duty: Duty, options: ReplyOptions) -> Running {
    let (duty_tx, duty_rx) = watch::channel(duty);
    let (abort_tx, abort_rx) = tokio::sync::oneshot::channel::<()>();
    let interface = interface.to_owned();
    let (report_tx, report_rx) = mpsc::unbounded_channel();
    let (mac_tx, mac_rx) = std::sync::mpsc::channel();
    let counters = Arc::new(Counted::default());
    let name = host.name().to_string();
    let thread_counters = counters.clone();
    let thread = std::thread::spawn(move || {
        enter_netns(&name).expect("entering the speaker's namespace");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (connection, handle, _) = rtnetlink::new_connection().unwrap();
            tokio::spawn(connection);
            let link = (links::list(&handle).await.unwrap().into_iter())
                .find(|l| l.name == interface)
                .expect("the interface in the speaker's namespace");
            let interface = Interface {
                name: link.name.clone(),
                mac: Mac(link.mac),
            };
            let responder =
                Responder::open(interface, link.index, report_tx, thread_counters, options)
                    .expect("opening the responder's sockets");
            mac_tx.send(Mac(link.mac)).unwrap();
            // The test ends by dropping the duty sender: the responder then returns.
            let aborted = async {
                // A dropped sender is no abort.
                if abort_rx.await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                result = responder.run(duty_rx) => result.map_err(|e| crate::error_chain(&e)),
                () = aborted => Ok(()),
            }
        })
    });
    let mac = mac_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the responder started");
    Running {
        duty: duty_tx,
        abort: abort_tx,
        reports: Mutex::new(report_rx),
        mac,
        counters,
        thread,
    }
}

fn owning(addresses: &[&str], probe: bool) -> Duty {
    let cadence = Cadence {
        count: 3,
        interval: Duration::from_millis(300),
        refresh: None,
    };
    Duty {
        addresses: (addresses.iter())
            .map(|a| (a.parse().unwrap(), Task { cadence, probe }))
            .collect(),
    }
}

/// Polls `check` every 50 ms until it returns `Some` or `within` passes.
fn eventually<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The link-layer address and state `host`'s kernel has for `address` on eth0, if any.
fn neighbour(host: &Host, address: &str) -> Option<(String, String)> {
    let out = host
        .run_capture(["ip", "neigh", "show", "to", address, "dev", "eth0"])
        .unwrap();
    let words: Vec<&str> = out.split_whitespace().collect();
    let lladdr = words
        .iter()
        .position(|w| *w == "lladdr")
        .map(|i| words[i + 1].to_string())?;
    Some((lladdr, words.last()?.to_string()))
}

fn lab() -> (Lab, Host, Host) {
    let (lab, speaker, client, _) = lab_with(&[]);
    (lab, speaker, client)
}

/// [`lab`] with more hosts on the segment (name, address).
fn lab_with(others: &[(&str, &str)]) -> (Lab, Host, Host, Vec<Host>) {
    let mut lab = Lab::new().unwrap();
    let segment = lab.segment("sw").unwrap();
    let others = (others.iter())
        .map(|(name, address)| {
            lab.host_on(name, &segment, &[address.parse().unwrap()])
                .unwrap()
        })
        .collect();
    let speaker = (lab.host_on(
        "spk",
        &segment,
        &[
            "192.0.2.10/24".parse().unwrap(),
            "2001:db8::10/64".parse().unwrap(),
        ],
    ))
    .unwrap();
    let client = (lab.host_on(
        "cli",
        &segment,
        &[
            "192.0.2.20/24".parse().unwrap(),
            "2001:db8::20/64".parse().unwrap(),
        ],
    ))
    .unwrap();
    (lab, speaker, client, others)
}

#[test]
fn a_kernel_resolves_owned_addresses_to_the_speaker_over_arp_and_ndp() {
    let (_lab, speaker, client) = lab();
    let running = start(&speaker, owning(&[VIP4, VIP6], false));
    let mac = running.mac.to_string();
    // The kernel's own resolution: a ping makes it ask (broadcast ARP, multicast NS to the
    // solicited-node group); nobody answers the ping itself, the address is on no interface.
    for vip in [VIP4, VIP6] {
        let _unanswered = client
            .command("ping")
            .args(["-c", "1", "-W", "1", vip])
            .output();
        let (lladdr, _) = eventually(Duration::from_secs(5), "the neighbour entry", || {
            neighbour(&client, vip).filter(|(l, _)| *l == mac)
        });
        assert_eq!(lladdr, mac, "{vip}");
    }
    // ndisc6 asks with a multicast NS and prints the target link-layer address it got.
    let out = client
        .command("ndisc6")
        .args(["-1", "-r", "3", VIP6, "eth0"])
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.to_lowercase().contains(&mac),
        "ndisc6 said: {out}; the responder saw {:?}",
        running.counters.frames.lock().unwrap()
    );
    // arping (broadcast request) gets our reply.
    let out = client
        .run_capture(["arping", "-c", "1", "-w", "3", "-i", "eth0", VIP4])
        .unwrap();
    assert!(out.to_lowercase().contains(&mac), "arping said: {out}");
    // A request for an address we do not own is left alone.
    let out = client
        .command("arping")
        .args(["-c", "1", "-w", "1", "-i", "eth0", "192.0.2.101"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout)
            .to_lowercase()
            .contains(&mac)
    );
    let frames = running.counters.frames.lock().unwrap().clone();
    assert!(
        frames.contains_key(&("Arp".into(), "not_ours")),
        "{frames:?}"
    );
}

#[test]
fn unicast_revalidation_is_answered_for_both_families() {
    let (_lab, speaker, client) = lab();
    let running = start(&speaker, owning(&[VIP4, VIP6], false));
    let mac = running.mac.to_string();
    for vip in [VIP4, VIP6] {
        revalidated(&client, vip, &mac);
    }
}

/// Puts `client`'s entry for `vip` in NUD state PROBE: the kernel sends unicast solicitations
/// to the cached MAC (the caches' periodic revalidation, which a responder that only listens
/// to broadcast or multicast never sees) and marks the entry FAILED unless they are answered.
/// Waits for REACHABLE.
fn revalidated(client: &Host, vip: &str, mac: &str) {
    client
        .run([
            "ip", "neigh", "replace", vip, "lladdr", mac, "dev", "eth0", "nud", "probe",
        ])
        .unwrap();
    eventually(
        Duration::from_secs(5),
        "REACHABLE after unicast probes",
        || neighbour(client, vip).filter(|(l, state)| *l == mac && state == "REACHABLE"),
    );
}

#[test]
fn taking_an_address_moves_a_stale_cache_entry_with_gratuitous_announcements() {
    let (_lab, speaker, client) = lab();
    let old = "02:00:00:00:00:99";
    for vip in [VIP4, VIP6] {
        client
            .run([
                "ip", "neigh", "replace", vip, "lladdr", old, "dev", "eth0", "nud", "stale",
            ])
            .unwrap();
    }
    let running = start(&speaker, owning(&[VIP4, VIP6], false));
    let mac = running.mac.to_string();
    for vip in [VIP4, VIP6] {
        eventually(
            Duration::from_secs(5),
            "the cache to follow the announcement",
            || neighbour(&client, vip).filter(|(l, _)| *l == mac),
        );
    }
    let report = running.reports.lock().unwrap().try_recv();
    assert!(matches!(report, Ok(Report::Announced { .. })), "{report:?}");
    assert!(*running.counters.announcements.lock().unwrap() >= 2);
}

#[test]
fn a_probe_answered_by_a_machine_outside_the_cluster_is_a_conflict_and_not_announced() {
    let (_lab, speaker, client) = lab();
    // The client holds 192.0.2.100 itself, as a machine outside the cluster would; nobody
    // holds 192.0.2.101, probed at the same time: its announcement marks the end of the
    // probe window.
    client
        .run(["ip", "addr", "add", "192.0.2.100/32", "dev", "eth0"])
        .unwrap();
    let running = start(&speaker, owning(&[VIP4, "192.0.2.101"], true));
    let mut reports = Vec::new();
    eventually(Duration::from_secs(5), "the free address announced", || {
        while let Ok(report) = running.reports.lock().unwrap().try_recv() {
            reports.push(report);
        }
        reports.iter().any(|r| matches!(r, Report::Announced { address, .. } if *address == "192.0.2.101".parse::<IpAddr>().unwrap())).then_some(())
    });
    let vip: IpAddr = VIP4.parse().unwrap();
    assert!(
        reports.iter().any(|r| matches!(r, Report::Conflict { address, while_probing: true, .. } if *address == vip)),
        "{reports:?}"
    );
    assert!(
        !reports
            .iter()
            .any(|r| matches!(r, Report::Announced { address, .. } if *address == vip)),
        "the taken address was announced: {reports:?}"
    );
    assert_eq!(
        *running
            .counters
            .announced
            .lock()
            .unwrap()
            .get(&vip)
            .unwrap_or(&0),
        0
    );
    drop(running.duty);
}

#[test]
fn a_probed_address_whose_claimant_was_a_speaker_is_announced_once_the_probe_is_called_off() {
    // The client stands in for another speaker that answered the probe (the supervisor learns
    // it from the MAC): the duty then keeps the address without a probe, and it is ours.
    let (_lab, speaker, client) = lab();
    client
        .run(["ip", "addr", "add", "192.0.2.100/32", "dev", "eth0"])
        .unwrap();
    let running = start(&speaker, owning(&[VIP4], true));
    let vip: IpAddr = VIP4.parse().unwrap();
    eventually(Duration::from_secs(5), "the probe answered", || {
        let report = running.reports.lock().unwrap().try_recv().ok()?;
        matches!(report, Report::Conflict { address, while_probing: true, .. } if address == vip)
            .then_some(())
    });
    client
        .run(["ip", "addr", "del", "192.0.2.100/32", "dev", "eth0"])
        .unwrap();
    running.duty.send_replace(owning(&[VIP4], false));
    eventually(Duration::from_secs(5), "announced", || {
        let report = running.reports.lock().unwrap().try_recv().ok()?;
        matches!(report, Report::Announced { address, .. } if address == vip).then_some(())
    });
    let _ = client.run(["ip", "neigh", "flush", "to", VIP4, "dev", "eth0"]);
    let _unanswered = client
        .command("ping")
        .args(["-c", "1", "-W", "1", VIP4])
        .output();
    let (mac, _) = neighbour(&client, VIP4).expect("the client resolved the address");
    assert_eq!(mac, running.mac.to_string());
    drop(running.duty);
}

#[test]
fn the_interface_watch_sees_a_link_go_down_and_an_address_come() {
    let (_lab, speaker, _client) = lab();
    let (tx, rx) = std::sync::mpsc::channel();
    let name = speaker.name().to_string();
    let _thread = std::thread::spawn(move || {
        enter_netns(&name).expect("entering the speaker's namespace");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (mut links, follow) = links::watch().await.unwrap();
            let follow = tokio::spawn(follow);
            loop {
                let eth0 = links
                    .borrow_and_update()
                    .iter()
                    .find(|l| l.name == "eth0")
                    .cloned();
                if tx.send(eth0).is_err() {
                    break;
                }
                if links.changed().await.is_err() {
                    break;
                }
            }
            follow.abort();
        });
    });
    let next = |what: &str, check: &dyn Fn(&links::Link) -> bool| loop {
        let eth0 = rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("no update: {what}"));
        if let Some(eth0) = eth0.filter(|l| check(l)) {
            return eth0;
        }
    };
    let eth0 = next("eth0 up and announceable", &|l| l.up && l.announceable);
    assert!(
        eth0.addresses.contains(&"192.0.2.10/24".parse().unwrap()),
        "{eth0:?}"
    );
    speaker.run(["ip", "link", "set", "eth0", "down"]).unwrap();
    next("eth0 down", &|l| !l.up);
    speaker.run(["ip", "link", "set", "eth0", "up"]).unwrap();
    speaker
        .run(["ip", "addr", "add", "198.51.100.7/24", "dev", "eth0"])
        .unwrap();
    let before = next("the new address", &|l| {
        l.up && l.addresses.contains(&"198.51.100.7/24".parse().unwrap())
    });
    // Down and up again in one breath: whether or not a re-read falls in between, the
    // count of downs grows, so the speaker knows the link flapped.
    speaker
        .run(["sh", "-c", "ip link set eth0 down && ip link set eth0 up"])
        .unwrap();
    next("a flap counted", &|l| l.up && l.downs > before.downs);
}

/// What the speaker's host checks find in `host`'s namespace, read there as the speaker
/// reads its own (the interfaces over rtnetlink, the settings from /proc/sys/net).
fn host_problems(host: &Host) -> Vec<Problem> {
    let name = host.name().to_string();
    std::thread::spawn(move || {
        enter_netns(&name).expect("entering the speaker's namespace");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let links = runtime.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection().unwrap();
            tokio::spawn(connection);
            links::list(&handle).await.unwrap()
        });
        let readings = host::read(&links, host::Refused::default()).expect("reading the settings");
        check(&readings).iter().map(Finding::problem).collect()
    })
    .join()
    .expect("the reading thread does not panic")
}

fn sysctl(host: &Host, assignment: &str) {
    let out = (host.command("sysctl").args(["-w", assignment]))
        .output()
        .unwrap();
    assert!(out.status.success(), "sysctl -w {assignment}: {out:?}");
}

/// Whether `client`'s arping gets an answer from `mac` for `address`.
fn arping_answered_by(client: &Host, address: &str, mac: &str) -> bool {
    let out = client
        .command("arping")
        .args(["-c", "1", "-w", "2", "-i", "eth0", address])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .to_lowercase()
        .contains(mac)
}

#[test]
fn kube_proxy_ipvs_without_strict_arp_is_found_and_clears_once_the_kernel_is_strict() {
    let (_lab, speaker, client) = lab();
    let mac = speaker
        .run_capture(["cat", "/sys/class/net/eth0/address"])
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(host_problems(&speaker), vec![], "a plain host");
    // kube-proxy's IPVS mode: a dummy interface, left down, holding the Service addresses.
    // Where the kernel has no dummy driver (some CI sandboxes), a bridge without ports, also
    // left down, holds them the same way: the kernel answers for any local address.
    if speaker
        .run(["ip", "link", "add", "kube-ipvs0", "type", "dummy"])
        .is_err()
    {
        speaker
            .run(["ip", "link", "add", "kube-ipvs0", "type", "bridge"])
            .unwrap();
    }
    speaker
        .run(["ip", "addr", "add", "192.0.2.100/32", "dev", "kube-ipvs0"])
        .unwrap();
    // The kernel's defaults (a new namespace has them whatever the host's are).
    sysctl(&speaker, "net.ipv4.conf.all.arp_ignore=0");
    sysctl(&speaker, "net.ipv4.conf.all.arp_announce=0");
    // What the check stands for: the speaker's kernel answers ARP for it on eth0.
    assert!(
        arping_answered_by(&client, VIP4, &mac),
        "the kernel answers"
    );
    assert_eq!(host_problems(&speaker), vec![Problem::IpvsWithoutStrictArp]);

    // What kube-proxy's strictARP sets.
    sysctl(&speaker, "net.ipv4.conf.all.arp_ignore=1");
    sysctl(&speaker, "net.ipv4.conf.all.arp_announce=2");
    assert_eq!(host_problems(&speaker), vec![]);
    assert!(
        !arping_answered_by(&client, VIP4, &mac),
        "the kernel is quiet"
    );

    // proxy_arp and proxy_ndp on the announcing interface are warnings of their own.
    sysctl(&speaker, "net.ipv4.conf.eth0.proxy_arp=1");
    sysctl(&speaker, "net.ipv6.conf.eth0.proxy_ndp=1");
    assert_eq!(
        host_problems(&speaker),
        vec![Problem::ProxyArp, Problem::ProxyNdp]
    );
}

/// How many threads of this process are named `name` (the reply threads are
/// `l2-reply-<interface>`, cut to the kernel's 15 characters).
fn threads_named(name: &str) -> usize {
    (std::fs::read_dir("/proc/self/task").unwrap())
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

/// The scheduling policies (`/proc/<pid>/task/<tid>/stat`, field 41) of this process's
/// threads named `name`.
fn policies_of(name: &str) -> Vec<u32> {
    (std::fs::read_dir("/proc/self/task").unwrap())
        .filter_map(|task| {
            let path = task.unwrap().path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            (comm.trim_end() == name).then_some(())?;
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            // After the command in parentheses: field 3 onwards; the policy is field 41.
            let rest = &stat[stat.rfind(')')? + 2..];
            rest.split(' ').nth(41 - 3)?.parse().ok()
        })
        .collect()
}

/// `--l2-reply-realtime`: the reply thread runs in SCHED_FIFO (the tests run as root, with
/// CAP_SYS_NICE); without the flag in the ordinary class.
#[test]
fn the_reply_thread_asks_for_real_time_priority_when_told() {
    let (_lab, speaker, _client) = lab();
    (speaker.run([
        "ip", "link", "add", "rtprio", "type", "veth", "peer", "name", "rtprio-p",
    ]))
    .unwrap();
    for link in ["rtprio", "rtprio-p"] {
        speaker.run(["ip", "link", "set", link, "up"]).unwrap();
    }
    let fifo = u32::try_from(libc::SCHED_FIFO).unwrap();
    let running = start_with(
        &speaker,
        "rtprio",
        owning(&[VIP4], false),
        ReplyOptions {
            realtime: true,
            in_kernel: false,
        },
    );
    let policies = eventually(
        Duration::from_secs(5),
        "the reply thread at SCHED_FIFO",
        || {
            let p = policies_of("l2-reply-rtprio");
            (p == [fifo]).then_some(p)
        },
    );
    assert_eq!(policies, [fifo]);
    drop(running.duty);
    assert_eq!(running.thread.join().unwrap(), Ok(()));
    let running = start_with(
        &speaker,
        "rtprio",
        owning(&[VIP4], false),
        ReplyOptions::default(),
    );
    let policies = eventually(Duration::from_secs(5), "the reply thread", || {
        let p = policies_of("l2-reply-rtprio");
        (p.len() == 1).then_some(p)
    });
    assert_eq!(policies, [u32::try_from(libc::SCHED_OTHER).unwrap()]);
    drop(running.duty);
    assert_eq!(running.thread.join().unwrap(), Ok(()));
}

#[test]
fn the_reply_thread_stops_when_the_responder_ends_aborts_or_loses_its_interface() {
    // An interface of a name no other test uses, so that the thread is told apart from the
    // other tests' (they run in this process at the same time).
    let (_lab, speaker, _client) = lab();
    let thread = "l2-reply-rtstop";
    let add = || {
        (speaker.run([
            "ip", "link", "add", "rtstop", "type", "veth", "peer", "name", "rtstop-p",
        ]))
        .unwrap();
        speaker.run(["ip", "link", "set", "rtstop", "up"]).unwrap();
        speaker
            .run(["ip", "link", "set", "rtstop-p", "up"])
            .unwrap();
    };
    add();

    // The duty's sender dropped: the responder returns, the thread is gone with it.
    let running = start_on(&speaker, "rtstop", owning(&[VIP4], false));
    eventually(Duration::from_secs(5), "the reply thread named", || {
        (threads_named(thread) == 1).then_some(())
    });
    drop(running.duty);
    assert_eq!(running.thread.join().unwrap(), Ok(()));
    assert_eq!(
        threads_named(thread),
        0,
        "the thread outlived its responder"
    );

    // The responder's future dropped where it stands (the supervisor aborts its task).
    let running = start_on(&speaker, "rtstop", owning(&[VIP4], false));
    eventually(Duration::from_secs(5), "the reply thread named", || {
        (threads_named(thread) == 1).then_some(())
    });
    running.abort.send(()).unwrap();
    assert_eq!(running.thread.join().unwrap(), Ok(()));
    assert_eq!(
        threads_named(thread),
        0,
        "the thread outlived an aborted responder"
    );

    // The interface deleted: the sockets fail, the responder says so and the thread ends.
    let running = start_on(&speaker, "rtstop", owning(&[VIP4], false));
    eventually(Duration::from_secs(5), "the reply thread named", || {
        (threads_named(thread) == 1).then_some(())
    });
    speaker.run(["ip", "link", "del", "rtstop"]).unwrap();
    let error = running
        .thread
        .join()
        .unwrap()
        .expect_err("the sockets failed");
    assert!(error.contains("rtstop"), "{error}");
    assert_eq!(threads_named(thread), 0, "the thread outlived its sockets");
    drop(running.duty);
}

/// Whether `client`'s ndisc6 gets an answer from `mac` for `address`.
fn ndisc6_answered_by(client: &Host, address: &str, mac: &str) -> bool {
    let out = client
        .command("ndisc6")
        .args(["-1", "-r", "1", "-w", "1000", address, "eth0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .to_lowercase()
        .contains(mac)
}

#[test]
fn an_address_taken_out_of_the_duty_is_no_longer_answered() {
    let (_lab, speaker, client) = lab();
    let running = start(&speaker, owning(&[VIP4, VIP6], false));
    let mac = running.mac.to_string();
    assert!(
        arping_answered_by(&client, VIP4, &mac),
        "answered while owned"
    );
    assert!(
        ndisc6_answered_by(&client, VIP6, &mac),
        "answered while owned"
    );
    // Both given up in the same change that takes a new address: its first announcement
    // goes out after the change was applied, so from then on neither may be answered.
    let other = "192.0.2.101";
    running.duty.send_replace(owning(&[other], false));
    let other_ip: IpAddr = other.parse().unwrap();
    eventually(Duration::from_secs(5), "the new address announced", || {
        let report = running.reports.lock().unwrap().try_recv().ok()?;
        matches!(report, Report::Announced { address, .. } if address == other_ip).then_some(())
    });
    let replied = |c: &Counted| c.frames.lock().unwrap().clone();
    let before = replied(&running.counters);
    for _ in 0..3 {
        assert!(
            !arping_answered_by(&client, VIP4, &mac),
            "{VIP4} answered after it was given up"
        );
        assert!(
            !ndisc6_answered_by(&client, VIP6, &mac),
            "{VIP6} answered after it was given up"
        );
    }
    let after = replied(&running.counters);
    for protocol in ["Arp", "Ndp"] {
        let key = (protocol.to_owned(), "replied");
        assert_eq!(after.get(&key), before.get(&key), "{protocol}: {after:?}");
        let key = (protocol.to_owned(), "not_ours");
        assert!(
            after.get(&key) > before.get(&key),
            "{protocol} requests not seen: {after:?}"
        );
    }
    // The reply thread is still answering: the address it was given is.
    assert!(
        arping_answered_by(&client, other, &mac),
        "the new address answered"
    );
    drop(running.duty);
}

/// A third host on the segment floods the speaker with claims on its address (ARP replies
/// from another MAC, unicast to the speaker so that the bridge spares the client, in bursts as
/// fast as a packet socket sends them): the claims that find the reply thread's hand-over channel
/// full are dropped and counted, and the client's requests go on being answered — the thread
/// never waits on the responder.
#[test]
fn a_flood_of_claims_never_holds_up_the_replies() {
    use std::sync::atomic::{AtomicBool, Ordering};

    use baremetal_ccm_core::l2::frame::arp;

    use super::socket::PacketSocket;

    let (_lab, speaker, client, mut others) = lab_with(&[("fld", "192.0.2.30/24")]);
    let flooder = others.remove(0);
    let running = start(&speaker, owning(&[VIP4], false));
    let mac = running.mac.to_string();
    // The bridge learns the speaker's port from its announcements; the client resolves once.
    eventually(Duration::from_secs(10), "the speaker answering", || {
        arping_answered_by(&client, VIP4, &mac).then_some(())
    });
    let ifindex: u32 = (flooder
        .run_capture(["cat", "/sys/class/net/eth0/ifindex"])
        .unwrap())
    .trim()
    .parse()
    .unwrap();
    let mut claim =
        arp::gratuitous_reply(Mac([0x02, 0, 0, 0, 0, 0x99]), VIP4.parse().unwrap()).to_bytes();
    claim[..6].copy_from_slice(&running.mac.0);
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = stop.clone();
    let name = flooder.name().to_string();
    let flood = std::thread::spawn(move || {
        enter_netns(&name).unwrap();
        let socket = PacketSocket::open(ifindex, Protocol::Arp).unwrap();
        // Bursts of 1,000 back to back (more than the hand-over holds), 5 ms apart: a flood,
        // not a CPU taken whole (which would starve everything else, the client included,
        // on a loaded machine).
        let mut sent = 0_u64;
        while !flooding.load(Ordering::Relaxed) {
            for _ in 0..1_000 {
                if socket.try_send(&claim).unwrap() {
                    sent += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        sent
    });
    let overflowed = || {
        let frames = running.counters.frames.lock().unwrap();
        frames
            .get(&("Arp".to_owned(), "overflow"))
            .copied()
            .unwrap_or(0)
    };
    eventually(
        Duration::from_secs(10),
        "the hand-over channel full",
        || (overflowed() > 0).then_some(()),
    );
    let answered = (0..10)
        .filter(|_| arping_answered_by(&client, VIP4, &mac))
        .count();
    stop.store(true, Ordering::Relaxed);
    let sent = flood.join().unwrap();
    eprintln!(
        "{sent} claims sent, {} dropped at the hand-over, {answered} of 10 requests answered",
        overflowed()
    );
    // A request can still drown in the socket's queue among a burst of claims (the kernel
    // drops what finds it full): most must be answered (9 of 10 was usual on the development
    // machine, 7 the fewest seen alone, 5 in a loaded CI run with bursts twice as long).
    assert!(
        answered >= 5,
        "{answered} of 10 requests answered during the flood"
    );
    drop(running.duty);
    assert_eq!(running.thread.join().unwrap(), Ok(()));
}

/// `--l2-reply-in-kernel`: the kernel clients' requests — broadcast ARP, multicast NS, the
/// unicast revalidation of both — are answered by the program on the speaker's tc ingress
/// (counted as `replied_in_kernel`, the reply thread answers none of them), a probe still
/// reaches the reply thread, an address given up is no longer answered, and once the
/// responder is gone (its link closed, as when the speaker dies) nothing answers.
#[test]
fn with_the_in_kernel_reply_the_kernel_answers_plain_requests_until_the_responder_ends() {
    let (_lab, speaker, client) = lab();
    let options = ReplyOptions {
        realtime: false,
        in_kernel: true,
    };
    let running = start_with(&speaker, "eth0", owning(&[VIP4, VIP6], false), options);
    let mac = running.mac.to_string();
    let count = |protocol: &str, outcome: &'static str| {
        let frames = running.counters.frames.lock().unwrap();
        frames
            .get(&(protocol.to_owned(), outcome))
            .copied()
            .unwrap_or(0)
    };
    // The duty is applied once the responder runs, shortly after it opened (a loaded machine
    // may take a while).
    eventually(Duration::from_secs(10), "ARP answered", || {
        arping_answered_by(&client, VIP4, &mac).then_some(())
    });
    eventually(Duration::from_secs(10), "NS answered", || {
        ndisc6_answered_by(&client, VIP6, &mac).then_some(())
    });
    for vip in [VIP4, VIP6] {
        revalidated(&client, vip, &mac);
    }
    // Counted on the responder's next refresh (every 50 ms).
    eventually(
        Duration::from_secs(5),
        "the kernel's replies counted",
        || {
            (count("Arp", "replied_in_kernel") >= 2 && count("Ndp", "replied_in_kernel") >= 2)
                .then_some(())
        },
    );
    assert_eq!(count("Arp", "replied"), 0, "the reply thread answered ARP");
    assert_eq!(count("Ndp", "replied"), 0, "the reply thread answered NDP");
    // A probe (sender 0.0.0.0) is the reply thread's, which answers it (RFC 5227).
    let out = client
        .command("arping")
        .args(["-0", "-c", "1", "-w", "3", "-i", "eth0", VIP4])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .to_lowercase()
            .contains(&mac),
        "probe answered"
    );
    assert_eq!(
        count("Arp", "replied"),
        1,
        "the probe answered by the thread"
    );
    // Given up: no answer from either path.
    running.duty.send_replace(owning(&[VIP4], false));
    eventually(Duration::from_secs(5), "the NS no longer answered", || {
        (!ndisc6_answered_by(&client, VIP6, &mac)).then_some(())
    });
    assert!(
        arping_answered_by(&client, VIP4, &mac),
        "the kept one still"
    );
    // The responder gone: its program is detached with it.
    running.abort.send(()).unwrap();
    assert_eq!(running.thread.join().unwrap(), Ok(()));
    assert!(
        !arping_answered_by(&client, VIP4, &mac),
        "answered after the responder ended"
    );
}
