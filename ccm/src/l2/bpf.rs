//! The `bpf(2)` calls of the in-kernel reply (`--l2-reply-in-kernel`): maps, loading the
//! program (the core's `l2::kernel_reply`), attaching it to an interface's tc ingress hook
//! through a tcx link, and running it on a frame without attaching it (`BPF_PROG_TEST_RUN`,
//! for the tests). With the packet sockets' module, the only unsafe code of the product: the
//! system call takes a `union bpf_attr`, which this module fills byte by byte at the offsets of
//! linux/bpf.h. Every descriptor is an `OwnedFd`: closing the link's detaches the program, so a
//! speaker that dies (even by SIGKILL) stops answering at once.
#![allow(
    unsafe_code,
    reason = "bpf(2): union bpf_attr and the descriptors it returns (see SAFETY notes)"
)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use baremetal_ccm_core::l2::kernel_reply::Insn;

// Commands (enum bpf_cmd).
const MAP_CREATE: libc::c_long = 0;
const MAP_LOOKUP_ELEM: libc::c_long = 1;
const MAP_UPDATE_ELEM: libc::c_long = 2;
const MAP_DELETE_ELEM: libc::c_long = 3;
const PROG_LOAD: libc::c_long = 5;
#[cfg(test)]
const PROG_TEST_RUN: libc::c_long = 10;
const LINK_CREATE: libc::c_long = 28;

/// `BPF_PROG_TYPE_SCHED_CLS`: a tc program.
const PROG_TYPE_SCHED_CLS: u32 = 3;
/// `BPF_TCX_INGRESS` (enum bpf_attach_type; Linux 6.6).
const ATTACH_TCX_INGRESS: u32 = 46;
/// `BPF_F_NO_PREALLOC`: a hash map's entries are allocated as they are added.
const NO_PREALLOC: u32 = 1;

/// The map kinds used.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MapKind {
    Hash = 1,
    Array = 2,
}

/// `sizeof(union bpf_attr)` on Linux 6.x; the kernel accepts a shorter one whose unknown tail
/// it takes as zero, and a longer one only if that tail is zero.
const ATTR: usize = 144;

/// A `union bpf_attr`, zeroed, filled at byte offsets.
struct Attr([u64; ATTR / 8]);

impl Attr {
    fn new() -> Self {
        Attr([0; ATTR / 8])
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the array is ATTR bytes of plain integers, any byte pattern is valid, and
        // the slice borrows it mutably for its lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), ATTR) }
    }

    fn u32(&mut self, offset: usize, value: u32) -> &mut Self {
        self.bytes()[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn u64(&mut self, offset: usize, value: u64) -> &mut Self {
        self.bytes()[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn pointer<T>(&mut self, offset: usize, pointer: *const T) -> &mut Self {
        self.u64(offset, pointer as u64)
    }

    #[cfg(test)]
    fn read_u32(&mut self, offset: usize) -> u32 {
        let mut word = [0; 4];
        word.copy_from_slice(&self.bytes()[offset..offset + 4]);
        u32::from_ne_bytes(word)
    }

    fn name(&mut self, offset: usize, name: &str) -> &mut Self {
        // At most 15 bytes and a NUL; the kernel accepts letters, digits, '_' and '.'.
        let name: Vec<u8> = (name.bytes())
            .map(|b| if b.is_ascii_alphanumeric() { b } else { b'_' })
            .take(15)
            .collect();
        self.bytes()[offset..offset + name.len()].copy_from_slice(&name);
        self
    }

    /// `bpf(cmd, self)`: the non-negative result.
    fn call(&mut self, cmd: libc::c_long) -> io::Result<libc::c_long> {
        // SAFETY: the attribute is ATTR initialized bytes that live across the call; every
        // pointer written into it (keys, values, instructions, buffers) points to memory the
        // caller keeps alive and sized as the sizes beside it say, and the kernel writes only
        // into the buffers given as output, within their sizes.
        let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, self.0.as_mut_ptr(), ATTR) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    }

    /// `bpf(cmd, self)` that returns a new descriptor.
    fn descriptor(&mut self, cmd: libc::c_long) -> io::Result<OwnedFd> {
        let fd = RawFd::try_from(self.call(cmd)?).map_err(|overflow| {
            io::Error::other(format!("bpf(2) returned no descriptor: {overflow}"))
        })?;
        // SAFETY: on success these commands return a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// A new map.
pub(crate) fn create_map(
    kind: MapKind,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let flags = match kind {
        MapKind::Hash => NO_PREALLOC,
        MapKind::Array => 0,
    };
    Attr::new()
        .u32(0, kind as u32)
        .u32(4, key_size)
        .u32(8, value_size)
        .u32(12, max_entries)
        .u32(16, flags)
        .name(28, name)
        .descriptor(MAP_CREATE)
}

/// Sets `key` to `value` (their sizes the map's).
pub(crate) fn update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    Attr::new()
        .u32(0, fd_u32(map))
        .pointer(8, key.as_ptr())
        .pointer(16, value.as_ptr())
        .call(MAP_UPDATE_ELEM)
        .map(drop)
}

/// Removes `key`; whether it was there.
pub(crate) fn delete(map: &OwnedFd, key: &[u8]) -> io::Result<bool> {
    match (Attr::new())
        .u32(0, fd_u32(map))
        .pointer(8, key.as_ptr())
        .call(MAP_DELETE_ELEM)
    {
        Ok(_) => Ok(true),
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Reads `key` into `value`; whether it was there.
pub(crate) fn lookup(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    match (Attr::new())
        .u32(0, fd_u32(map))
        .pointer(8, key.as_ptr())
        .pointer(16, value.as_mut_ptr())
        .call(MAP_LOOKUP_ELEM)
    {
        Ok(_) => Ok(true),
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Why a program did not load.
#[derive(Debug, thiserror::Error)]
#[error("loading the program ({source}){}", if log.is_empty() { String::new() } else { format!("; the verifier said: {log}") })]
pub(crate) struct LoadError {
    pub(crate) source: io::Error,
    /// The verifier's log, when it refused the program.
    pub(crate) log: String,
}

/// Loads a tc program. On a refusal it loads again with the verifier's log on, to say why.
pub(crate) fn load(insns: &[Insn], name: &str, license: &str) -> Result<OwnedFd, LoadError> {
    let code: Vec<u8> = insns.iter().flat_map(|i| i.to_bytes()).collect();
    let license = CString::new(license).expect("a license has no NUL");
    let count = u32::try_from(insns.len()).expect("a short program");
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut attr = Attr::new();
        attr.u32(0, PROG_TYPE_SCHED_CLS)
            .u32(4, count)
            .pointer(8, code.as_ptr())
            .pointer(16, license.as_ptr())
            .name(48, name);
        if let Some(log) = log {
            attr.u32(24, 1)
                .u32(28, u32::try_from(log.len()).expect("a small log"))
                .pointer(32, log.as_mut_ptr());
        }
        attr.descriptor(PROG_LOAD)
    };
    attempt(None).map_err(|source| {
        let mut log = vec![0u8; 1 << 16];
        let _retried = attempt(Some(&mut log));
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let text = String::from_utf8_lossy(&log[..end]);
        // The end of the log says where it stopped.
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(12)..].join("\n");
        LoadError { source, log: tail }
    })
}

/// Attaches `program` to the ingress of interface `ifindex`, after the programs already there
/// (Cilium's, say): the link's descriptor; closing it detaches the program.
pub(crate) fn attach_ingress(program: &OwnedFd, ifindex: u32) -> io::Result<OwnedFd> {
    Attr::new()
        .u32(0, fd_u32(program))
        .u32(4, ifindex)
        .u32(8, ATTACH_TCX_INGRESS)
        .descriptor(LINK_CREATE)
}

#[cfg(test)]
/// Runs `program` once on `frame` as if received on the loopback interface: its verdict and
/// the frame as it left it.
pub(crate) fn test_run(program: &OwnedFd, frame: &[u8]) -> io::Result<(i32, Vec<u8>)> {
    let mut out = vec![0u8; frame.len() + 256];
    let mut attr = Attr::new();
    attr.u32(0, fd_u32(program))
        .u32(8, u32::try_from(frame.len()).expect("a frame is short"))
        .u32(12, u32::try_from(out.len()).expect("a frame is short"))
        .pointer(16, frame.as_ptr())
        .pointer(24, out.as_mut_ptr())
        .u32(32, 1);
    attr.call(PROG_TEST_RUN)?;
    let verdict = i32::from_ne_bytes(attr.read_u32(4).to_ne_bytes());
    let len = attr.read_u32(12) as usize;
    out.truncate(len.min(out.len()));
    Ok((verdict, out))
}

fn fd_u32(fd: &OwnedFd) -> u32 {
    u32::try_from(fd.as_raw_fd()).expect("a descriptor is not negative")
}

/// `CLOCK_MONOTONIC` in nanoseconds, the clock of the program's `bpf_ktime_get_ns` (std's
/// `Instant` reads it too, but does not say its value).
pub(crate) fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the one given, which outlives the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(rc, 0, "CLOCK_MONOTONIC is always there");
    let seconds = u64::try_from(now.tv_sec).expect("the monotonic clock is not negative");
    let nanos = u64::try_from(now.tv_nsec).expect("the monotonic clock is not negative");
    seconds * 1_000_000_000 + nanos
}
