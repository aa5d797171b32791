# What `hack/lab up` proves before it says the lab works; each check prints what it saw and
# fails naming what is wrong. Sourced by hack/lab.
# shellcheck shell=bash

LAB_FAILED=0
lab_fail() { printf '  FAIL: %s\n' "$*" >&2; LAB_FAILED=1; }

# lab_node_initialized NODE: our cloud-node has initialized NODE and it is Ready.
lab_node_initialized() {
  local n=$1 out
  out=$(lab_kubectl get node "$n" -o jsonpath='{.spec.providerID}|{.spec.taints[*].key}|{.status.conditions[?(@.type=="Ready")].status}|{.status.addresses[?(@.type=="InternalIP")].address}' 2>/dev/null) || return 1
  IFS='|' read -r pid taints ready addr <<<"$out"
  [ "$pid" = "baremetal://$n" ] && [[ $taints != *node.cloudprovider.kubernetes.io/uninitialized* ]] \
    && [ "$ready" = True ] && [ "$addr" = "$(lab_node_ip "$n") $(lab_node_ip6 "$n")" ]
}

lab_check_nodes() {
  local n out
  lab_phase "check: every node initialized by baremetal-ccm's cloud-node and Ready"
  for n in "${LAB_NODES[@]}"; do
    out=$(lab_kubectl get node "$n" -o jsonpath='providerID={.spec.providerID} taints=[{.spec.taints[*].key}] Ready={.status.conditions[?(@.type=="Ready")].status} InternalIP={.status.addresses[?(@.type=="InternalIP")].address} zone={.metadata.labels.topology\.kubernetes\.io/zone} kubelet={.status.nodeInfo.kubeletVersion}' 2>&1)
    printf '  %s: %s\n' "$n" "$out" >&2
    lab_node_initialized "$n" || lab_fail "$n is not initialized and Ready (see: hack/lab logs controller; hack/lab logs kubelet-$n)"
  done
}

# lab_in_pool ADDRESS: ADDRESS is inside the lab pool's range of its family.
lab_in_pool() {
  python3 -c 'import ipaddress,sys; a=ipaddress.ip_address(sys.argv[1]); sys.exit(0 if any(a in ipaddress.ip_network(n) for n in sys.argv[2:] if ipaddress.ip_network(n).version == a.version) else 1)' \
    "$1" "$LAB_POOL_V4" "$LAB_POOL_V6" 2>/dev/null
}

lab_check_service() {
  lab_phase "check: the Service's EXTERNAL-IP comes from the pool"
  local ip ip6
  ip=$(lab_service_ip)
  ip6=$(lab_service_ip6)
  lab_kubectl -n "$LAB_DEMO_NS" get svc "$LAB_DEMO_SVC" >&2
  lab_in_pool "$ip" || lab_fail "the IPv4 EXTERNAL-IP '$ip' is not in $LAB_POOL_V4 (kubectl -n demo describe svc hello)"
  lab_in_pool "$ip6" || lab_fail "the IPv6 EXTERNAL-IP '$ip6' is not in $LAB_POOL_V6 (kubectl -n demo describe svc hello)"
  LAB_VIP=$ip
  LAB_VIP6=$ip6
}

# lab_eligible_next_hops: the node addresses that should carry the Service (all Ready nodes).
# lab_eligible_next_hops ADDRESS: of ADDRESS's family.
lab_eligible_next_hops() {
  local n ipf=lab_node_ip
  [[ ${1:-} == *:* ]] && ipf=lab_node_ip6
  for n in "${LAB_NODES[@]}"; do
    lab_node_initialized "$n" && "$ipf" "$n"
  done | sort
}

lab_route_matches() {
  [ "$(lab_router_next_hops "$1" | tr '\n' ' ')" = "$(lab_eligible_next_hops "$1" | tr '\n' ' ')" ]
}

lab_check_route() {
  local vip family paths sessions
  for vip in "$LAB_VIP" "$LAB_VIP6"; do
    family=-4; [[ $vip == *:* ]] && family=-6
    lab_phase "check: the router's route to $vip has one next hop per eligible node"
    lab_wait 60 "the router's ECMP route to $vip" lab_route_matches "$vip" \
      || lab_fail "router next hops [$(lab_router_next_hops "$vip" | tr '\n' ' ')] != eligible nodes [$(lab_eligible_next_hops "$vip" | tr '\n' ' ')] (hack/lab router show route all; hack/lab gobgp POD neighbor)"
    paths=$(lab_birdc show route for "$vip" | grep -c unicast || true)
    sessions=$(lab_birdc show route for "$vip" | grep -o '\[lab_n[0-9_v6]*' | sort -u | tr -d '[' | tr '\n' ' ')
    printf '  BIRD: %s paths for %s over the sessions %s(ADD-PATH: one path per node from each controller replica)\n' \
      "$paths" "$vip" "$sessions" >&2
    lab_ns "$LAB_ROUTER_NS" ip "$family" route show "$vip" | sed 's/^/  kernel: /' >&2
  done
}

# lab_curl ADDRESS [TIMEOUT]: one HTTP request from the client namespace; prints the answer.
lab_curl() { lab_curl_from "$LAB_CLIENT_NS" "$@"; }

# lab_curl_from NETNS ADDRESS [TIMEOUT]: one HTTP request from NETNS; prints the answer.
lab_curl_from() {
  local ns=$1 host=$2
  [[ $host == *:* ]] && host="[$host]"
  lab_ns "$ns" curl -sS --max-time "${3:-2}" "http://$host/" 2>&1
}

lab_check_curls() {
  local vip
  for vip in "$LAB_VIP" "$LAB_VIP6"; do
    lab_check_curls_to "$vip"
  done
}

# lab_check_curls_to ADDRESS: ten curls, all answered, by more than one pod.
lab_check_curls_to() {
  local vip=$1 i out ok=0
  lab_phase "check: ten curls to $vip from the client namespace, answered by the pods"
  declare -A by_pod=()
  for i in $(seq 10); do
    if out=$(lab_curl "$vip"); then
      ok=$((ok + 1)); by_pod[${out%% *}]=$(( ${by_pod[${out%% *}]:-0} + 1 ))
      printf '  curl %2d: %s\n' "$i" "$out" >&2
    else
      printf '  curl %2d: FAILED %s\n' "$i" "$out" >&2
    fi
  done
  local p spread=""
  for p in "${!by_pod[@]}"; do spread+="$p=${by_pod[$p]} "; done
  printf '  answered %d/10, by pod: %s\n' "$ok" "$spread" >&2
  [ "$ok" -eq 10 ] || lab_fail "only $ok of 10 curls to $vip answered"
  [ "${#by_pod[@]}" -ge 2 ] || lab_fail "all answers to $vip came from one pod: no spread"
}

# Layer 2. The router namespace is the client: it sits on the bridge, so its kernel resolves
# the Service's addresses by ARP and NDP and sends to the MAC that answered; its neighbour
# table shows the owner.

# lab_node_mac NODE: the MAC of NODE's interface on the bridge.
# (Not /sys/class/net: nsenter --net keeps the host's /sys, which shows the host's interfaces.)
lab_node_mac() {
  lab_ns "$(lab_netns "$1")" ip -o link show eth0 | awk '{ for (i = 1; i < NF; i++) if ($i == "link/ether") print $(i + 1) }'
}

# lab_mac_node MAC: the node whose interface on the bridge has MAC; "?" for none.
lab_mac_node() {
  local n
  for n in "${LAB_NODES[@]}"; do
    [ "$(lab_node_mac "$n")" = "$1" ] && { echo "$n"; return 0; }
  done
  echo "?"
}

# lab_l2_neigh_mac ADDRESS: the MAC the client's neighbour entry for ADDRESS holds (empty: none).
lab_l2_neigh_mac() {
  lab_ns "$LAB_L2_CLIENT_NS" ip neigh show to "$1" | awk '{ for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1) }'
}

# lab_l2_owner ADDRESS: the node the client resolved ADDRESS to (empty: not resolved).
lab_l2_owner() {
  local mac
  mac=$(lab_l2_neigh_mac "$1")
  [ -n "$mac" ] && lab_mac_node "$mac"
}

lab_l2_service_is_pinned() {
  [ "$(lab_service_ips "$LAB_L2_SVC" | tr '\n' ' ')" = "$LAB_L2_IP $LAB_L2_IP6 " ]
}

# lab_check_l2: the layer-2 Service has its pinned addresses from the L2 pool, the router has
# no route for them (they are on its connected subnet: ARP/NDP, not BGP), and ten curls to
# each from the client are answered by the pod on the node that owns the address.
lab_check_l2() {
  lab_phase "check: layer 2: the Service $LAB_L2_SVC has $LAB_L2_IP and $LAB_L2_IP6 from the pool $LAB_L2_POOL"
  lab_kubectl -n "$LAB_DEMO_NS" get svc "$LAB_L2_SVC" >&2
  lab_l2_service_is_pinned \
    || lab_fail "$LAB_L2_SVC has [$(lab_service_ips "$LAB_L2_SVC" | tr '\n' ' ')], not $LAB_L2_IP $LAB_L2_IP6 (kubectl -n demo describe svc $LAB_L2_SVC)"
  local vip
  for vip in "$LAB_L2_IP" "$LAB_L2_IP6"; do
    [ -z "$(lab_router_next_hops "$vip")" ] \
      || lab_fail "the router has a BGP route to the layer-2 address $vip: $(lab_router_next_hops "$vip" | tr '\n' ' ')"
    lab_check_l2_curls_to "$vip"
  done
}

# lab_check_l2_curls_to ADDRESS: ten curls from the layer-2 client, all answered by the pod on
# the owner (externalTrafficPolicy Local), the owner named by the client's neighbour entry.
lab_check_l2_curls_to() {
  local vip=$1 i out ok=0 owner mac
  lab_phase "check: layer 2: ten curls to $vip from the router namespace (its kernel resolves the address on the bridge)"
  lab_wait 60 "the first answered curl to $vip" lab_curl_from "$LAB_L2_CLIENT_NS" "$vip" 1 \
    || lab_fail "no curl to $vip was answered within 60s (hack/lab logs speaker; hack/lab router show route)"
  mac=$(lab_l2_neigh_mac "$vip")
  owner=$(lab_mac_node "${mac:-none}")
  for i in $(seq 10); do
    if out=$(lab_curl_from "$LAB_L2_CLIENT_NS" "$vip"); then
      printf '  curl %2d: %s\n' "$i" "$out" >&2
      [ "${out##* on }" = "$owner" ] && ok=$((ok + 1))
    else
      printf '  curl %2d: FAILED %s\n' "$i" "$out" >&2
    fi
  done
  printf '  owner of %s: %s (MAC %s in the client'"'"'s neighbour table: %s)\n' "$vip" "$owner" "${mac:-none}" \
    "$(lab_ns "$LAB_L2_CLIENT_NS" ip neigh show to "$vip")" >&2
  [ "$ok" -eq 10 ] || lab_fail "only $ok of 10 curls to $vip were answered by the pod on its owner $owner"
}
