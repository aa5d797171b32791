//! The in-kernel reply of one interface (`--l2-reply-in-kernel`): the core's eBPF program
//! (`l2::kernel_reply`) loaded with its maps and attached to the interface's tc ingress hook.
//! The responder publishes to it the addresses it answers for (as it does to the reply
//! thread) and keeps its deadline ahead; the program answers the plain requests for those
//! addresses in the kernel, and everything else still reaches the packet sockets. See
//! docs/l2.md, "In-kernel replies".

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use baremetal_ccm_core::l2::frame::Mac;
use baremetal_ccm_core::l2::kernel_reply::{
    self, ADDRESS_VALUE_SIZE, Maps, SLOT_ARP, SLOT_DEADLINE, SLOT_NDP, SLOTS,
};

use super::bpf::{self, LoadError, MapKind};

/// Addresses per family the program can hold; beyond them the reply thread answers.
const CAPACITY: u32 = 65_536;

/// How far ahead each refresh puts the deadline: a speaker stopped (SIGSTOP, a hung runtime)
/// stops answering in the kernel within this, well before the others take its addresses over.
pub(crate) const VALID_FOR: Duration = Duration::from_millis(250);
/// How often the responder refreshes the deadline.
pub(crate) const REFRESH: Duration = Duration::from_millis(50);

/// Why the in-kernel reply is not available on an interface.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InKernelError {
    #[error("creating the program's maps (needs CAP_BPF)")]
    Map(#[source] io::Error),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(
        "attaching the program to the interface's tc ingress (needs CAP_NET_ADMIN and Linux 6.6)"
    )]
    Attach(#[source] io::Error),
    #[error("updating the program's maps")]
    Update(#[source] io::Error),
}

/// The program and its maps on one interface. Dropping it detaches the program.
#[derive(Debug)]
pub(crate) struct InKernel {
    mac: Mac,
    v4: OwnedFd,
    v6: OwnedFd,
    state: OwnedFd,
    program: OwnedFd,
    link: Option<OwnedFd>,
    published: HashSet<IpAddr>,
    /// The counters as last read: [ARP, NDP].
    counted: [u64; 2],
}

impl InKernel {
    /// The maps and the program for an interface whose MAC is `mac`, not attached yet.
    pub(crate) fn load(mac: Mac) -> Result<Self, InKernelError> {
        let v4 = bpf::create_map(
            MapKind::Hash,
            4,
            ADDRESS_VALUE_SIZE,
            CAPACITY,
            "bmccm_l2_v4",
        )
        .map_err(InKernelError::Map)?;
        let v6 = bpf::create_map(
            MapKind::Hash,
            16,
            ADDRESS_VALUE_SIZE,
            CAPACITY,
            "bmccm_l2_v6",
        )
        .map_err(InKernelError::Map)?;
        let state = bpf::create_map(MapKind::Array, 4, 8, SLOTS, "bmccm_l2_state")
            .map_err(InKernelError::Map)?;
        let maps = Maps {
            v4: raw(&v4),
            v6: raw(&v6),
            state: raw(&state),
        };
        let program = bpf::load(&kernel_reply::program(maps), "bmccm_l2_reply", "Apache-2.0")?;
        Ok(InKernel {
            mac,
            v4,
            v6,
            state,
            program,
            link: None,
            published: HashSet::new(),
            counted: [0; 2],
        })
    }

    /// Loads and attaches to the ingress of interface `ifindex`.
    pub(crate) fn attach(mac: Mac, ifindex: u32) -> Result<Self, InKernelError> {
        let mut loaded = Self::load(mac)?;
        let link = bpf::attach_ingress(&loaded.program, ifindex).map_err(InKernelError::Attach)?;
        loaded.link = Some(link);
        Ok(loaded)
    }

    /// Answers for exactly `answerable` from now on: the addresses left out are removed
    /// before this returns (a program already running may still send one reply).
    pub(crate) fn publish(&mut self, answerable: &HashSet<IpAddr>) -> Result<(), InKernelError> {
        let gone: Vec<IpAddr> = self.published.difference(answerable).copied().collect();
        for address in gone {
            let (map, key) = self.key(address);
            bpf::delete(map, &key).map_err(InKernelError::Update)?;
            self.published.remove(&address);
        }
        let mut value = [0u8; ADDRESS_VALUE_SIZE as usize];
        value[..6].copy_from_slice(&self.mac.0);
        for address in answerable {
            if self.published.contains(address) {
                continue;
            }
            let (map, key) = self.key(*address);
            match bpf::update(map, &key, &value) {
                Ok(()) => {
                    self.published.insert(*address);
                }
                // Full: the reply thread answers for the rest.
                Err(error) if error.raw_os_error() == Some(libc::E2BIG) => {
                    tracing::warn!(%address, "the in-kernel reply holds {CAPACITY} addresses of a family: the reply thread answers for this one");
                }
                Err(error) => return Err(InKernelError::Update(error)),
            }
        }
        Ok(())
    }

    /// Keeps the program answering for [`VALID_FOR`] from now.
    pub(crate) fn refresh(&self) -> Result<(), InKernelError> {
        let deadline = bpf::monotonic_ns().saturating_add(VALID_FOR.as_nanos() as u64);
        bpf::update(
            &self.state,
            &SLOT_DEADLINE.to_ne_bytes(),
            &deadline.to_ne_bytes(),
        )
        .map_err(InKernelError::Update)
    }

    /// The requests answered in the kernel since the last call: (ARP, NDP).
    pub(crate) fn answered(&mut self) -> Result<(u64, u64), InKernelError> {
        let mut now = [0u64; 2];
        for (i, slot) in [SLOT_ARP, SLOT_NDP].into_iter().enumerate() {
            let mut value = [0u8; 8];
            bpf::lookup(&self.state, &slot.to_ne_bytes(), &mut value)
                .map_err(InKernelError::Update)?;
            now[i] = u64::from_ne_bytes(value);
        }
        let delta = (
            now[0].saturating_sub(self.counted[0]),
            now[1].saturating_sub(self.counted[1]),
        );
        self.counted = now;
        Ok(delta)
    }

    /// Runs the program on `frame` without sending anything (the tests); `None` for a frame
    /// the test harness refuses (an IPv4 or IPv6 ethertype on fewer bytes than its header).
    #[cfg(test)]
    pub(crate) fn run(&self, frame: &[u8]) -> Option<(i32, Vec<u8>)> {
        match bpf::test_run(&self.program, frame) {
            Ok(run) => Some(run),
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => None,
            Err(error) => panic!("BPF_PROG_TEST_RUN: {error}"),
        }
    }

    /// Puts the deadline in the past (the tests).
    #[cfg(test)]
    pub(crate) fn lapse(&self) {
        bpf::update(
            &self.state,
            &SLOT_DEADLINE.to_ne_bytes(),
            &0u64.to_ne_bytes(),
        )
        .unwrap();
    }

    fn key(&self, address: IpAddr) -> (&OwnedFd, Vec<u8>) {
        match address {
            IpAddr::V4(v4) => (&self.v4, v4.octets().to_vec()),
            IpAddr::V6(v6) => (&self.v6, v6.octets().to_vec()),
        }
    }
}

fn raw(fd: &OwnedFd) -> i32 {
    use std::os::fd::AsRawFd as _;
    fd.as_raw_fd()
}

#[cfg(test)]
mod tests {
    //! The program in the kernel (`BPF_PROG_TEST_RUN`: the verifier accepts it, and it runs on
    //! a frame as if received on the loopback interface) beside the responder's own decision
    //! on the same frame: whenever the program answers, its reply is byte for byte the one
    //! `respond::decide` builds; whenever it does not, it left the frame as it was. The frames
    //! are the golden captures of the core's frame tests (real kernels, arping, ndisc6) and
    //! arbitrary mutations of them. Needs root (CAP_BPF, CAP_NET_ADMIN), as CI has.

    use std::collections::HashSet;
    use std::net::IpAddr;

    use baremetal_ccm_core::l2::frame::Mac;
    use baremetal_ccm_core::l2::kernel_reply::{TC_ACT_REDIRECT, TCX_NEXT};
    use baremetal_ccm_core::l2::respond::{self, Decision, Interface};
    use proptest::prelude::*;

    use super::InKernel;

    /// The answering side of the captures (namespace B).
    const B_MAC: Mac = Mac([2, 0, 0, 0, 0, 0x0b]);
    const A_MAC: Mac = Mac([2, 0, 0, 0, 0, 0x0a]);

    fn captures() -> Vec<(String, Vec<u8>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("core/src/l2/testdata");
        let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .expect("the core's golden captures")
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "hex"))
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap();
                let bytes = (text.lines())
                    .filter(|line| !line.starts_with('#'))
                    .flat_map(str::split_whitespace)
                    .map(|pair| u8::from_str_radix(pair, 16).unwrap())
                    .collect();
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                (name, bytes)
            })
            .collect();
        all.sort();
        assert!(all.len() >= 20, "the captures are there: {}", all.len());
        all
    }

    fn addresses(list: &[&str]) -> HashSet<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    /// Runs `frame` through a program answering for `owned` as `mac`, and checks it against
    /// the responder's decision. Whether the program answered (`false` also for a frame the
    /// test harness refuses to run).
    fn agrees(in_kernel: &InKernel, mac: Mac, owned: &HashSet<IpAddr>, frame: &[u8]) -> bool {
        let Some((verdict, out)) = in_kernel.run(frame) else {
            return false;
        };
        let interface = Interface {
            name: "eth0".into(),
            mac,
        };
        let decision = respond::respond(frame, &interface, &|a: IpAddr| owned.contains(&a));
        match verdict {
            TC_ACT_REDIRECT => {
                let Decision::Reply(reply) = decision else {
                    panic!(
                        "answered in the kernel where the responder decides {decision:?}: {frame:02x?}"
                    );
                };
                assert_eq!(&out[..reply.len()], &reply[..], "the reply to {frame:02x?}");
                assert_eq!(
                    &out[reply.len()..],
                    &frame[reply.len()..],
                    "the padding kept"
                );
                true
            }
            TCX_NEXT => {
                assert_eq!(out, frame, "a frame passed on is unchanged");
                false
            }
            other => panic!("verdict {other} for {frame:02x?}"),
        }
    }

    fn loaded(mac: Mac, owned: &HashSet<IpAddr>) -> InKernel {
        let mut in_kernel = InKernel::load(mac).expect("the verifier accepts the program");
        in_kernel.publish(owned).unwrap();
        in_kernel.refresh().unwrap();
        in_kernel
    }

    #[test]
    fn captured_requests_are_answered_exactly_as_the_responder_answers_them() {
        let owned = addresses(&["192.0.2.2", "2001:db8::2"]);
        let in_kernel = loaded(B_MAC, &owned);
        let answered: Vec<String> = (captures().into_iter())
            .filter(|(_, frame)| agrees(&in_kernel, B_MAC, &owned, frame))
            .map(|(name, _)| name)
            .collect();
        // Broadcast, multicast and unicast requests; not the VLAN-tagged one (another
        // interface's), nor probes, duplicate-address detection, replies, advertisements.
        assert_eq!(
            answered,
            [
                "arp-kernel-request",
                "arp-kernel-unicast-request",
                "arping-request",
                "arping-unicast-request",
                "ndisc6-ns",
                "ndp-kernel-ns",
                "ndp-kernel-unicast-ns"
            ]
        );
    }

    #[test]
    fn nothing_is_answered_for_an_address_not_published_or_after_the_deadline() {
        let owned = addresses(&["192.0.2.2", "2001:db8::2"]);
        let mut in_kernel = loaded(B_MAC, &owned);
        let requests: Vec<Vec<u8>> = (captures().into_iter())
            .filter(|(name, _)| ["arp-kernel-request", "ndp-kernel-ns"].contains(&name.as_str()))
            .map(|(_, frame)| frame)
            .collect();
        for request in &requests {
            assert!(agrees(&in_kernel, B_MAC, &owned, request));
        }
        in_kernel.lapse();
        for request in &requests {
            assert_eq!(
                in_kernel.run(request).unwrap().0,
                TCX_NEXT,
                "deadline passed"
            );
        }
        in_kernel.refresh().unwrap();
        let none = HashSet::new();
        in_kernel.publish(&none).unwrap();
        for request in &requests {
            assert!(!agrees(&in_kernel, B_MAC, &none, request), "not published");
        }
        let (arp, ndp) = in_kernel.answered().unwrap();
        assert_eq!((arp, ndp), (1, 1), "each answered request counted once");
    }

    #[test]
    fn claims_own_frames_and_other_senders_of_owned_addresses_are_left_to_the_responder() {
        // Owning the requester's addresses too: its requests are claims on them.
        // A solicitation is no claim on its source address (only an advertisement is), as the
        // responder decides: those are answered. As the requester's MAC, every request is our
        // own frame.
        let owned = addresses(&["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"]);
        let solicitations = vec!["ndisc6-ns", "ndp-kernel-ns", "ndp-kernel-unicast-ns"];
        for (mac, expected) in [(B_MAC, solicitations), (A_MAC, vec![])] {
            let in_kernel = loaded(mac, &owned);
            let answered: Vec<String> = (captures().into_iter())
                .filter(|(_, frame)| agrees(&in_kernel, mac, &owned, frame))
                .map(|(name, _)| name)
                .collect();
            assert_eq!(answered, expected, "as {mac:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// A captured frame with bytes changed anywhere: the program never answers where the
        /// responder would not, nor differently.
        #[test]
        fn mutated_captures_never_get_another_answer_than_the_responders(
            pick in any::<prop::sample::Index>(),
            changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in prop::option::of(any::<prop::sample::Index>()),
        ) {
            let owned = addresses(&["192.0.2.2", "2001:db8::2"]);
            let captures = captures();
            let (_, mut frame) = captures[pick.index(captures.len())].clone();
            for (at, byte) in changes {
                let at = at.index(frame.len());
                frame[at] = byte;
            }
            if let Some(cut) = cut {
                frame.truncate(cut.index(frame.len()).max(14));
            }
            let in_kernel = loaded(B_MAC, &owned);
            agrees(&in_kernel, B_MAC, &owned, &frame);
        }

        /// Arbitrary bytes are passed on unchanged (or, by a fluke, answered as the
        /// responder would).
        #[test]
        fn arbitrary_bytes_never_get_another_answer_than_the_responders(
            frame in prop::collection::vec(any::<u8>(), 14..128),
        ) {
            let owned = addresses(&["192.0.2.2", "2001:db8::2"]);
            let in_kernel = loaded(B_MAC, &owned);
            agrees(&in_kernel, B_MAC, &owned, &frame);
        }
    }
}
