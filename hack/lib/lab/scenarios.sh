# Scenarios: each one does something to the lab while the client curls the Service every
# 100 ms and the router's route is sampled every 100 ms, then prints what was measured and
# fails when an expectation does not hold. A scenario is one function lab_scenario_<name>
# built from lab_scenario_begin / lab_scenario_end / lab_expect (a layer-2 pool scenario is
# one more such function). Sourced by hack/lab.
# shellcheck shell=bash

LAB_SCENARIO_MAX_SECONDS=${LAB_SCENARIO_MAX_SECONDS:-180}

# lab_scenario_begin NAME: start the curl loop and the route sampler.
lab_scenario_begin() {
  LAB_SCN=$1
  LAB_SCN_FAIL=0
  LAB_VIP=$(lab_service_ip)
  [ -n "$LAB_VIP" ] || die "the demo Service has no address: is the lab up?"
  LAB_SCN_DIR=$LAB_LOGS/scenarios/$LAB_SCN-$(date +%H%M%S)   # under the logs: kept by down
  mkdir -p "$LAB_SCN_DIR"
  lab_start "probe-curl" "$LAB_CLIENT_NS" "$HACK_DIR/lib/lab/probe-loop" curl "$LAB_VIP" "$LAB_SCN_DIR/curl" "$LAB_SCENARIO_MAX_SECONDS"
  lab_start "probe-route" "$LAB_ROUTER_NS" "$HACK_DIR/lib/lab/probe-loop" route "$LAB_VIP" "$LAB_SCN_DIR/route" "$LAB_SCENARIO_MAX_SECONDS"
  LAB_HOPS_BEFORE=$(lab_router_next_hops "$LAB_VIP" | wc -l)
  log "scenario $LAB_SCN: curling $LAB_VIP from the client every 100 ms; router next hops: $LAB_HOPS_BEFORE"
  sleep 2   # a baseline of answered curls before the action
  LAB_SCN_T0=$(now_ms)
}

# lab_scenario_end: stop the loops and summarise them (curls, failures, the longest gap
# between two answered curls that has a failure in it, the fewest next hops seen).
lab_scenario_end() {
  sleep 2
  touch "$LAB_SCN_DIR/curl.stop" "$LAB_SCN_DIR/route.stop"
  sleep 0.5
  lab_stop probe-curl; lab_stop probe-route
  read -r LAB_CURLS LAB_CURLS_FAILED LAB_GAP_MS < <(awk '
    $2 == "ok" { if (failed && last != "") { g = $1 - last; if (g > gap) gap = g } last = $1; failed = 0 }
    $2 == "fail" { failed = 1; nfail++ }
    END { print NR, nfail + 0, gap + 0 }' "$LAB_SCN_DIR/curl")
  # Failed curls within a second of a change of the router's next-hop set: ECMP hashing
  # (hash-threshold) moves some flows to another node when the set changes, and a connection
  # in flight then reaches a node without its conntrack entry and is reset. That is ECMP's,
  # not the product's (MetalLB documents the same); any other failure is the product's.
  LAB_CURLS_FAILED_AT_CHANGE=$(awk '
    FNR == NR { set = ""; for (i = 2; i <= NF; i++) set = set " " $i
                if (NR > 1 && set != prev) change[++n] = $1; prev = set; next }
    $2 == "fail" { for (i = 1; i <= n; i++) if ($1 > change[i] - 1500 && $1 < change[i] + 500) { c++; break } }
    END { print c + 0 }' "$LAB_SCN_DIR/route" "$LAB_SCN_DIR/curl")
  LAB_MIN_HOPS=$(awk '{ if (min == "" || NF - 1 < min) min = NF - 1 } END { print min + 0 }' "$LAB_SCN_DIR/route")
  LAB_PODS_SEEN=$(awk '$2 == "ok" {print $3}' "$LAB_SCN_DIR/curl" | sort -u | tr '\n' ' ')
  printf 'RESULT %s: curls=%s failed=%s (at a next-hop change: %s) gap_ms=%s min_next_hops=%s (before: %s) pods=[%s]%s\n' \
    "$LAB_SCN" "$LAB_CURLS" "$LAB_CURLS_FAILED" "$LAB_CURLS_FAILED_AT_CHANGE" "$LAB_GAP_MS" "$LAB_MIN_HOPS" "$LAB_HOPS_BEFORE" \
    "${LAB_PODS_SEEN% }" "${LAB_SCN_EXTRA:-}"
  LAB_SCN_EXTRA=""
}

# lab_failed_only_at_changes MAX: every failed curl was in flight at a next-hop change, at most MAX.
lab_failed_only_at_changes() {
  [ "$LAB_CURLS_FAILED" -eq "$LAB_CURLS_FAILED_AT_CHANGE" ] && [ "$LAB_CURLS_FAILED" -le "$1" ]
}

# lab_expect WHAT CONDITION…: print and record an expectation.
lab_expect() {
  local what=$1; shift
  if "$@"; then printf '  ok: %s\n' "$what"; else printf '  FAILED: %s\n' "$what"; LAB_SCN_FAIL=1; fi
}

lab_scenario_verdict() {
  [ "$LAB_SCN_FAIL" -eq 0 ] || die "scenario $LAB_SCN: an expectation failed (measurements in $LAB_SCN_DIR; after down in $LAB_STATE.last-logs/scenarios/)"
}

# lab_wait_ms TIMEOUT CMD…: like lab_wait, silent; prints the ms from LAB_SCN_T0 when CMD held
# (and notes the time in the scenario's events file).
lab_wait_ms() {
  local timeout=$1; shift
  lab_wait "$timeout" "$*" "$@" || return 1
  lab_event "held: $*"
  echo $(( $(now_ms) - LAB_SCN_T0 ))
}

# lab_event TEXT: a timestamped line in the scenario's events file, next to its samples.
lab_event() { echo "$(now_ms) $*" >>"$LAB_SCN_DIR/events"; }

lab_node_not_ready() {
  [ "$(lab_kubectl get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" != True ]
}
lab_hop_absent() { ! lab_router_next_hops "$LAB_VIP" | grep -qx "$1"; }
lab_hops_are() { [ "$(lab_router_next_hops "$LAB_VIP" | wc -l)" -eq "$1" ]; }
lab_controller_pods() {
  lab_kubectl -n kube-system get pods -l app.kubernetes.io/component=controller -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'
}
# lab_controller_replaced OLD: OLD is gone and a ready controller runs on every control-plane node.
lab_controller_replaced() {
  ! lab_kubectl -n kube-system get pod "$1" >/dev/null 2>&1 || return 1
  [ "$(lab_kubectl -n kube-system get pods -l app.kubernetes.io/component=controller \
      -o jsonpath='{range .items[*]}{.status.containerStatuses[*].ready}{"\n"}{end}' | grep -c '^true true$')" \
    -eq "${#LAB_CONTROL_PLANE_NODES[@]}" ]
}
lab_controllers_ready() {
  lab_kubectl -n kube-system rollout status ds/baremetal-ccm --timeout=2s >/dev/null 2>&1
}

# node-down: the kubelet of a node without a controller replica stops; the node goes NotReady
# (after the controller manager's grace period) and the controllers withdraw its next hop.
# Its pods and kube-proxy keep running, so no curl should fail. Then the kubelet comes back.
lab_scenario_node_down() {
  local victim=${LAB_NODES[-1]} ip t_nr t_wd t_back
  ip=$(lab_node_ip "$victim")
  lab_scenario_begin node-down
  lab_event "stopping kubelet-$victim"
  lab_stop "kubelet-$victim"
  t_nr=$(lab_wait_ms 90 lab_node_not_ready "$victim") || t_nr=never
  t_wd=$(lab_wait_ms 60 lab_hop_absent "$ip") || t_wd=never
  lab_event "starting kubelet-$victim"
  lab_kubelet_start "$victim"
  lab_wait 90 "$victim Ready again" lab_node_initialized "$victim" || true
  t_back=$(lab_wait_ms 60 lab_hops_are "${#LAB_NODES[@]}") || t_back=never
  LAB_SCN_EXTRA=" kubelet_stopped->NotReady_ms=$t_nr ->next_hop_withdrawn_ms=$t_wd ->restored_ms=$t_back"
  lab_scenario_end
  lab_expect "$victim went NotReady" [ "$t_nr" != never ]
  lab_expect "its next hop $ip was withdrawn from the router" [ "$t_wd" != never ]
  lab_expect "its next hop came back with the kubelet" [ "$t_back" != never ]
  # The node's pods and kube-proxy keep running: only connections in flight while the router's
  # next-hop set changes (twice: withdrawal and return) may be reset.
  lab_expect "no curl failed except in flight at the two next-hop changes (ECMP rehash)" \
    lab_failed_only_at_changes 2
  lab_expect "no gap of a second or more" [ "$LAB_GAP_MS" -lt 1000 ]
  lab_scenario_verdict
}

# gobgpd-restart: the gobgpd sidecar of every controller replica is killed at once; the
# kubelet restarts it, the controller re-configures it, and the router keeps forwarding on the
# stale routes meanwhile (graceful restart on both sides).
lab_scenario_gobgpd_restart() {
  local pod cid node t_back
  lab_scenario_begin gobgpd-restart
  for pod in $(lab_controller_pods); do
    node=$(lab_kubectl -n kube-system get pod "$pod" -o jsonpath='{.spec.nodeName}')
    cid=$(lab_kubectl -n kube-system get pod "$pod" -o jsonpath='{.status.containerStatuses[?(@.name=="gobgpd")].containerID}')
    ctr -a "$LAB_STATE/$node/containerd.sock" -n k8s.io task kill -s KILL "${cid#containerd://}" \
      || die "could not kill gobgpd in $pod"
  done
  sleep 3
  t_back=$(lab_wait_ms 90 lab_gobgp_sessions_established) || t_back=never
  LAB_SCN_EXTRA=" sessions_reestablished_ms=$t_back"
  lab_scenario_end
  lab_expect "both sidecars' sessions re-established" [ "$t_back" != never ]
  lab_expect "no curl failed" [ "$LAB_CURLS_FAILED" -eq 0 ]
  lab_expect "the router never lost a next hop" [ "$LAB_MIN_HOPS" -ge "$LAB_HOPS_BEFORE" ]
  lab_scenario_verdict
}

# Every controller node's BGP session is Established at the router.
lab_gobgp_sessions_established() {
  local pod node
  for pod in $(lab_controller_pods); do
    node=$(lab_kubectl -n kube-system get pod "$pod" -o jsonpath='{.spec.nodeName}')
    lab_birdc show protocols "${node//-/_}" | grep -q Established || return 1
  done
}

# controller-kill: one controller pod is deleted; the other replica keeps every route, the
# DaemonSet brings the deleted one back.
lab_scenario_controller_kill() {
  local pod t_back
  pod=$(lab_controller_pods | head -1)
  lab_scenario_begin controller-kill
  lab_kubectl -n kube-system delete pod "$pod" --wait=false >/dev/null
  sleep 2
  t_back=$(lab_wait_ms 120 lab_controller_replaced "$pod") || t_back=never
  local t_bgp
  t_bgp=$(lab_wait_ms 60 lab_gobgp_sessions_established) || t_bgp=never
  LAB_SCN_EXTRA=" deleted=$pod replacement_ready_ms=$t_back its_session_established_ms=$t_bgp"
  lab_scenario_end
  lab_expect "a replacement controller became ready" [ "$t_back" != never ]
  lab_expect "no curl failed" [ "$LAB_CURLS_FAILED" -eq 0 ]
  lab_expect "the other replica kept every route (never fewer next hops)" [ "$LAB_MIN_HOPS" -ge "$LAB_HOPS_BEFORE" ]
  lab_scenario_verdict
}

# upgrade: a new image of the controller is rolled out over the DaemonSet (one replica at a
# time); no address is renumbered and no route withdrawn.
lab_scenario_upgrade() {
  local before after tag n t_done
  before=$(lab_service_ip)
  tag=${LAB_CCM_IMAGE}-upgrade-$(date +%s)
  # A new image reference for the same content: what a user's upgrade looks like to the
  # cluster (a changed pod template, pods replaced one node at a time).
  for n in "${LAB_NODES[@]}"; do
    ctr -a "$LAB_STATE/$n/containerd.sock" -n k8s.io image tag --force "$LAB_CCM_IMAGE" "$tag" >/dev/null \
      || die "could not tag $tag in $n's containerd"
  done
  lab_scenario_begin upgrade
  lab_kubectl -n kube-system set image ds/baremetal-ccm "controller=$tag" >/dev/null
  lab_kubectl -n kube-system rollout status ds/baremetal-ccm --timeout=180s >/dev/null \
    && t_done=$(( $(now_ms) - LAB_SCN_T0 )) || t_done=never
  lab_wait 60 "sessions" lab_gobgp_sessions_established || true
  after=$(lab_service_ip)
  LAB_SCN_EXTRA=" image=$tag rollout_ms=$t_done address=$before->$after"
  lab_scenario_end
  lab_expect "the rollout finished" [ "$t_done" != never ]
  lab_expect "the Service kept its address" [ "$before" = "$after" ]
  lab_expect "no curl failed" [ "$LAB_CURLS_FAILED" -eq 0 ]
  lab_expect "no route was withdrawn (never fewer next hops)" [ "$LAB_MIN_HOPS" -ge "$LAB_HOPS_BEFORE" ]
  lab_scenario_verdict
}
