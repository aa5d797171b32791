//! The raw sockets of the layer-2 responder: one AF_PACKET socket per announcing interface
//! and protocol, with a classic BPF filter that lets only ARP, or only Neighbor Solicitations
//! and Advertisements, reach user space, and the solicited-node group memberships that make
//! the kernel send MLD reports for the addresses we answer for. The only module of the
//! product with unsafe code: `bind(2)` and `setsockopt(2)` with structures socket2 does not
//! build, `poll(2)` for the reply thread, `sched_setscheduler(2)` for its real-time priority,
//! and the runtime's registration of a descriptor.
#![allow(
    unsafe_code,
    reason = "raw sockets: sockaddr_ll and PACKET_* options (see SAFETY notes)"
)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::Ipv6Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use socket2::{Domain, SockFilter, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// `PACKET_IGNORE_OUTGOING` from linux/if_packet.h (Linux 4.20): frames this host sends are
/// not looped back to the socket, so our own announcements are never read as a conflict.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;

/// What a packet socket receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Protocol {
    /// ARP for IPv4 over Ethernet, requests and replies (replies to see conflicts).
    Arp,
    /// ICMPv6 Neighbor Solicitations and Advertisements (hop limit 255, no extension header).
    Ndp,
}

impl Protocol {
    fn ethertype(self) -> u16 {
        match self {
            Protocol::Arp => ETH_P_ARP,
            Protocol::Ndp => ETH_P_IPV6,
        }
    }

    /// The filter: each check loads a field at a frame offset and accepts the frame only if
    /// it holds one of the values.
    fn filter(self) -> Vec<Insn> {
        match self {
            Protocol::Arp => program(&[
                Check::untagged(),
                Check::half(12, &[ETH_P_ARP.into()]),
                Check::half(14, &[1]),      // hardware type: Ethernet
                Check::half(16, &[0x0800]), // protocol type: IPv4
                Check::half(20, &[1, 2]),   // request, reply
            ]),
            Protocol::Ndp => program(&[
                Check::untagged(),
                Check::half(12, &[ETH_P_IPV6.into()]),
                Check::byte(20, &[58]),       // next header: ICMPv6
                Check::byte(21, &[255]),      // hop limit: on-link only (RFC 4861)
                Check::byte(54, &[135, 136]), // Neighbor Solicitation, Advertisement
            ]),
        }
    }
}

/// One check of a filter program.
struct Check<'a> {
    /// BPF_LD | BPF_ABS with the size (BPF_W, BPF_H or BPF_B).
    load: u16,
    offset: u32,
    values: &'a [u32],
}

/// The kernel's ancillary load of "this frame carried a VLAN tag" (SKF_AD_OFF +
/// SKF_AD_VLAN_TAG_PRESENT, linux/filter.h).
const VLAN_TAG_PRESENT: u32 = 0xffff_f000 + 48;

impl<'a> Check<'a> {
    /// Frames of a VLAN carried on this interface arrive with the tag already stripped into
    /// the socket buffer's metadata (hardware or software acceleration), their bytes
    /// indistinguishable from untagged ones: only this load tells them apart. Requests of
    /// another VLAN must not be answered on its parent (announce on the VLAN's interface).
    fn untagged() -> Self {
        Check {
            load: 0x20,
            offset: VLAN_TAG_PRESENT,
            values: &[0],
        }
    }
    fn half(offset: u32, values: &'a [u32]) -> Self {
        Check {
            load: 0x28,
            offset,
            values,
        }
    }
    fn byte(offset: u32, values: &'a [u32]) -> Self {
        Check {
            load: 0x30,
            offset,
            values,
        }
    }
}

/// One classic BPF instruction (struct sock_filter), kept readable for the tests; socket2's
/// `SockFilter` is opaque.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const RET: u16 = 0x06; // BPF_RET | BPF_K

/// A classic BPF program of `checks` in sequence, then `accept` and `drop` returns.
fn program(checks: &[Check<'_>]) -> Vec<Insn> {
    let len: usize = checks.iter().map(|c| 1 + c.values.len()).sum();
    let (accept, drop) = (len, len + 1);
    let mut insns = Vec::with_capacity(len + 2);
    for check in checks {
        insns.push(Insn {
            code: check.load,
            jt: 0,
            jf: 0,
            k: check.offset,
        });
        let next_check = insns.len() + check.values.len();
        for (i, value) in check.values.iter().enumerate() {
            let pc = insns.len();
            let pass = if next_check == len {
                accept
            } else {
                next_check
            };
            let fail = if i + 1 == check.values.len() {
                drop
            } else {
                pc + 1
            };
            insns.push(Insn {
                code: JEQ,
                jt: jump(pc, pass),
                jf: jump(pc, fail),
                k: *value,
            });
        }
    }
    let ret = |k| Insn {
        code: RET,
        jt: 0,
        jf: 0,
        k,
    };
    insns.push(ret(0x0004_0000)); // accept: the whole frame
    insns.push(ret(0)); // drop
    insns
}

/// A jump offset from the instruction at `pc` to `target` (relative to the next one).
fn jump(pc: usize, target: usize) -> u8 {
    u8::try_from(target - pc - 1).expect("filter programs are far shorter than 256 instructions")
}

/// Errors of the raw sockets, each naming the system call that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SocketError {
    #[error("opening a packet socket: the speaker needs CAP_NET_RAW")]
    NoNetRaw(#[source] io::Error),
    #[error("opening a packet socket")]
    Open(#[source] io::Error),
    #[error("attaching the {protocol:?} filter")]
    Filter {
        protocol: Protocol,
        #[source]
        source: io::Error,
    },
    #[error("binding the {protocol:?} socket to interface index {ifindex}")]
    Bind {
        protocol: Protocol,
        ifindex: u32,
        #[source]
        source: io::Error,
    },
    #[error("setting PACKET_IGNORE_OUTGOING (needs Linux 4.20)")]
    IgnoreOutgoing(#[source] io::Error),
    #[error("making the socket non-blocking")]
    NonBlocking(#[source] io::Error),
    #[error("receiving a frame")]
    Receive(#[source] io::Error),
    #[error("sending a frame of {len} bytes")]
    Send {
        len: usize,
        #[source]
        source: io::Error,
    },
    #[error("opening the multicast membership socket for interface index {ifindex}")]
    MembershipSocket {
        ifindex: u32,
        #[source]
        source: io::Error,
    },
    #[error("joining {group} on interface index {ifindex}")]
    Join {
        group: Ipv6Addr,
        ifindex: u32,
        #[source]
        source: io::Error,
    },
    #[error("leaving {group} on interface index {ifindex}")]
    Leave {
        group: Ipv6Addr,
        ifindex: u32,
        #[source]
        source: io::Error,
    },
}

impl SocketError {
    /// Whether the kernel refused a packet socket for want of `CAP_NET_RAW`.
    pub(crate) fn needs_net_raw(&self) -> bool {
        matches!(self, SocketError::NoNetRaw(_))
    }
}

/// A packet socket bound to one interface and protocol, filtered in the kernel. Non-blocking:
/// the reply thread (`l2::fastpath`) waits for it with [`poll`], the async responder only
/// sends on it and waits for room (rarely needed) through the runtime.
#[derive(Debug)]
pub(crate) struct PacketSocket {
    socket: Socket,
}

impl PacketSocket {
    /// Opens the socket for `protocol` on the interface `ifindex`. The socket is created with
    /// protocol 0 (it receives nothing), the filter attached, and only then bound to the
    /// interface and protocol, so no unfiltered frame is ever queued to it.
    pub(crate) fn open(ifindex: u32, protocol: Protocol) -> Result<Self, SocketError> {
        let socket = Socket::new(Domain::PACKET, Type::RAW, None).map_err(|error| {
            // packet_create() refuses with EPERM, and only for this reason.
            if error.raw_os_error() == Some(libc::EPERM) {
                SocketError::NoNetRaw(error)
            } else {
                SocketError::Open(error)
            }
        })?;
        let filter: Vec<SockFilter> = (protocol.filter().iter())
            .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
            .collect();
        (socket.attach_filter(&filter))
            .map_err(|source| SocketError::Filter { protocol, source })?;
        set_ignore_outgoing(&socket).map_err(SocketError::IgnoreOutgoing)?;
        bind(&socket, ifindex, protocol.ethertype()).map_err(|source| SocketError::Bind {
            protocol,
            ifindex,
            source,
        })?;
        socket
            .set_nonblocking(true)
            .map_err(SocketError::NonBlocking)?;
        Ok(PacketSocket { socket })
    }

    /// Receives one queued frame (Ethernet header included) into `buf` and returns its
    /// length, or `None` when none is queued. A frame longer than `buf` is truncated.
    pub(crate) fn try_recv(&self, buf: &mut [u8]) -> Result<Option<usize>, SocketError> {
        match (&self.socket).read(buf) {
            Ok(len) => Ok(Some(len)),
            Err(error) if would_block(&error) => Ok(None),
            Err(error) => Err(SocketError::Receive(error)),
        }
    }

    /// Sends one complete Ethernet frame out of the bound interface if the socket has room
    /// now; `false` when it has none.
    pub(crate) fn try_send(&self, frame: &[u8]) -> Result<bool, SocketError> {
        let len = frame.len();
        match (&self.socket).write(frame) {
            Ok(sent) if sent == len => Ok(true),
            Ok(sent) => Err(SocketError::Send {
                len,
                source: io::Error::new(io::ErrorKind::WriteZero, format!("only {sent} bytes sent")),
            }),
            Err(error) if would_block(&error) => Ok(false),
            Err(source) => Err(SocketError::Send { len, source }),
        }
    }

    /// Sends one complete Ethernet frame out of the bound interface, waiting for room.
    pub(crate) async fn send(&self, frame: &[u8]) -> Result<(), SocketError> {
        let len = frame.len();
        while !self.try_send(frame)? {
            self.writable()
                .await
                .map_err(|source| SocketError::Send { len, source })?;
        }
        Ok(())
    }

    /// Waits until the socket may have room. The socket is registered with the runtime only
    /// for this wait (a duplicate of its descriptor, dropped after): registered for good, every
    /// frame the reply thread reads or sends would also wake the runtime's I/O driver.
    async fn writable(&self) -> io::Result<()> {
        let duplicate = self.socket.try_clone()?;
        // SAFETY: the duplicate `Socket` owns its own descriptor, which stays open and the
        // same until the AsyncFd (which owns the Socket) is dropped at the end of this call.
        let registered = unsafe { AsyncFd::register_with_interest(duplicate, Interest::WRITABLE) }
            .map_err(|failed| failed.into_parts().1)?;
        let mut guard = registered.writable().await?;
        // Readiness is re-checked by the next send, which says WouldBlock again if there is
        // still no room.
        guard.clear_ready();
        Ok(())
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

fn would_block(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock
}

/// Blocks until one of `fds` is readable, or `timeout` passes (`None`: no timeout; zero:
/// only looks). A descriptor in error or hung up counts as readable: the next read on it says
/// what happened. Returns which are; none after a timeout or a signal.
pub(crate) fn poll_readable<const N: usize>(
    fds: [BorrowedFd<'_>; N],
    timeout: Option<Duration>,
) -> io::Result<[bool; N]> {
    let mut polled = fds.map(|fd| libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    let timeout = match timeout {
        None => -1,
        Some(t) => libc::c_int::try_from(t.as_millis().max(u128::from(!t.is_zero())))
            .unwrap_or(libc::c_int::MAX),
    };
    // SAFETY: `polled` is an array of N initialised pollfd whose length is passed; each
    // descriptor is borrowed from `fds`, so it stays open for the duration of the call.
    let rc = unsafe { libc::poll(polled.as_mut_ptr(), N as libc::nfds_t, timeout) };
    if rc < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok([false; N]);
        }
        return Err(error);
    }
    Ok(polled.map(|p| p.revents != 0))
}

fn set_ignore_outgoing(socket: &Socket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: `one` is a live c_int for the duration of the call and its size is passed; the
    // descriptor is owned by `socket`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            (&raw const one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn bind(socket: &Socket, ifindex: u32, ethertype: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value of every field.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as libc::sa_family_t;
    address.sll_protocol = ethertype.to_be();
    address.sll_ifindex = libc::c_int::try_from(ifindex)
        .map_err(|_out_of_range| io::Error::new(io::ErrorKind::InvalidInput, "ifindex"))?;
    // SAFETY: `address` is a fully initialised sockaddr_ll and its size is passed; the
    // descriptor is owned by `socket`, which outlives the call.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&raw const address).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The solicited-node groups joined on one interface, reference-counted (addresses that share
/// their low 24 bits share a group). Joining through an IPv6 socket, not the packet socket,
/// is what makes the kernel send the MLD report that snooping switches need to forward the
/// solicitations to us; the packet socket then receives them.
#[derive(Debug)]
pub(crate) struct SolicitedNodeGroups {
    socket: Socket,
    ifindex: u32,
    joined: HashMap<Ipv6Addr, usize>,
}

impl SolicitedNodeGroups {
    pub(crate) fn new(ifindex: u32) -> Result<Self, SocketError> {
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, None)
            .map_err(|source| SocketError::MembershipSocket { ifindex, source })?;
        Ok(SolicitedNodeGroups {
            socket,
            ifindex,
            joined: HashMap::new(),
        })
    }

    /// Joins `group` (one more reference when already joined).
    pub(crate) fn join(&mut self, group: Ipv6Addr) -> Result<(), SocketError> {
        let count = self.joined.entry(group).or_insert(0);
        if *count == 0 {
            (self.socket.join_multicast_v6(&group, self.ifindex)).map_err(|source| {
                SocketError::Join {
                    group,
                    ifindex: self.ifindex,
                    source,
                }
            })?;
        }
        *count += 1;
        Ok(())
    }

    /// Drops one reference to `group`, leaving it with the last one.
    pub(crate) fn leave(&mut self, group: Ipv6Addr) -> Result<(), SocketError> {
        let Some(count) = self.joined.get_mut(&group) else {
            return Ok(());
        };
        *count -= 1;
        if *count == 0 {
            self.joined.remove(&group);
            (self.socket.leave_multicast_v6(&group, self.ifindex)).map_err(|source| {
                SocketError::Leave {
                    group,
                    ifindex: self.ifindex,
                    source,
                }
            })?;
        }
        Ok(())
    }
}

/// Puts the calling thread in the real-time class `SCHED_FIFO` at `priority` (1 is the lowest):
/// woken by a frame, it runs before every ordinary thread of the node. Refused (`EPERM`)
/// without `CAP_SYS_NICE`.
pub(crate) fn set_realtime_priority(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is an initialised sched_param that outlives the call; pid 0 is the
    // calling thread, whose scheduling class is all this changes.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Moves the calling thread into the network namespace `name` (as `ip netns` names it), so
/// that the sockets it opens afterwards are that namespace's: tests run a responder there.
#[cfg(test)]
pub(crate) fn enter_netns(name: &str) -> io::Result<()> {
    let file = std::fs::File::open(format!("/run/netns/{name}"))?;
    // SAFETY: `file` is an open descriptor of a network namespace, alive during the call;
    // setns changes only the calling thread's namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a program over `frame` as the kernel does, for the instructions `program` emits;
    /// a load past the end of the frame drops it, as in the kernel.
    fn accepts(program: &[Insn], frame: &[u8]) -> bool {
        accepts_tagged(program, frame, false)
    }

    fn accepts_tagged(program: &[Insn], frame: &[u8], tagged: bool) -> bool {
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let insn = program[pc];
            let k = insn.k as usize;
            match insn.code {
                0x20 if insn.k == VLAN_TAG_PRESENT => a = u32::from(tagged),
                0x28 => match frame.get(k..k + 2) {
                    Some(b) => a = u32::from(u16::from_be_bytes([b[0], b[1]])),
                    None => return false,
                },
                0x30 => match frame.get(k) {
                    Some(b) => a = u32::from(*b),
                    None => return false,
                },
                JEQ => {
                    let offset = if a == insn.k { insn.jt } else { insn.jf };
                    pc += usize::from(offset);
                }
                RET => return insn.k != 0,
                other => panic!("unexpected opcode {other:#x}"),
            }
            pc += 1;
        }
    }

    fn arp(opcode: u16) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend([2, 0, 0, 0, 0, 1]);
        f.extend(ETH_P_ARP.to_be_bytes());
        f.extend([0, 1, 8, 0, 6, 4]);
        f.extend(opcode.to_be_bytes());
        f.extend([0; 20]);
        f
    }

    fn icmpv6(next_header: u8, hop_limit: u8, icmp_type: u8) -> Vec<u8> {
        let mut f = vec![0x33, 0x33, 0xff, 0, 0, 1, 2, 0, 0, 0, 0, 1];
        f.extend(ETH_P_IPV6.to_be_bytes());
        f.extend([0x60, 0, 0, 0, 0, 32, next_header, hop_limit]);
        f.extend([0; 32]);
        f.extend([icmp_type, 0, 0, 0]);
        f.extend([0; 28]);
        f
    }

    #[test]
    fn the_arp_filter_passes_requests_and_replies_only() {
        let program = Protocol::Arp.filter();
        assert!(accepts(&program, &arp(1)));
        assert!(accepts(&program, &arp(2)));
        assert!(!accepts(&program, &arp(3)), "RARP request");
        let mut ipv6_over_arp = arp(1);
        ipv6_over_arp[16..18].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert!(!accepts(&program, &ipv6_over_arp));
        let mut not_ethernet = arp(1);
        not_ethernet[14..16].copy_from_slice(&6u16.to_be_bytes());
        assert!(!accepts(&program, &not_ethernet));
        assert!(!accepts(&program, &icmpv6(58, 255, 135)));
        assert!(
            !accepts(&program, &arp(1)[..21]),
            "truncated before the opcode"
        );
        assert!(
            !accepts_tagged(&program, &arp(1), true),
            "another VLAN's request"
        );
    }

    #[test]
    fn the_ndp_filter_passes_on_link_solicitations_and_advertisements_only() {
        let program = Protocol::Ndp.filter();
        assert!(accepts(&program, &icmpv6(58, 255, 135)));
        assert!(accepts(&program, &icmpv6(58, 255, 136)));
        assert!(
            !accepts(&program, &icmpv6(58, 64, 135)),
            "routed: hop limit below 255"
        );
        assert!(!accepts(&program, &icmpv6(58, 255, 128)), "echo request");
        assert!(
            !accepts(&program, &icmpv6(0, 255, 135)),
            "behind a hop-by-hop header"
        );
        assert!(!accepts(&program, &icmpv6(17, 255, 135)), "UDP");
        assert!(!accepts(&program, &arp(1)));
        assert!(!accepts(&program, &icmpv6(58, 255, 135)[..54]));
        assert!(!accepts_tagged(&program, &icmpv6(58, 255, 135), true));
    }

    #[test]
    fn every_jump_lands_inside_the_program() {
        for protocol in [Protocol::Arp, Protocol::Ndp] {
            let program = protocol.filter();
            for (pc, insn) in program.iter().enumerate() {
                if insn.code == JEQ {
                    assert!(pc + 1 + usize::from(insn.jt) < program.len());
                    assert!(pc + 1 + usize::from(insn.jf) < program.len());
                }
            }
            assert_eq!(program.last().map(|i| (i.code, i.k)), Some((RET, 0)));
        }
    }

    /// Drops `capability` from the calling thread's effective set (capabilities are per
    /// thread).
    fn drop_capability(capability: u32) {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: libc::c_int,
        }
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const VERSION_3: u32 = 0x2008_0522;
        let mut header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let mut data = [Data::default(); 2];
        // SAFETY: capget writes two `Data` (version 3) into `data`, which lives across the
        // call; the header is a valid version-3 header for the calling thread.
        let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
        assert_eq!(rc, 0, "capget: {}", io::Error::last_os_error());
        data[0].effective &= !(1 << capability);
        // SAFETY: as above; capset reads the same structures and changes only this thread's
        // capabilities.
        let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
        assert_eq!(rc, 0, "capset: {}", io::Error::last_os_error());
    }

    /// A thread that drops CAP_NET_RAW is refused a packet socket as a speaker without the
    /// capability is.
    #[test]
    fn a_packet_socket_refused_for_want_of_cap_net_raw_says_so() {
        const CAP_NET_RAW: u32 = 13;
        let error = std::thread::spawn(|| {
            drop_capability(CAP_NET_RAW);
            PacketSocket::open(1, Protocol::Arp).map(drop)
        })
        .join()
        .expect("the thread does not panic");
        let error = error.expect_err("refused without CAP_NET_RAW");
        assert!(error.needs_net_raw(), "{error:?}");
        assert!(error.to_string().contains("needs CAP_NET_RAW"), "{error}");
    }

    /// The SCHED_FIFO class of the calling thread, read back from the kernel.
    fn own_policy() -> libc::c_int {
        // SAFETY: sched_getscheduler only reads the calling thread's (pid 0) policy.
        unsafe { libc::sched_getscheduler(0) }
    }

    /// With CAP_SYS_NICE a thread gets real-time priority; without it, it is refused and
    /// stays as it was.
    #[test]
    fn real_time_priority_is_granted_with_cap_sys_nice_and_refused_without() {
        const CAP_SYS_NICE: u32 = 23;
        let granted = std::thread::spawn(|| (set_realtime_priority(1), own_policy()))
            .join()
            .expect("the thread does not panic");
        assert!(granted.0.is_ok(), "{:?} (the tests run as root)", granted.0);
        assert_eq!(granted.1, libc::SCHED_FIFO);
        let refused = std::thread::spawn(|| {
            drop_capability(CAP_SYS_NICE);
            (set_realtime_priority(1), own_policy())
        })
        .join()
        .expect("the thread does not panic");
        let error = refused.0.expect_err("refused without CAP_SYS_NICE");
        assert_eq!(error.raw_os_error(), Some(libc::EPERM), "{error}");
        assert_eq!(refused.1, libc::SCHED_OTHER);
    }
}
