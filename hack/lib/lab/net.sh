# The lab network: a bridge in the host namespace (the control plane's side), one namespace
# per node and one for the router on it, a client namespace behind the router, and the pools
# blackholed in the host namespace. Sourced by hack/lab.
# shellcheck shell=bash

lab_netns_add() {
  local ns=$1
  ip netns add "$ns" || die "could not create network namespace $ns"
  lab_ns "$ns" ip link set lo up
  lab_ns "$ns" sysctl -qw net.ipv4.ip_forward=1
  lab_ns "$ns" sysctl -qw net.ipv6.conf.all.forwarding=1
  lab_ns "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0
  lab_ns "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0
}

# lab_veth NETNS: a veth pair, eth0 in NETNS, the other end (bmlab-<n>) on the lab bridge.
lab_veth() {
  local ns=$1 name=$2
  ip link add "$name" type veth peer name eth0 netns "$ns" || die "could not create veth $name"
  ip link set "$name" master "$LAB_BRIDGE" up
  lab_ns "$ns" ip link set eth0 up
}

lab_net_up() {
  ip link add "$LAB_BRIDGE" type bridge || die "could not create bridge $LAB_BRIDGE"
  ip addr add "$LAB_HOST_IP/$LAB_PREFIX_LEN" dev "$LAB_BRIDGE"
  ip addr add "$LAB_HOST_IP6/64" dev "$LAB_BRIDGE" nodad
  ip link set "$LAB_BRIDGE" up
  local n ns
  for n in "${LAB_NODES[@]}"; do
    ns=$(lab_netns "$n")
    lab_netns_add "$ns"
    lab_veth "$ns" "$LAB-n$(lab_node_index "$n")"
    lab_ns "$ns" ip addr add "$(lab_node_ip "$n")/$LAB_PREFIX_LEN" dev eth0
    # The router is the nodes' gateway, as on a routed bare-metal network; the control
    # plane is on the same segment.
    lab_ns "$ns" ip addr add "$(lab_node_ip6 "$n")/64" dev eth0 nodad
    lab_ns "$ns" ip route add default via "$LAB_ROUTER_IP"
    lab_ns "$ns" ip -6 route add default via "$LAB_ROUTER_IP6"
  done
  # Pod networks: each node reaches the others' pod CIDRs through them (what a CNI's routing
  # mode or a router would do; the CCM has no route controller by design). The host reaches
  # them too, so the API server can reach webhooks or pods if ever needed.
  local m
  for n in "${LAB_NODES[@]}"; do
    for m in "${LAB_NODES[@]}"; do
      [ "$n" = "$m" ] && continue
      lab_ns "$(lab_netns "$n")" ip route add "$(lab_node_pod_cidr "$m")" via "$(lab_node_ip "$m")"
      lab_ns "$(lab_netns "$n")" ip -6 route add "$(lab_node_pod_cidr6 "$m")" via "$(lab_node_ip6 "$m")"
    done
    ip route add "$(lab_node_pod_cidr "$n")" via "$(lab_node_ip "$n")" dev "$LAB_BRIDGE"
    ip -6 route add "$(lab_node_pod_cidr6 "$n")" via "$(lab_node_ip6 "$n")" dev "$LAB_BRIDGE"
  done
  # Router: uplink on the bridge, downlink to the client.
  lab_netns_add "$LAB_ROUTER_NS"
  lab_veth "$LAB_ROUTER_NS" "$LAB-rt"
  lab_ns "$LAB_ROUTER_NS" ip addr add "$LAB_ROUTER_IP/$LAB_PREFIX_LEN" dev eth0
  lab_ns "$LAB_ROUTER_NS" ip addr add "$LAB_ROUTER_IP6/64" dev eth0 nodad
  lab_netns_add "$LAB_CLIENT_NS"
  ip link add "$LAB-cl" netns "$LAB_ROUTER_NS" type veth peer name eth0 netns "$LAB_CLIENT_NS" \
    || die "could not create the client link"
  lab_ns "$LAB_ROUTER_NS" ip link set "$LAB-cl" up
  lab_ns "$LAB_ROUTER_NS" ip addr add "$LAB_ROUTER_CLIENT_IP/24" dev "$LAB-cl"
  lab_ns "$LAB_ROUTER_NS" ip addr add "$LAB_ROUTER_CLIENT_IP6/64" dev "$LAB-cl" nodad
  lab_ns "$LAB_CLIENT_NS" ip link set eth0 up
  lab_ns "$LAB_CLIENT_NS" ip addr add "$LAB_CLIENT_IP/24" dev eth0
  lab_ns "$LAB_CLIENT_NS" ip addr add "$LAB_CLIENT_IP6/64" dev eth0 nodad
  lab_ns "$LAB_CLIENT_NS" ip route add default via "$LAB_ROUTER_CLIENT_IP"
  lab_ns "$LAB_CLIENT_NS" ip -6 route add default via "$LAB_ROUTER_CLIENT_IP6"
  # The layer-2 resolver probe: a bare host on the bridge (env.sh).
  lab_netns_add "$LAB_L2_RESOLVER_NS"
  lab_veth "$LAB_L2_RESOLVER_NS" "$LAB-l2r"
  lab_ns "$LAB_L2_RESOLVER_NS" ip addr add "$LAB_L2_RESOLVER_IP/$LAB_PREFIX_LEN" dev eth0
  lab_ns "$LAB_L2_RESOLVER_NS" ip addr add "$LAB_L2_RESOLVER_IP6/64" dev eth0 nodad
  # ECMP over nodes: hash on L4 ports so different connections spread over the next hops.
  lab_ns "$LAB_ROUTER_NS" sysctl -qw net.ipv4.fib_multipath_hash_policy=1
  lab_ns "$LAB_ROUTER_NS" sysctl -qw net.ipv6.fib_multipath_hash_policy=1
  # The pools exist only inside the lab: from the host namespace they go nowhere.
  ip route add blackhole "$LAB_POOL_V4" || die "could not blackhole $LAB_POOL_V4 in the host namespace"
  ip -6 route add blackhole "$LAB_POOL_V6" || die "could not blackhole $LAB_POOL_V6 in the host namespace"
}

lab_net_down() {
  local ns
  for ns in $(ip netns list | awk '{print $1}' | grep "^$LAB-" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
  ip link del "$LAB_BRIDGE" 2>/dev/null || true
  local n
  for n in "${LAB_NODES[@]}"; do
    ip route del "$(lab_node_pod_cidr "$n")" 2>/dev/null || true
    ip -6 route del "$(lab_node_pod_cidr6 "$n")" 2>/dev/null || true
  done
  ip route del blackhole "$LAB_POOL_V4" 2>/dev/null || true
  ip -6 route del blackhole "$LAB_POOL_V6" 2>/dev/null || true
}
