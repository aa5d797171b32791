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
lab_curl() {
  local host=$1
  [[ $host == *:* ]] && host="[$host]"
  lab_ns "$LAB_CLIENT_NS" curl -sS --max-time "${2:-2}" "http://$host/" 2>&1
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
