//! The in-kernel reply (`--l2-reply-in-kernel`): an eBPF program for an interface's tc ingress
//! hook (tcx) that answers the plain requests for the addresses user space published to it —
//! an ARP request, a Neighbor Solicitation from an address with the source link-layer option
//! — by turning the request into its reply in place and sending it back out of the interface,
//! in the softirq that received it, as the kernel answers for its own addresses. Everything
//! else goes on to the packet sockets (`TCX_NEXT`), where the responder decides as before:
//! claims on owned addresses, probes, duplicate-address detection, unusual or malformed
//! frames, addresses not published. The program answers only while user space keeps its
//! deadline in the future (a stopped speaker stops answering within the deadline).
//!
//! Pure code: the instructions, given the maps' descriptors. The reply it builds is the one
//! [`respond::decide`](super::respond::decide) builds for the same request (a test in the
//! binary crate runs the program in the kernel on the same frames and compares).

use super::frame::ETHERTYPE_ARP;
use super::frame::ETHERTYPE_IPV6;

/// The program's verdict for a frame it leaves to the next program and the packet sockets.
pub const TCX_NEXT: i32 = -1;
/// The program's verdict for a reply it sent (`bpf_redirect` to the interface's egress).
pub const TC_ACT_REDIRECT: i32 = 7;

/// The slots of the state map (an array of `u64`).
pub const SLOT_DEADLINE: u32 = 0;
/// ARP requests answered.
pub const SLOT_ARP: u32 = 1;
/// Neighbor Solicitations answered.
pub const SLOT_NDP: u32 = 2;
/// How many slots the state map has.
pub const SLOTS: u32 = 3;
/// The value of an address in the address maps: the interface's MAC, padded to 8 bytes.
pub const ADDRESS_VALUE_SIZE: u32 = 8;

/// The descriptors of the program's maps, as the loader created them.
#[derive(Debug, Clone, Copy)]
pub struct Maps {
    /// IPv4 address (4 bytes, network order) → [`ADDRESS_VALUE_SIZE`] bytes.
    pub v4: i32,
    /// IPv6 address (16 bytes) → [`ADDRESS_VALUE_SIZE`] bytes.
    pub v6: i32,
    /// [`SLOTS`] × `u64`: the deadline (`CLOCK_MONOTONIC` nanoseconds) and the counters.
    pub state: i32,
}

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The instruction as the kernel reads it: the registers share a byte, the destination in
    /// the bit-field declared first (the low nibble on a little-endian machine).
    pub fn to_bytes(self) -> [u8; 8] {
        let registers = if cfg!(target_endian = "little") {
            (self.src << 4) | (self.dst & 0x0f)
        } else {
            (self.dst << 4) | (self.src & 0x0f)
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, registers, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }
}

// Instruction classes, sizes, modes and operations (linux/bpf_common.h, linux/bpf.h).
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const JMP: u8 = 0x05;
const JMP32: u8 = 0x06;
const ALU64: u8 = 0x07;
const MEM: u8 = 0x60;
const ATOMIC: u8 = 0xc0;
const K: u8 = 0x00;
const X: u8 = 0x08;
const ADD: u8 = 0x00;
const OR: u8 = 0x40;
const AND: u8 = 0x50;
const RSH: u8 = 0x70;
const XOR: u8 = 0xa0;
const MOV: u8 = 0xb0;
const JA: u8 = 0x00;
const JEQ: u8 = 0x10;
const JGT: u8 = 0x20;
const JGE: u8 = 0x30;
const JNE: u8 = 0x50;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;
/// `BPF_LD | BPF_IMM | BPF_DW`: a 64-bit immediate over two instructions.
const LD_IMM64: u8 = 0x18;
/// `src` of [`LD_IMM64`] when the immediate is a map's descriptor.
const PSEUDO_MAP_FD: u8 = 1;

/// Access sizes.
#[derive(Debug, Clone, Copy)]
enum Size {
    B = 0x10,
    H = 0x08,
    W = 0x00,
    Dw = 0x18,
}

// Helper functions (enum bpf_func_id).
const MAP_LOOKUP_ELEM: i32 = 1;
const KTIME_GET_NS: i32 = 5;
const REDIRECT: i32 = 23;
const CSUM_DIFF: i32 = 28;

// struct __sk_buff offsets.
const SKB_VLAN_PRESENT: i16 = 20;
const SKB_IFINDEX: i16 = 40;
const SKB_DATA: i16 = 76;
const SKB_DATA_END: i16 = 80;

// Registers.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const R6: u8 = 6;
const R7: u8 = 7;
const R8: u8 = 8;
const R9: u8 = 9;
const R10: u8 = 10;

/// A jump target.
#[derive(Debug, Clone, Copy)]
struct Label(usize);

/// Instructions with jumps to labels, resolved at the end.
#[derive(Debug, Default)]
struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    jumps: Vec<(usize, Label)>,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }

    fn push(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(Insn {
            code,
            dst,
            src,
            off,
            imm,
        });
    }

    fn mov_reg(&mut self, dst: u8, src: u8) {
        self.push(ALU64 | MOV | X, dst, src, 0, 0);
    }

    fn mov_imm(&mut self, dst: u8, imm: i32) {
        self.push(ALU64 | MOV | K, dst, 0, 0, imm);
    }

    fn alu_imm(&mut self, op: u8, dst: u8, imm: i32) {
        self.push(ALU64 | op | K, dst, 0, 0, imm);
    }

    fn alu_reg(&mut self, op: u8, dst: u8, src: u8) {
        self.push(ALU64 | op | X, dst, src, 0, 0);
    }

    fn load(&mut self, size: Size, dst: u8, base: u8, off: i16) {
        self.push(LDX | MEM | size as u8, dst, base, off, 0);
    }

    fn store(&mut self, size: Size, base: u8, off: i16, src: u8) {
        self.push(STX | MEM | size as u8, base, src, off, 0);
    }

    fn store_imm(&mut self, size: Size, base: u8, off: i16, imm: i32) {
        self.push(ST | MEM | size as u8, base, 0, off, imm);
    }

    fn map_fd(&mut self, dst: u8, fd: i32) {
        self.push(LD_IMM64, dst, PSEUDO_MAP_FD, 0, fd);
        self.push(0, 0, 0, 0, 0);
    }

    fn call(&mut self, helper: i32) {
        self.push(JMP | CALL, 0, 0, 0, helper);
    }

    fn exit(&mut self) {
        self.push(JMP | EXIT, 0, 0, 0, 0);
    }

    /// A jump comparing the low 32 bits of `reg` with `imm`.
    fn jump_imm(&mut self, op: u8, reg: u8, imm: i32, to: Label) {
        self.jumps.push((self.insns.len(), to));
        self.push(JMP32 | op | K, reg, 0, 0, imm);
    }

    /// A jump comparing two registers, all 64 bits (pointers, the clock).
    fn jump_reg(&mut self, op: u8, dst: u8, src: u8, to: Label) {
        self.jumps.push((self.insns.len(), to));
        self.push(JMP | op | X, dst, src, 0, 0);
    }

    /// A jump if the 64-bit `reg` is zero (a map lookup's result) or not.
    fn jump_zero(&mut self, zero: bool, reg: u8, to: Label) {
        self.jumps.push((self.insns.len(), to));
        let op = if zero { JEQ } else { JNE };
        self.push(JMP | op | K, reg, 0, 0, 0);
    }

    fn goto(&mut self, to: Label) {
        self.jumps.push((self.insns.len(), to));
        self.push(JMP | JA, 0, 0, 0, 0);
    }

    fn finish(mut self) -> Vec<Insn> {
        for (at, label) in std::mem::take(&mut self.jumps) {
            let target = self.labels[label.0].expect("every label used is bound");
            let offset = i16::try_from(target as isize - at as isize - 1)
                .expect("the program is far shorter than 32,767 instructions");
            self.insns[at].off = offset;
        }
        self.insns
    }

    // Composite steps.

    /// `r0` = the map `fd`'s value for the key at `r10 + key`, or zero.
    fn lookup(&mut self, fd: i32, key: i16) {
        self.map_fd(R1, fd);
        self.mov_reg(R2, R10);
        self.alu_imm(ADD, R2, i32::from(key));
        self.call(MAP_LOOKUP_ELEM);
    }

    /// Copies the 6-byte MAC at `src + from` to `dst + to`.
    fn copy_mac(&mut self, dst: u8, to: i16, src: u8, from: i16) {
        self.load(Size::W, R2, src, from);
        self.store(Size::W, dst, to, R2);
        self.load(Size::H, R2, src, from + 4);
        self.store(Size::H, dst, to + 4, R2);
    }

    /// Jumps to `to` if the MAC at `a + at` is the one at `b + bt`.
    fn jump_same_mac(&mut self, a: u8, at: i16, b: u8, bt: i16, to: Label) {
        let differs = self.label();
        self.load(Size::W, R2, a, at);
        self.load(Size::W, R3, b, bt);
        self.jump_reg(JNE, R2, R3, differs);
        self.load(Size::H, R2, a, at + 4);
        self.load(Size::H, R3, b, bt + 4);
        self.jump_reg(JEQ, R2, R3, to);
        self.bind(differs);
    }

    /// Copies `len` bytes (a multiple of 4) from `src + from` to `dst + to`.
    fn copy_words(&mut self, dst: u8, to: i16, src: u8, from: i16, len: i16) {
        for i in (0..len).step_by(4) {
            self.load(Size::W, R2, src, from + i);
            self.store(Size::W, dst, to + i, R2);
        }
    }

    /// `r0` = the 16-bit one's complement sum (folded, in the packet's byte order) of the
    /// IPv6 pseudo-header and the 32-byte ICMPv6 message of a Neighbor Solicitation or
    /// Advertisement with the link-layer option: the addresses and the message are the
    /// frame's bytes 22..86, the length and next header are constants.
    fn icmpv6_sum(&mut self) {
        self.mov_imm(R1, 0);
        self.mov_imm(R2, 0);
        self.mov_reg(R3, R7);
        self.alu_imm(ADD, R3, i32::from(IPV6_SOURCE));
        self.mov_imm(R4, 64);
        self.mov_imm(R5, pseudo_header_constants());
        self.call(CSUM_DIFF);
        for _ in 0..2 {
            self.mov_reg(R1, R0);
            self.alu_imm(RSH, R1, 16);
            self.alu_imm(AND, R0, 0xffff);
            self.alu_reg(ADD, R0, R1);
        }
    }

    /// Adds one to the state map's `slot`.
    fn count(&mut self, state: i32, slot: u32) {
        let done = self.label();
        self.store_imm(Size::W, R10, -4, slot as i32);
        self.lookup(state, -4);
        self.jump_zero(true, R0, done);
        self.mov_imm(R1, 1);
        // Atomic add (`imm` = BPF_ADD): the program runs on every CPU at once.
        self.push(STX | ATOMIC | Size::Dw as u8, R0, R1, 0, i32::from(ADD));
        self.bind(done);
    }
}

/// The value of `bytes` as loaded by a 16-bit load on this machine.
fn ne16(bytes: [u8; 2]) -> i32 {
    i32::from(u16::from_ne_bytes(bytes))
}

/// The value of `bytes` as loaded by a 32-bit load on this machine (below 2^31 for every
/// constant used here).
fn ne32(bytes: [u8; 4]) -> i32 {
    i32::from_ne_bytes(bytes)
}

/// The pseudo-header's upper-layer length (32) and next header (58), each a 32-bit
/// big-endian field, summed as 16-bit words in this machine's order.
fn pseudo_header_constants() -> i32 {
    ne16([0, 32]) + ne16([0, 58])
}

// Frame offsets (untagged Ethernet).
const ETH_SOURCE: i16 = 6;
const ETH_TYPE: i16 = 12;
const ARP_HEADER: i16 = 14;
const ARP_LENGTHS_OP: i16 = 18;
const ARP_OP: i16 = 20;
const ARP_SENDER_MAC: i16 = 22;
const ARP_SENDER_IP: i16 = 28;
const ARP_TARGET_MAC: i16 = 32;
const ARP_TARGET_IP: i16 = 38;
const ARP_END: i32 = 42;
const IPV6_VERSION: i16 = 14;
const IPV6_PAYLOAD_LENGTH: i16 = 18;
const IPV6_NEXT_HEADER: i16 = 20;
const IPV6_SOURCE: i16 = 22;
const IPV6_DESTINATION: i16 = 38;
const ICMPV6_TYPE: i16 = 54;
const ICMPV6_CHECKSUM: i16 = 56;
const NA_FLAGS: i16 = 58;
const ND_TARGET: i16 = 62;
const ND_OPTION: i16 = 78;
const ND_OPTION_MAC: i16 = 80;
const NDP_END: i32 = 86;

/// The program for one interface, reading `maps`. See the module's documentation for what it
/// answers; every other frame gets [`TCX_NEXT`], unchanged.
pub fn program(maps: Maps) -> Vec<Insn> {
    let mut a = Asm::default();
    let next = a.label();
    let arp = a.label();
    let ndp = a.label();
    let send = a.label();

    a.mov_reg(R6, R1);
    // A frame with a VLAN tag belongs to another interface.
    a.load(Size::W, R2, R6, SKB_VLAN_PRESENT);
    a.jump_imm(JNE, R2, 0, next);
    // Only while user space keeps the deadline ahead.
    a.store_imm(Size::W, R10, -4, SLOT_DEADLINE as i32);
    a.lookup(maps.state, -4);
    a.jump_zero(true, R0, next);
    a.load(Size::Dw, R9, R0, 0);
    a.call(KTIME_GET_NS);
    a.jump_reg(JGE, R0, R9, next);
    // The frame, its Ethernet header in reach.
    a.load(Size::W, R7, R6, SKB_DATA);
    a.load(Size::W, R8, R6, SKB_DATA_END);
    a.mov_reg(R1, R7);
    a.alu_imm(ADD, R1, i32::from(ARP_HEADER));
    a.jump_reg(JGT, R1, R8, next);
    a.load(Size::H, R2, R7, ETH_TYPE);
    a.jump_imm(JEQ, R2, ne16(ETHERTYPE_ARP.to_be_bytes()), arp);
    a.jump_imm(JEQ, R2, ne16(ETHERTYPE_IPV6.to_be_bytes()), ndp);
    a.bind(next);
    a.mov_imm(R0, TCX_NEXT);
    a.exit();

    // ARP: an Ethernet/IPv4 request from an address (not a probe, not gratuitous) that is not
    // one of ours (that would be a claim), for one of ours.
    a.bind(arp);
    a.mov_reg(R1, R7);
    a.alu_imm(ADD, R1, ARP_END);
    a.jump_reg(JGT, R1, R8, next);
    a.load(Size::W, R2, R7, ARP_HEADER);
    a.jump_imm(JNE, R2, ne32([0, 1, 0x08, 0x00]), next);
    a.load(Size::W, R2, R7, ARP_LENGTHS_OP);
    a.jump_imm(JNE, R2, ne32([6, 4, 0, 1]), next);
    a.load(Size::W, R2, R7, ARP_SENDER_IP);
    a.jump_imm(JEQ, R2, 0, next);
    a.load(Size::W, R3, R7, ARP_TARGET_IP);
    a.jump_reg(JEQ, R2, R3, next);
    a.store(Size::W, R10, -8, R2);
    a.lookup(maps.v4, -8);
    a.jump_zero(false, R0, next);
    a.load(Size::W, R3, R7, ARP_TARGET_IP);
    a.store(Size::W, R10, -8, R3);
    a.lookup(maps.v4, -8);
    a.jump_zero(true, R0, next);
    a.mov_reg(R9, R0);
    a.jump_same_mac(R7, ETH_SOURCE, R9, 0, next);
    a.jump_same_mac(R7, ARP_SENDER_MAC, R9, 0, next);
    // To the broadcast address or to us (a neighbour revalidating its entry).
    let addressed = a.label();
    a.jump_same_mac(R7, 0, R9, 0, addressed);
    a.load(Size::W, R2, R7, 0);
    a.jump_imm(JNE, R2, -1, next);
    a.load(Size::H, R2, R7, 4);
    a.jump_imm(JNE, R2, 0xffff, next);
    a.bind(addressed);
    // The reply, in place.
    a.copy_mac(R7, 0, R7, ARP_SENDER_MAC);
    a.copy_mac(R7, ETH_SOURCE, R9, 0);
    a.store_imm(Size::H, R7, ARP_OP, ne16([0, 2]));
    a.copy_mac(R7, ARP_TARGET_MAC, R7, ARP_SENDER_MAC);
    a.load(Size::W, R2, R7, ARP_SENDER_IP);
    a.load(Size::W, R3, R7, ARP_TARGET_IP);
    a.store(Size::W, R7, ARP_TARGET_IP, R2);
    a.store(Size::W, R7, ARP_SENDER_IP, R3);
    a.copy_mac(R7, ARP_SENDER_MAC, R9, 0);
    a.count(maps.state, SLOT_ARP);
    a.goto(send);

    // NDP: a Neighbor Solicitation with nothing but the source link-layer option, hop limit
    // 255, a valid checksum, from an address (not duplicate-address detection), for one of
    // ours.
    a.bind(ndp);
    a.mov_reg(R1, R7);
    a.alu_imm(ADD, R1, NDP_END);
    a.jump_reg(JGT, R1, R8, next);
    a.load(Size::B, R2, R7, IPV6_VERSION);
    a.alu_imm(AND, R2, 0xf0);
    a.jump_imm(JNE, R2, 0x60, next);
    a.load(Size::H, R2, R7, IPV6_PAYLOAD_LENGTH);
    a.jump_imm(JNE, R2, ne16([0, 32]), next);
    a.load(Size::H, R2, R7, IPV6_NEXT_HEADER);
    a.jump_imm(JNE, R2, ne16([58, 255]), next);
    a.load(Size::H, R2, R7, ICMPV6_TYPE);
    a.jump_imm(JNE, R2, ne16([135, 0]), next);
    a.load(Size::H, R2, R7, ND_OPTION);
    a.jump_imm(JNE, R2, ne16([1, 1]), next);
    a.load(Size::W, R2, R7, IPV6_SOURCE);
    for word in 1..4 {
        a.load(Size::W, R3, R7, IPV6_SOURCE + 4 * word);
        a.alu_reg(OR, R2, R3);
    }
    a.jump_zero(true, R2, next);
    a.icmpv6_sum();
    a.jump_imm(JNE, R0, 0xffff, next);
    a.copy_words(R10, -24, R7, ND_TARGET, 16);
    a.lookup(maps.v6, -24);
    a.jump_zero(true, R0, next);
    a.mov_reg(R9, R0);
    a.jump_same_mac(R7, ETH_SOURCE, R9, 0, next);
    a.jump_same_mac(R7, ND_OPTION_MAC, R9, 0, next);
    // To a multicast group (the solicited-node one) or to us (unreachability detection).
    let addressed = a.label();
    a.jump_same_mac(R7, 0, R9, 0, addressed);
    a.load(Size::B, R2, R7, 0);
    a.alu_imm(AND, R2, 1);
    a.jump_imm(JEQ, R2, 0, next);
    a.bind(addressed);
    // The solicited advertisement, in place: to the solicitor's address and link-layer
    // address, from the target, Solicited and Override, with our link-layer address.
    a.copy_mac(R7, 0, R7, ND_OPTION_MAC);
    a.copy_mac(R7, ETH_SOURCE, R9, 0);
    a.store_imm(Size::W, R7, IPV6_VERSION, ne32([0x60, 0, 0, 0]));
    a.copy_words(R7, IPV6_DESTINATION, R7, IPV6_SOURCE, 16);
    a.copy_words(R7, IPV6_SOURCE, R7, ND_TARGET, 16);
    a.store_imm(Size::H, R7, ICMPV6_TYPE, ne16([136, 0]));
    a.store_imm(Size::H, R7, ICMPV6_CHECKSUM, 0);
    a.store_imm(Size::W, R7, NA_FLAGS, ne32([0x60, 0, 0, 0]));
    a.store_imm(Size::H, R7, ND_OPTION, ne16([2, 1]));
    a.copy_mac(R7, ND_OPTION_MAC, R9, 0);
    a.icmpv6_sum();
    a.alu_imm(XOR, R0, 0xffff);
    a.store(Size::H, R7, ICMPV6_CHECKSUM, R0);
    a.count(maps.state, SLOT_NDP);

    // Out of the interface it came in on.
    a.bind(send);
    a.load(Size::W, R1, R6, SKB_IFINDEX);
    a.mov_imm(R2, 0);
    a.call(REDIRECT);
    a.exit();
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps() -> Maps {
        Maps {
            v4: 11,
            v6: 12,
            state: 13,
        }
    }

    #[test]
    fn every_jump_lands_inside_the_program_and_it_ends_in_exits() {
        let program = program(maps());
        let len = program.len() as isize;
        for (pc, insn) in program.iter().enumerate() {
            let class = insn.code & 0x07;
            let op = insn.code & 0xf0;
            if (class == JMP || class == JMP32) && op != CALL && op != EXIT {
                let target = pc as isize + 1 + isize::from(insn.off);
                assert!((0..len).contains(&target), "jump at {pc} to {target}");
            }
        }
        assert_eq!(program.last().unwrap().code, JMP | EXIT);
    }

    #[test]
    fn the_maps_are_referenced_by_descriptor_in_two_slot_loads() {
        let program = program(maps());
        let mut seen = std::collections::BTreeSet::new();
        for (pc, insn) in program.iter().enumerate() {
            if insn.code == LD_IMM64 {
                assert_eq!(insn.src, PSEUDO_MAP_FD);
                assert_eq!(
                    program[pc + 1],
                    Insn {
                        code: 0,
                        dst: 0,
                        src: 0,
                        off: 0,
                        imm: 0
                    }
                );
                seen.insert(insn.imm);
            }
        }
        assert_eq!(seen, [11, 12, 13].into_iter().collect());
    }

    #[test]
    fn registers_share_a_byte_destination_first() {
        let insn = Insn {
            code: ALU64 | MOV | X,
            dst: 6,
            src: 1,
            off: -2,
            imm: 0x0102_0304,
        };
        let bytes = insn.to_bytes();
        assert_eq!(bytes[0], 0xbf);
        if cfg!(target_endian = "little") {
            assert_eq!(bytes[1], 0x16);
            assert_eq!(&bytes[2..], &[0xfe, 0xff, 0x04, 0x03, 0x02, 0x01]);
        }
    }

    #[test]
    fn the_pseudo_header_constants_are_the_length_and_next_header() {
        // 32 + 58 as big-endian words; on a little-endian machine each sits in the high byte.
        let expected = if cfg!(target_endian = "little") {
            (32 << 8) + (58 << 8)
        } else {
            32 + 58
        };
        assert_eq!(pseudo_header_constants(), expected);
    }
}
