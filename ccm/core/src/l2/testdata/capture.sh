#!/usr/bin/env bash
# Captures the golden frames of `l2::frame`'s tests from the Linux kernel and the usual tools.
#
# Usage (root; needs ip, tcpdump, Thomas Habets' arping 2.x, ndisc6, ping):
#   ccm/core/src/l2/testdata/capture.sh ccm/core/src/l2/testdata
#
# Two network namespaces joined by a veth pair, every frame captured on B's end (both directions):
#   l2f-a / va  02:00:00:00:00:0a  192.0.2.1/24  2001:db8::1/64  fe80::ff:fe00:a
#   l2f-b / vb  02:00:00:00:00:0b  192.0.2.2/24  2001:db8::2/64  fe80::ff:fe00:b
# Each step runs under its own tcpdump and ends when the expected frames are in (never on a
# timer); each .hex file names its step, the command and the filter that picked its frame.
# Rerunning changes only what is random by nature: the nonce of an enhanced-DAD NS and the
# flow label ndisc6 sets.
set -euo pipefail

out=${1:?usage: capture.sh OUTPUT_DIR}
work=$(mktemp -d)
A=(ip netns exec l2f-a)
B=(ip netns exec l2f-b)

cleanup() {
    ip netns del l2f-a 2>/dev/null || true
    ip netns del l2f-b 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# wait_for DESCRIPTION COMMAND...: polls COMMAND until it succeeds, for at most 20 s.
wait_for() {
    local what=$1
    shift
    for _ in $(seq 200); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    echo "capture.sh: timed out waiting for $what" >&2
    exit 1
}

frames_in() { [ "$(tcpdump -r "$1" 2>/dev/null | wc -l)" -ge "$2" ]; }
listening() { grep -qs "listening on" "$1"; }
no_tentative() { [ -z "$("${A[@]}" ip -6 addr show dev va tentative)" ] && [ -z "$("${B[@]}" ip -6 addr show dev vb tentative)" ]; }

# step NAME FILTER COUNT COMMAND...: captures on vb until COUNT frames matching FILTER are in.
step() {
    local name=$1 filter=$2 count=$3
    shift 3
    "${B[@]}" tcpdump -i vb -U -w "$work/$name.pcap" "$filter" 2>"$work/$name.err" &
    local pid=$!
    wait_for "tcpdump for $name" listening "$work/$name.err"
    # arping exits non-zero when nobody answers (unsolicited ARP, the tagged request): the
    # frame count below is what tells success.
    "$@" >/dev/null || echo "capture.sh: $name: the command exited non-zero" >&2
    wait_for "$count frames in $name" frames_in "$work/$name.pcap" "$count"
    kill "$pid"
    wait "$pid" || true
}

# emit FILE STEP FILTER COMMAND DESCRIPTION: the first frame of STEP's capture matching FILTER.
emit() {
    local file=$1 name=$2 filter=$3 command=$4 description=$5
    {
        echo "# $description"
        echo "# Step '$name' of capture.sh: $command"
        echo "# Frame: the first of tcpdump -r $name.pcap '$filter'"
        tcpdump -r "$work/$name.pcap" -c 1 -xx "$filter" 2>/dev/null |
            sed -n 's/^[[:space:]]*0x[0-9a-f]*:[[:space:]]*//p' |
            tr -d ' \n' | fold -w 32 | sed 's/\(..\)/\1 /g; s/ $//'
        echo
    } >"$out/$file.hex"
    if [ "$(grep -vc '^#' "$out/$file.hex")" -eq 0 ]; then
        echo "capture.sh: no frame for $file" >&2
        exit 1
    fi
}

ip netns add l2f-a
ip netns add l2f-b
ip link add name va address 02:00:00:00:00:0a netns l2f-a type veth \
    peer name vb address 02:00:00:00:00:0b netns l2f-b
# arp_notify: the kernel's own gratuitous ARP when the MAC changes; ndisc_notify: its own
# unsolicited NA then. A short delay_first_probe_time makes the kernel's unicast revalidation
# come quickly; enhanced_dad stays on for now (DAD NS with a nonce option).
"${A[@]}" sysctl -qw net.ipv4.conf.va.arp_notify=1 net.ipv6.conf.va.ndisc_notify=1 \
    net.ipv4.neigh.va.delay_first_probe_time=1 net.ipv6.neigh.va.delay_first_probe_time=1
"${A[@]}" ip addr add 192.0.2.1/24 dev va
"${A[@]}" ip addr add 2001:db8::1/64 dev va nodad
"${B[@]}" ip addr add 192.0.2.2/24 dev vb
"${A[@]}" ip link set va up
"${B[@]}" ip link set vb up
wait_for "link-local DAD" no_tentative

ARP=arp
NS='icmp6 and ip6[40] == 135'
NA='icmp6 and ip6[40] == 136'
NDP='icmp6 and (ip6[40] == 135 or ip6[40] == 136)'
FROM_A='ether src 02:00:00:00:00:0a'
FROM_B='ether src 02:00:00:00:00:0b'

# ---- ARP ----
step garp "$ARP" 2 sh -c 'ip -n l2f-a link set va address 02:00:00:00:00:0c &&
    ip -n l2f-a link set va address 02:00:00:00:00:0a'
emit arp-kernel-garp-request garp "$FROM_A" \
    "ip link set va address 02:00:00:00:00:0c, then back to 02:00:00:00:00:0a (arp_notify=1)" \
    "A's kernel announces 192.0.2.1 after its MAC changed: gratuitous ARP, request form, THA zero."
# The MAC change also sent unsolicited NAs (ndisc_notify); this step's filter kept only ARP.

step ping4 "$ARP" 2 "${A[@]}" ping -c 1 -W 5 192.0.2.2
emit arp-kernel-request ping4 "$FROM_A" "ip netns exec l2f-a ping -c 1 192.0.2.2" \
    "A's kernel resolves 192.0.2.2: broadcast ARP request."
emit arp-kernel-reply ping4 "$FROM_B" "ip netns exec l2f-a ping -c 1 192.0.2.2" \
    "B's kernel answers A's broadcast request for 192.0.2.2: unicast ARP reply."

step nud4 "$ARP" 2 sh -c 'ip -n l2f-a neigh change 192.0.2.2 dev va lladdr 02:00:00:00:00:0b nud stale &&
    ip netns exec l2f-a ping -c 1 -W 5 192.0.2.2 >/dev/null'
emit arp-kernel-unicast-request nud4 "$FROM_A and arp[6:2] == 1" \
    "ip neigh change 192.0.2.2 ... nud stale; ip netns exec l2f-a ping -c 1 192.0.2.2" \
    "A's kernel revalidates a stale entry (delay_first_probe_time=1): ARP request unicast to B's MAC."
emit arp-kernel-reply-to-unicast nud4 "$FROM_B and arp[6:2] == 2" \
    "ip neigh change 192.0.2.2 ... nud stale; ip netns exec l2f-a ping -c 1 192.0.2.2" \
    "B's kernel answers A's unicast request for 192.0.2.2."

step arping "$ARP" 2 "${A[@]}" arping -q -c 1 -i va 192.0.2.2
emit arping-request arping "$FROM_A" "ip netns exec l2f-a arping -c 1 -i va 192.0.2.2" \
    "arping 2.23's broadcast request for 192.0.2.2 (padded to 58 bytes by arping)."

step arping_unicast "$ARP" 2 "${A[@]}" arping -q -c 1 -i va -t 02:00:00:00:00:0b 192.0.2.2
emit arping-unicast-request arping_unicast "$FROM_A" \
    "ip netns exec l2f-a arping -c 1 -i va -t 02:00:00:00:00:0b 192.0.2.2" \
    "arping 2.23's request for 192.0.2.2 unicast to B's MAC."

step arping_garp "$ARP" 1 "${A[@]}" arping -q -c 1 -i va -U 192.0.2.1
emit arping-garp-request arping_garp "$FROM_A" "ip netns exec l2f-a arping -c 1 -i va -U 192.0.2.1" \
    "arping 2.23's unsolicited ARP for 192.0.2.1: request form, THA ff:ff:ff:ff:ff:ff."

step arping_garp_reply "$ARP" 1 "${A[@]}" arping -q -c 1 -i va -U -P 192.0.2.1
emit arping-garp-reply arping_garp_reply "$FROM_A" \
    "ip netns exec l2f-a arping -c 1 -i va -U -P 192.0.2.1" \
    "arping 2.23's unsolicited ARP for 192.0.2.1 as a reply: THA ff:ff:ff:ff:ff:ff, to broadcast."

step arping_probe "$ARP" 2 "${A[@]}" arping -q -c 1 -i va -0 192.0.2.2
emit arping-probe arping_probe "$FROM_A" "ip netns exec l2f-a arping -c 1 -i va -0 192.0.2.2" \
    "arping 2.23 with sender address 0.0.0.0 for 192.0.2.2: an RFC 5227 probe."
emit arp-kernel-probe-reply arping_probe "$FROM_B" "ip netns exec l2f-a arping -c 1 -i va -0 192.0.2.2" \
    "B's kernel answers the probe for 192.0.2.2: reply unicast to the prober, TPA 0.0.0.0."

step arping_vlan "vlan and arp" 1 "${A[@]}" arping -q -c 1 -w 1 -i va -V 100 192.0.2.2
emit arping-vlan-request arping_vlan "vlan and arp" \
    "ip netns exec l2f-a arping -c 1 -w 1 -i va -V 100 192.0.2.2" \
    "arping 2.23's request for 192.0.2.2 with an 802.1Q tag, VLAN 100 (nobody answers)."

# ---- NDP ----
step unsolicited "$NA and $FROM_A" 2 sh -c 'ip -n l2f-a link set va address 02:00:00:00:00:0c &&
    ip -n l2f-a link set va address 02:00:00:00:00:0a'
emit ndp-kernel-unsolicited-na unsolicited "$FROM_A and ip6 src 2001:db8::1" \
    "ip link set va address 02:00:00:00:00:0c, then back to 02:00:00:00:00:0a (ndisc_notify=1)" \
    "A's kernel announces 2001:db8::1 after its MAC changed: unsolicited NA to ff02::1, O=1, TLLA."

step dad_nonce "$NS" 1 "${B[@]}" ip addr add 2001:db8::2/64 dev vb
emit ndp-kernel-dad-ns-nonce dad_nonce "$FROM_B" "ip netns exec l2f-b ip addr add 2001:db8::2/64 dev vb" \
    "B's kernel checks 2001:db8::2 (enhanced_dad=1): DAD NS from ::, nonce option (type 14)."

"${B[@]}" sysctl -qw net.ipv6.conf.all.enhanced_dad=0 net.ipv6.conf.vb.enhanced_dad=0
step dad "$NS" 1 "${B[@]}" ip addr add 2001:db8::3/64 dev vb
emit ndp-kernel-dad-ns dad "$FROM_B" "ip netns exec l2f-b ip addr add 2001:db8::3/64 dev vb" \
    "B's kernel checks 2001:db8::3 (enhanced_dad=0 for all and vb): DAD NS from ::, no option."
wait_for "DAD of 2001:db8::2 and ::3" no_tentative

step dad_defence "$NDP" 2 "${B[@]}" ip addr add 2001:db8::1/64 dev vb
emit ndp-kernel-dad-defence-na dad_defence "$NA and $FROM_A" \
    "ip netns exec l2f-b ip addr add 2001:db8::1/64 dev vb (A has 2001:db8::1)" \
    "A's kernel defends 2001:db8::1 against B's DAD NS: NA to ff02::1, S=0, O=1, TLLA."
"${B[@]}" ip addr del 2001:db8::1/64 dev vb

step ndisc6 "$NDP" 2 "${A[@]}" ndisc6 -1 -q 2001:db8::2 va
emit ndisc6-ns ndisc6 "$NS and $FROM_A" "ip netns exec l2f-a ndisc6 -1 -q 2001:db8::2 va" \
    "ndisc6 1.0.5 asks for 2001:db8::2: NS to its solicited-node group from A's link-local, SLLA."
emit ndp-kernel-na-to-ndisc6 ndisc6 "$NA and $FROM_B" "ip netns exec l2f-a ndisc6 -1 -q 2001:db8::2 va" \
    "B's kernel answers ndisc6: NA S=1, O=1, TLLA, unicast to A's link-local, source 2001:db8::2."

step ping6 "$NDP" 2 "${A[@]}" ping -6 -c 1 -W 5 2001:db8::2
emit ndp-kernel-ns ping6 "$NS and $FROM_A" "ip netns exec l2f-a ping -6 -c 1 2001:db8::2" \
    "A's kernel resolves 2001:db8::2: NS to the solicited-node group, source 2001:db8::1, SLLA."
emit ndp-kernel-na ping6 "$NA and $FROM_B" "ip netns exec l2f-a ping -6 -c 1 2001:db8::2" \
    "B's kernel answers: NA S=1, O=1, TLLA, unicast to 2001:db8::1."

step nud6 "$NDP" 2 sh -c 'ip -n l2f-a neigh change 2001:db8::2 dev va lladdr 02:00:00:00:00:0b nud stale &&
    ip netns exec l2f-a ping -6 -c 1 -W 5 2001:db8::2 >/dev/null'
emit ndp-kernel-unicast-ns nud6 "$NS and $FROM_A" \
    "ip neigh change 2001:db8::2 ... nud stale; ip netns exec l2f-a ping -6 -c 1 2001:db8::2" \
    "A's kernel revalidates a stale entry: NS unicast to 2001:db8::2 and B's MAC."
emit ndp-kernel-na-to-unicast nud6 "$NA and $FROM_B" \
    "ip neigh change 2001:db8::2 ... nud stale; ip netns exec l2f-a ping -6 -c 1 2001:db8::2" \
    "B's kernel answers the unicast NS: NA S=1, O=0, no TLLA option."

echo "capture.sh: frames written to $out"
