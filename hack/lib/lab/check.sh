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
    && [ "$ready" = True ] && [ "$addr" = "$(lab_node_ip "$n")" ]
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

# lab_in_pool ADDRESS: ADDRESS is inside the lab pool's IPv4 range.
lab_in_pool() {
  python3 -c 'import ipaddress,sys; sys.exit(0 if ipaddress.ip_address(sys.argv[1]) in ipaddress.ip_network(sys.argv[2]) else 1)' "$1" "$LAB_POOL_V4" 2>/dev/null
}

lab_check_service() {
  lab_phase "check: the Service's EXTERNAL-IP comes from the pool"
  local ip
  ip=$(lab_service_ip)
  lab_kubectl -n "$LAB_DEMO_NS" get svc "$LAB_DEMO_SVC" >&2
  lab_in_pool "$ip" || lab_fail "EXTERNAL-IP '$ip' is not in $LAB_POOL_V4 (kubectl -n demo describe svc hello)"
  LAB_VIP=$ip
}

# lab_eligible_next_hops: the node addresses that should carry the Service (all Ready nodes).
lab_eligible_next_hops() {
  local n
  for n in "${LAB_NODES[@]}"; do
    lab_node_initialized "$n" && lab_node_ip "$n"
  done | sort
}

lab_route_matches() {
  [ "$(lab_router_next_hops "$1" | tr '\n' ' ')" = "$(lab_eligible_next_hops | tr '\n' ' ')" ]
}

lab_check_route() {
  lab_phase "check: the router's route to $LAB_VIP has one next hop per eligible node"
  lab_wait 60 "the router's ECMP route to $LAB_VIP" lab_route_matches "$LAB_VIP" \
    || lab_fail "router next hops [$(lab_router_next_hops "$LAB_VIP" | tr '\n' ' ')] != eligible nodes [$(lab_eligible_next_hops | tr '\n' ' ')] (hack/lab router show route all; hack/lab gobgp POD neighbor)"
  local paths sessions
  paths=$(lab_birdc show route "$LAB_VIP/32" | grep -c unicast || true)
  sessions=$(lab_birdc show route "$LAB_VIP/32" | grep -o '\[lab_n[0-9]' | sort -u | tr -d '[' | tr '\n' ' ')
  printf '  BIRD: %s paths for %s/32 over the sessions %s(ADD-PATH: one path per node from each controller replica)\n' \
    "$paths" "$LAB_VIP" "$sessions" >&2
  lab_ns "$LAB_ROUTER_NS" ip route show "$LAB_VIP" | sed 's/^/  kernel: /' >&2
}

# lab_curl ADDRESS: one HTTP request from the client namespace; prints the answering pod.
lab_curl() {
  lab_ns "$LAB_CLIENT_NS" curl -sS --max-time "${2:-2}" "http://$1/" 2>&1
}

lab_check_curls() {
  lab_phase "check: ten curls from the client namespace, answered by the pods"
  local i out ok=0
  declare -A by_pod=()
  for i in $(seq 10); do
    if out=$(lab_curl "$LAB_VIP"); then
      ok=$((ok + 1)); by_pod[${out%% *}]=$(( ${by_pod[${out%% *}]:-0} + 1 ))
      printf '  curl %2d: %s\n' "$i" "$out" >&2
    else
      printf '  curl %2d: FAILED %s\n' "$i" "$out" >&2
    fi
  done
  local p spread=""
  for p in "${!by_pod[@]}"; do spread+="$p=${by_pod[$p]} "; done
  printf '  answered %d/10, by pod: %s\n' "$ok" "$spread" >&2
  [ "$ok" -eq 10 ] || lab_fail "only $ok of 10 curls answered"
  [ "${#by_pod[@]}" -ge 2 ] || lab_fail "all answers came from one pod: no spread"
}
