# Scenarios: each one does something to the lab while the client curls the Service every
# 100 ms and the router's route is sampled every 100 ms, then prints what was measured and
# fails when an expectation does not hold. A scenario is one function lab_scenario_<name>
# built from lab_scenario_begin / lab_scenario_end / lab_expect; the layer-2 one
# (l2-owner-crash) starts its own probes in the layer-2 client and the resolver, and so does
# migrate-from-metallb (at the end), which runs MetalLB itself before the takeover.
# Sourced by hack/lab.
# shellcheck shell=bash

LAB_SCENARIO_MAX_SECONDS=${LAB_SCENARIO_MAX_SECONDS:-180}

# lab_scenario_dir NAME: the scenario's name, its verdict, the directory of its samples.
lab_scenario_dir() {
  LAB_SCN=$1
  LAB_SCN_FAIL=0
  LAB_SCN_DIR=$LAB_LOGS/scenarios/$LAB_SCN-$(date +%H%M%S)   # under the logs: kept by down
  mkdir -p "$LAB_SCN_DIR"
}

# lab_scenario_begin NAME: start the curl loop and the route sampler.
lab_scenario_begin() {
  lab_scenario_dir "$1"
  LAB_VIP=$(lab_service_ip)
  [ -n "$LAB_VIP" ] || die "the demo Service has no address: is the lab up?"
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
  lab_probes_stop probe-curl probe-route
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

# lab_probes_stop NAME…: end the named probe loops (their .stop file, then the process).
lab_probes_stop() {
  local p
  for p in "$@"; do touch "$LAB_SCN_DIR/${p#probe-}.stop"; done
  sleep 0.5
  for p in "$@"; do lab_stop "$p"; done
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
  pod=$(lab_controller_pods | awk 'NR == 1')
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

# l2-owner-crash: the node that owns the layer-2 Service's addresses loses its link to the
# bridge — what a power loss looks like on the segment: nothing answers from its MAC any
# more, and it tells nobody — while the layer-2 client (the router's namespace, on the bridge)
# curls both addresses every 100 ms and reads its neighbour entries every 50 ms. The
# successor must take both addresses (the client's entries move to its MAC, by the gratuitous
# ARP and unsolicited NA it sends). Then the link comes back: the node settles for its 10 s
# hold-down before it may own anything again; by rank it is first, so it then takes the
# addresses back.
LAB_L2_HOLD_DOWN_MS=10000
# The bound on the client's gap (first failed curl → first answered one after): the failover
# (about 0.5 s) plus the curl in flight at the crash, which waits out its 1 s timeout.
LAB_L2_GAP_BOUND_MS=${LAB_L2_GAP_BOUND_MS:-2500}
LAB_L2_MOVE_BOUND_MS=2000
# The resolver asks every ~0.1–0.4 s and waits 300 ms: one request lost in a move is noise.
LAB_L2_UNANSWERED_BOUND_MS=1000

lab_scenario_l2_owner_crash() {
  lab_scenario_dir l2-owner-crash
  lab_wait 60 "every speaker settled" lab_l2_speakers_settled || die "the speakers never settled (hack/lab logs speaker)"
  lab_l2_probes_start
  sleep 2   # a baseline of answered curls, and the entries resolved
  LAB_L2_VICTIM=$(lab_l2_owner "$LAB_L2_IP")
  LAB_L2_VICTIM_MAC=$(lab_l2_neigh_mac "$LAB_L2_IP")
  [ -n "$LAB_L2_VICTIM" ] && [ "$LAB_L2_VICTIM" != "?" ] \
    || { lab_l2_probes_stop; die "the client has not resolved $LAB_L2_IP to a node ($(lab_ns "$LAB_L2_CLIENT_NS" ip neigh show to "$LAB_L2_IP"))"; }
  local owner6 port
  owner6=$(lab_l2_owner "$LAB_L2_IP6")
  port=$LAB-n$(lab_node_index "$LAB_L2_VICTIM")
  log "scenario $LAB_SCN: $LAB_L2_IP and $LAB_L2_IP6 owned by $LAB_L2_VICTIM and $owner6 ($LAB_L2_VICTIM_MAC); cutting $LAB_L2_VICTIM's link to the bridge ($port)"
  LAB_SCN_T0=$(now_ms)
  lab_event "link $port down"
  ip link set "$port" down
  lab_wait 10 "the client's entries to move off $LAB_L2_VICTIM_MAC" lab_l2_both_moved || true
  lab_wait 10 "curls answered again" lab_l2_both_answered_since "$LAB_SCN_T0" || true
  sleep 1   # answered curls from the new owner before the link returns
  LAB_L2_T_UP=$(now_ms)
  lab_event "link $port up"
  ip link set "$port" up
  lab_l2_wait_whole
  # By rank the node is first again: once settled it may take the addresses back.
  lab_wait 5 "the addresses back on $LAB_L2_VICTIM" lab_l2_both_on "$LAB_L2_VICTIM_MAC" || true
  sleep 2
  lab_l2_probes_stop
  lab_logs speaker >"$LAB_SCN_DIR/speaker.log" 2>&1 || true   # who owned what when, for the record
  lab_l2_report "$owner6"
  lab_scenario_verdict
}

lab_l2_probes() { echo probe-l2-curl4 probe-l2-curl6 probe-l2-neigh4 probe-l2-neigh6 probe-l2-ask4 probe-l2-ask6; }

lab_l2_probes_start() {
  local loop="$HACK_DIR/lib/lab/probe-loop" max=$LAB_SCENARIO_MAX_SECONDS
  lab_start probe-l2-curl4 "$LAB_L2_CLIENT_NS" "$loop" curl "$LAB_L2_IP" "$LAB_SCN_DIR/l2-curl4" "$max"
  lab_start probe-l2-curl6 "$LAB_L2_CLIENT_NS" "$loop" curl "[$LAB_L2_IP6]" "$LAB_SCN_DIR/l2-curl6" "$max"
  lab_start probe-l2-neigh4 "$LAB_L2_CLIENT_NS" "$loop" neigh "$LAB_L2_IP" "$LAB_SCN_DIR/l2-neigh4" "$max" 0.05
  lab_start probe-l2-neigh6 "$LAB_L2_CLIENT_NS" "$loop" neigh "$LAB_L2_IP6" "$LAB_SCN_DIR/l2-neigh6" "$max" 0.05
  lab_start probe-l2-ask4 "$LAB_L2_RESOLVER_NS" "$loop" ask "$LAB_L2_IP" "$LAB_SCN_DIR/l2-ask4" "$max"
  lab_start probe-l2-ask6 "$LAB_L2_RESOLVER_NS" "$loop" ask "$LAB_L2_IP6" "$LAB_SCN_DIR/l2-ask6" "$max"
}

lab_l2_probes_stop() {
  # shellcheck disable=SC2046
  lab_probes_stop $(lab_l2_probes)
}

# The client's entries for both addresses hold a MAC, and not the crashed owner's.
lab_l2_both_moved() {
  local a m
  for a in "$LAB_L2_IP" "$LAB_L2_IP6"; do
    m=$(lab_l2_neigh_mac "$a")
    [ -n "$m" ] && [ "$m" != "$LAB_L2_VICTIM_MAC" ] || return 1
  done
}
# lab_l2_both_on MAC: the client's entries for both addresses hold MAC.
lab_l2_both_on() {
  [ "$(lab_l2_neigh_mac "$LAB_L2_IP")" = "$1" ] && [ "$(lab_l2_neigh_mac "$LAB_L2_IP6")" = "$1" ]
}
# lab_l2_both_answered_since MS: the last curl of each family started after MS and was answered.
lab_l2_both_answered_since() {
  local f
  for f in l2-curl4 l2-curl6; do
    tail -1 "$LAB_SCN_DIR/$f" | awk -v t="$1" '$1 > t && $2 == "ok" { ok = 1 } END { exit !ok }' || return 1
  done
}

# lab_speaker_pod NODE: the speaker pod on NODE.
lab_speaker_pod() {
  lab_kubectl -n kube-system get pods -l app.kubernetes.io/component=speaker --field-selector "spec.nodeName=$1" \
    -o jsonpath='{.items[0].metadata.name}'
}

# lab_l2_settled_ms POD SINCE_MS: when POD's speaker first logged "settled" at or after
# SINCE_MS (epoch ms, from the log's own timestamps); fails while it has not.
lab_l2_settled_ms() {
  local ts ms
  while read -r ts _; do
    ms=$(( $(date -d "$ts" +%s%N) / 1000000 ))
    [ "$ms" -ge "$2" ] && { echo "$ms"; return 0; }
  done < <(lab_kubectl -n kube-system logs "$1" -c speaker --timestamps \
    --since-time="$(date -u -d "@$(( $2 / 1000 ))" +%FT%TZ)" 2>/dev/null | grep 'settled: owns')
  return 1
}

# lab_l2_speakers_settled: every speaker's last word on its hold-down is "settled" (a speaker
# settles 10 s after it starts; before that the ranking is not yet the settled one).
lab_l2_speakers_settled() {
  local pod
  for pod in $(lab_kubectl -n kube-system get pods -l app.kubernetes.io/component=speaker -o jsonpath='{.items[*].metadata.name}'); do
    lab_kubectl -n kube-system logs "$pod" -c speaker | grep -E 'settling: owns|settled: owns' | tail -1 \
      | grep -q 'settled: owns' || return 1
  done
}

# lab_l2_wait_whole: the crashed node Ready again, its speaker settled, every BGP session up.
lab_l2_wait_whole() {
  local pod
  LAB_L2_READY_MS=$(lab_wait_ms 90 lab_node_initialized "$LAB_L2_VICTIM") || LAB_L2_READY_MS=never
  pod=$(lab_speaker_pod "$LAB_L2_VICTIM")
  lab_wait 60 "$pod to log 'settled'" lab_l2_settled_ms "$pod" "$LAB_L2_T_UP" || true
  LAB_L2_SETTLED=$(lab_l2_settled_ms "$pod" "$LAB_L2_T_UP") && lab_event "$pod settled at $LAB_L2_SETTLED" \
    || LAB_L2_SETTLED=never
  lab_wait 60 "the BGP sessions" lab_gobgp_sessions_established && LAB_L2_BGP=ok || LAB_L2_BGP=down
}

# lab_l2_neigh_figures FILE: from the neighbour samples, "MOVED_MS NEW_MAC BACK_MS": when the
# entry first held another MAC after the crash (ms after it), that MAC, and when it first held
# the crashed node's MAC again (ms after the link came back up); "never" for what did not happen.
lab_l2_neigh_figures() {
  awk -v t0="$LAB_SCN_T0" -v up="$LAB_L2_T_UP" -v old="$LAB_L2_VICTIM_MAC" '
    moved == "" && $1 >= t0 && $2 != "-" && $2 != old { moved = $1 - t0; mac = $2; next }
    moved != "" && back == "" && $2 == old { back = $1 - up }
    END { print (moved == "" ? "never" : moved), (mac == "" ? "none" : mac), (back == "" ? "never" : back) }' "$1"
}

# lab_l2_curl_figures FILE: "CURLS FAILED GAP_MS FAILED_AFTER_UP": the gap runs from the first
# failed curl at the crash (one started up to a timeout before it was in flight) to the first
# answered one after it.
lab_l2_curl_figures() {
  awk -v t0="$LAB_SCN_T0" -v up="$LAB_L2_T_UP" '
    $2 == "fail" { nfail++; if ($1 >= up) after++ }
    $2 == "fail" && first == "" && $1 >= t0 - 1100 { first = $1 }
    $2 == "ok" && first != "" && gap == "" { gap = $1 - first }
    END { print NR, nfail + 0, (first == "" ? 0 : (gap == "" ? "never" : gap)), after + 0 }' "$1"
}

# lab_l2_ask_figures FILE: from the resolver's samples, "FIRST_MS UNANSWERED_MS": when another
# MAC than the crashed node's first answered (ms after the crash), and the longest stretch
# after the link came back up in which nobody answered (first unanswered request to the next
# answered one).
lab_l2_ask_figures() {
  awk -v t0="$LAB_SCN_T0" -v up="$LAB_L2_T_UP" -v old="$LAB_L2_VICTIM_MAC" '
    first == "" && $1 >= t0 && $2 != "none" && $2 != old { first = $1 - t0 }
    $1 >= up && $2 == "none" && start == "" { start = $1 }
    $1 >= up && $2 != "none" && start != "" { if ($1 - start > gap) gap = $1 - start; start = "" }
    { last = $1 }
    END { if (start != "" && last - start > gap) gap = last - start
          print (first == "" ? "never" : first), gap + 0 }' "$1"
}

# lab_l2_report OWNER6: the RESULT line and the expectations.
lab_l2_report() {
  local owner6=$1 f moved mac back curls failed gap after new asked unanswered res=""
  local -A fig=()
  for f in 4 6; do
    read -r moved mac back < <(lab_l2_neigh_figures "$LAB_SCN_DIR/l2-neigh$f")
    read -r curls failed gap after < <(lab_l2_curl_figures "$LAB_SCN_DIR/l2-curl$f")
    read -r asked unanswered < <(lab_l2_ask_figures "$LAB_SCN_DIR/l2-ask$f")
    new=$(lab_mac_node "$mac")
    fig[moved$f]=$moved fig[new$f]=$new fig[back$f]=$back fig[gap$f]=$gap fig[after$f]=$after
    fig[unanswered$f]=$unanswered
    res+=" IPv$f: neighbour_moved_ms=$moved new_owner=$new($mac) first_answer_from_it_ms=$asked curls=$curls"
    res+=" failed=$failed gap_ms=$gap failed_after_link_up=$after back_on_old_owner_ms_after_link_up=$back"
    res+=" unanswered_after_link_up_ms=$unanswered;"
  done
  local settled_after=never
  [ "$LAB_L2_SETTLED" != never ] && settled_after=$(( LAB_L2_SETTLED - LAB_L2_T_UP ))
  printf 'RESULT %s: crashed=%s(%s) link_down_ms=%s%s link_up->Ready_ms=%s ->speaker_settled_ms=%s bgp_sessions=%s\n' \
    "$LAB_SCN" "$LAB_L2_VICTIM" "$LAB_L2_VICTIM_MAC" "$(( LAB_L2_T_UP - LAB_SCN_T0 ))" "$res" \
    "$( [ "$LAB_L2_READY_MS" = never ] && echo never || echo $(( LAB_SCN_T0 + LAB_L2_READY_MS - LAB_L2_T_UP )))" \
    "$settled_after" "$LAB_L2_BGP"
  lab_expect "one node owned both addresses before the crash (pinned so)" [ "$owner6" = "$LAB_L2_VICTIM" ]
  for f in 4 6; do
    lab_expect "IPv$f: the client's entry moved to another node within ${LAB_L2_MOVE_BOUND_MS} ms" \
      lab_l2_within "${fig[moved$f]}" "$LAB_L2_MOVE_BOUND_MS"
    lab_expect "IPv$f: the new owner is a lab node other than $LAB_L2_VICTIM" \
      lab_l2_other_node "${fig[new$f]}"
    lab_expect "IPv$f: the client's gap was under ${LAB_L2_GAP_BOUND_MS} ms" \
      lab_l2_within "${fig[gap$f]}" "$LAB_L2_GAP_BOUND_MS"
    lab_expect "IPv$f: the address did not go back to $LAB_L2_VICTIM before its hold-down (${LAB_L2_HOLD_DOWN_MS} ms after the link came up)" \
      lab_l2_not_before "${fig[back$f]}" "$LAB_L2_HOLD_DOWN_MS"
    lab_expect "IPv$f: at most one curl failed after the link came back (in flight while the address moved back)" \
      [ "${fig[after$f]}" -le 1 ]
    lab_expect "IPv$f: after the link came back a fresh $( [ $f = 4 ] && echo ARP request || echo Neighbor Solicitation) was always answered (no stretch of ${LAB_L2_UNANSWERED_BOUND_MS} ms without)" \
      [ "${fig[unanswered$f]}" -lt "$LAB_L2_UNANSWERED_BOUND_MS" ]
  done
  lab_expect "$LAB_L2_VICTIM Ready again" [ "$LAB_L2_READY_MS" != never ]
  lab_expect "its speaker settled after the link came back, not before the hold-down" \
    lab_l2_settled_after_hold_down "$settled_after"
  lab_expect "every BGP session Established again" [ "$LAB_L2_BGP" = ok ]
}

lab_l2_within() { [ "$1" != never ] && [ "$1" -lt "$2" ]; }
lab_l2_not_before() { [ "$1" = never ] || [ "$1" -ge "$2" ]; }
lab_l2_settled_after_hold_down() { [ "$1" != never ] && [ "$1" -ge "$LAB_L2_HOLD_DOWN_MS" ]; }
lab_l2_other_node() { [ "$1" != "?" ] && [ "$1" != "$LAB_L2_VICTIM" ]; }

# migrate-from-metallb: MetalLB addresses a Service and announces it in layer 2, then
# baremetal-ccm takes it over (docs/migrate-from-metallb.md) while the layer-2 client curls it
# every 100 ms: the address must not change and no curl may fail. Our controller stops serving
# Services first (--controllers=*,-service-lb), so that MetalLB's controller is the only one
# writing the Service; our speakers and announcer keep the demo Services announced throughout.
# MetalLB runs as the lab's other host processes do: its controller in the host namespace, one
# speaker per node inside the node's namespace (memberlist off: then it counts every node as
# having a speaker, which holds here).
LAB_MLB_SVC=hello-mlb
LAB_MLB_POOL=lab-mlb
LAB_MLB_NS=metallb-system
# MetalLB serves only this class (--lb-class): see hack/lib/lab/metallb.yaml for why.
LAB_MLB_CLASS=baremetal-ccm.io/lb
LAB_MLB_PORT=17472   # MetalLB's metrics listeners (host and node namespaces)
LAB_MLB_OFF='--controllers=*,-service-lb'

lab_scenario_migrate_from_metallb() {
  ensure_metallb   # MetalLB's controller, speaker and CRDs: built on the first run only
  lab_scenario_dir migrate-from-metallb
  LAB_SCN_T_BEGIN=$(now_ms)
  LAB_MLB_SHIPPED_ARGS=$(lab_ccm_args)
  [ -n "$LAB_MLB_SHIPPED_ARGS" ] || die "could not read the controller's args from ds/baremetal-ccm"
  echo "$LAB_MLB_SHIPPED_ARGS" >"$LAB_SCN_DIR/shipped-args.json"
  trap lab_mlb_cleanup EXIT   # whatever happens, the lab is left as the other scenarios expect it
  lab_mlb_demo_probes_start

  log "scenario $LAB_SCN: our controller stops serving Services ($LAB_MLB_OFF)"
  lab_ccm_set_args "$(jq -c --arg off "$LAB_MLB_OFF" '[.[] | select(startswith("--controllers") | not)] + [$off]' \
    <<<"$LAB_MLB_SHIPPED_ARGS")" || die "the controller's rollout without service-lb did not finish"

  log "scenario $LAB_SCN: MetalLB $METALLB_VERSION addresses $LAB_DEMO_NS/$LAB_MLB_SVC"
  lab_mlb_up
  LAB_MLB_IP=$(lab_service_ip_of "$LAB_MLB_SVC")
  if ! lab_wait 60 "curls to $LAB_MLB_IP from the layer-2 client" lab_curl_from "$LAB_L2_CLIENT_NS" "$LAB_MLB_IP" 1; then
    # MetalLB's side, not ours: restart its speakers once (said in the log and the result).
    log "scenario $LAB_SCN: MetalLB's speakers announced nothing in 60 s; restarting them once"
    LAB_MLB_SPEAKER_RESTARTS=1
    local n
    for n in "${LAB_NODES[@]}"; do lab_stop "metallb-speaker-$n"; done
    lab_mlb_speakers_start
    lab_wait 60 "curls to $LAB_MLB_IP from the layer-2 client" lab_curl_from "$LAB_L2_CLIENT_NS" "$LAB_MLB_IP" 1 \
      || die "MetalLB's address $LAB_MLB_IP is not answered (logs: $LAB_LOGS/metallb-*.log)"
  fi
  lab_start probe-mlb-curl "$LAB_L2_CLIENT_NS" "$HACK_DIR/lib/lab/probe-loop" curl "$LAB_MLB_IP" "$LAB_SCN_DIR/mlb-curl" 600
  lab_start probe-mlb-neigh "$LAB_L2_CLIENT_NS" "$HACK_DIR/lib/lab/probe-loop" neigh "$LAB_MLB_IP" "$LAB_SCN_DIR/mlb-neigh" 600 0.05
  sleep 2   # a baseline of answered curls, the entry resolved to MetalLB's node
  local mac_before node_before
  mac_before=$(lab_l2_neigh_mac "$LAB_MLB_IP")
  node_before=$(lab_mac_node "${mac_before:-none}")
  log "scenario $LAB_SCN: MetalLB gave $LAB_MLB_IP, announced by $node_before ($mac_before); the switch, while the layer-2 client curls it"

  lab_mlb_watch_conditions
  LAB_SCN_T0=$(now_ms)
  lab_mlb_dry_run
  lab_mlb_convert
  lab_event "stopping MetalLB's speakers, then its controller"
  local n
  for n in "${LAB_NODES[@]}"; do lab_stop "metallb-speaker-$n"; done
  lab_stop metallb-controller
  LAB_MLB_T_STOPPED=$(( $(now_ms) - LAB_SCN_T0 ))
  lab_event "our controller serves Services again"
  local t_rollout t_alloc t_announced t_neigh
  lab_ccm_set_args "$LAB_MLB_SHIPPED_ARGS" && t_rollout=$(( $(now_ms) - LAB_SCN_T0 )) || t_rollout=never
  t_alloc=$(lab_wait_ms 60 lab_mlb_condition baremetal-ccm.io/AddressAllocated) || t_alloc=never
  t_announced=$(lab_wait_ms 60 lab_mlb_condition baremetal-ccm.io/L2Announced) || t_announced=never
  t_neigh=$(lab_wait_ms 30 lab_mlb_neigh_on_announcer) || t_neigh=never
  sleep 2   # answered curls after the takeover
  lab_probes_stop probe-mlb-curl probe-mlb-neigh probe-curl probe-l2-curl4
  lab_stop mlb-watch
  # When the conditions turned True as the API server told the watch (the waits above poll).
  t_alloc=$(lab_mlb_watched_ms baremetal-ccm.io/AddressAllocated=True "$t_alloc")
  t_announced=$(lab_mlb_watched_ms baremetal-ccm.io/L2Announced=True "$t_announced")
  local ip_after mac_after announced
  ip_after=$(lab_service_ip_of "$LAB_MLB_SVC")
  mac_after=$(lab_l2_neigh_mac "$LAB_MLB_IP")
  announced=$(lab_mlb_condition_message baremetal-ccm.io/L2Announced)
  lab_mlb_report "$node_before" "$mac_before" "$ip_after" "$mac_after" "$t_rollout" "$t_alloc" "$t_announced" "$t_neigh" "$announced"
  trap - EXIT
  lab_mlb_cleanup
  lab_expect "the controller's args are back as shipped" [ "$(lab_ccm_args)" = "$LAB_MLB_SHIPPED_ARGS" ]
  lab_expect "nothing of MetalLB's or the scenario's is left" lab_mlb_gone
  log "scenario $LAB_SCN: took $(( ($(now_ms) - LAB_SCN_T_BEGIN) / 1000 )) s"
  lab_scenario_verdict
}

# lab_ccm_args: the controller container's args in ds/baremetal-ccm, as compact JSON.
lab_ccm_args() {
  lab_kubectl -n kube-system get ds baremetal-ccm -o json | jq -c '.spec.template.spec.containers[] | select(.name == "controller") | .args'
}

# lab_ccm_set_args JSON: replace the controller container's args, wait for the rollout and for
# every controller's BGP session (readiness waits for them too, this is the router's view).
lab_ccm_set_args() {
  local i
  i=$(lab_kubectl -n kube-system get ds baremetal-ccm -o json | jq '.spec.template.spec.containers | map(.name) | index("controller")')
  lab_kubectl -n kube-system patch ds baremetal-ccm --type=json \
    -p "[{\"op\":\"replace\",\"path\":\"/spec/template/spec/containers/$i/args\",\"value\":$1}]" >/dev/null || return 1
  lab_kubectl -n kube-system rollout status ds/baremetal-ccm --timeout=180s >/dev/null || return 1
  lab_wait 60 "the BGP sessions" lab_gobgp_sessions_established
}

# The demo Services answer throughout: the BGP one from the client, the layer-2 one (IPv4) from
# the layer-2 client.
lab_mlb_demo_probes_start() {
  local loop=$HACK_DIR/lib/lab/probe-loop
  lab_start probe-curl "$LAB_CLIENT_NS" "$loop" curl "$(lab_service_ip)" "$LAB_SCN_DIR/curl" 600
  lab_start probe-l2-curl4 "$LAB_L2_CLIENT_NS" "$loop" curl "$LAB_L2_IP" "$LAB_SCN_DIR/l2-curl4" 600
}

lab_service_ip_of() { lab_service_ips "$1" | awk '!/:/ && !n++'; }

# lab_mlb_up: MetalLB's CRDs and configuration, its controller on the host and a speaker in
# every node's namespace; returns once MetalLB has given the Service an address.
lab_mlb_up() {
  local crds=$TOOLS_BIN/metallb-$METALLB_VERSION/crds n
  lab_kubectl apply --server-side -f "$crds" >>"$LAB_LOGS/apply.log" 2>&1 \
    || die "applying MetalLB's CRDs failed: $(tail -5 "$LAB_LOGS/apply.log")"
  lab_wait 60 "MetalLB's CRDs to be established" lab_kubectl wait --for condition=established --timeout=5s \
    crd/ipaddresspools.metallb.io crd/l2advertisements.metallb.io crd/servicel2statuses.metallb.io \
    || die "MetalLB's CRDs were not established"
  lab_kubectl apply --server-side -f "$HACK_DIR/lib/lab/metallb.yaml" >>"$LAB_LOGS/apply.log" 2>&1 \
    || die "applying hack/lib/lab/metallb.yaml failed: $(tail -5 "$LAB_LOGS/apply.log")"
  lab_start metallb-controller "" "$METALLB_CONTROLLER_BIN" --kubeconfig="$LAB_KUBECONFIG" \
    --namespace="$LAB_MLB_NS" --webhook-mode=disabled --disable-cert-rotation --port="$LAB_MLB_PORT" \
    --lb-class="$LAB_MLB_CLASS"
  lab_wait 60 "MetalLB to address $LAB_DEMO_NS/$LAB_MLB_SVC" lab_mlb_addressed \
    || die "MetalLB gave $LAB_MLB_SVC no address (hack/lab kubectl -n demo describe svc $LAB_MLB_SVC; $LAB_LOGS/metallb-controller.log)"
  # The speakers start once the Service has its address: started together with the
  # controller, they once (1 run in 10) reconciled it in the same second as the controller's
  # write and then announced nothing, with nothing in their logs to say why.
  lab_mlb_speakers_start
}

lab_mlb_speakers_start() {
  local n
  for n in "${LAB_NODES[@]}"; do
    lab_start "metallb-speaker-$n" "$(lab_netns "$n")" "$METALLB_SPEAKER_BIN" --kubeconfig="$LAB_KUBECONFIG" \
      --namespace="$LAB_MLB_NS" --node-name="$n" --pod-name="metallb-speaker-$n" --port="$LAB_MLB_PORT" \
      --lb-class="$LAB_MLB_CLASS"
  done
}

# lab_mlb_watch_conditions: the Service's conditions, one line per change with the time it
# arrived ("ms type=status …"), from a watch (kubectl itself is the recorded process). A
# go-template: kubectl 1.36 prints a watch's first object only with -o jsonpath.
lab_mlb_watch_conditions() {
  # shellcheck disable=SC2016
  lab_start mlb-watch "" bash -c 'exec > >(while IFS= read -r l; do echo "$(date +%s%3N) $l"; done >"$1"); shift; exec "$@"' \
    _ "$LAB_SCN_DIR/mlb-conditions" "$KUBE_LAB_BIN/kubectl" --kubeconfig "$LAB_KUBECONFIG" -n "$LAB_DEMO_NS" \
    get svc "$LAB_MLB_SVC" --watch \
    -o go-template='{{range .status.conditions}}{{.type}}={{.status}} {{end}}{{"\n"}}'
}

# lab_mlb_watched_ms TYPE=STATUS FALLBACK: ms after LAB_SCN_T0 of the first watched line
# holding TYPE=STATUS; FALLBACK when the watch saw none.
lab_mlb_watched_ms() {
  awk -v t0="$LAB_SCN_T0" -v c="$1" -v fb="$2" '
    !done && $1 >= t0 { for (i = 2; i <= NF; i++) if ($i == c) { print $1 - t0; done = 1; next } }
    END { if (!done) print fb }' "$LAB_SCN_DIR/mlb-conditions" 2>/dev/null || echo "$2"
}

lab_mlb_addressed() { [ -n "$(lab_service_ip_of "$LAB_MLB_SVC")" ]; }

# lab_mlb_ccm_binary: the controller pod's own binary (the image that ships), copied out of a
# running controller container, for `migrate metallb` on the host.
lab_mlb_ccm_binary() {
  local bin=$LAB_STATE/migrate/baremetal-ccm pod node cid pid
  if [ ! -x "$bin" ]; then
    # awk, not head: head would close the pipe after the first name while kubectl still writes.
    pod=$(lab_controller_pods | awk 'NR == 1')
    node=$(lab_kubectl -n kube-system get pod "$pod" -o jsonpath='{.spec.nodeName}')
    cid=$(lab_kubectl -n kube-system get pod "$pod" -o jsonpath='{.status.containerStatuses[?(@.name=="controller")].containerID}')
    pid=$(ctr -a "$LAB_STATE/$node/containerd.sock" -n k8s.io task ls | awk -v c="${cid#containerd://}" '$1 == c { print $2 }')
    [ -n "$pid" ] || die "could not find the process of the controller container of $pod"
    mkdir -p "${bin%/*}"
    cp "/proc/$pid/exe" "$bin" || die "could not copy the controller's binary out of $pod"
  fi
  echo "$bin"
}

# lab_mlb_dry_run: `migrate metallb --from-cluster --dry-run`: its exit status, the Service's
# fate and the counts, for the report.
lab_mlb_dry_run() {
  local bin out=$LAB_SCN_DIR/dry-run
  bin=$(lab_mlb_ccm_binary)
  LAB_MLB_DRY_RC=0
  "$bin" migrate metallb --from-cluster --kubeconfig "$LAB_KUBECONFIG" --dry-run >"$out.txt" 2>"$out.report" \
    || LAB_MLB_DRY_RC=$?
  lab_event "dry run: exit $LAB_MLB_DRY_RC"
  LAB_MLB_FATE=$(awk -F'\t' -v s="$LAB_DEMO_NS/$LAB_MLB_SVC" '$1 == s { print $3 }' "$out.txt")
  read -r LAB_MLB_KEPT LAB_MLB_MOVED LAB_MLB_PENDING < <(awk -F'\t' '
    NF >= 3 && $1 ~ /\// { if ($3 == "kept") k++; if ($3 == "MOVED") m++; if ($3 ~ /pending/) p++ }
    END { print k + 0, m + 0, p + 0 }' "$out.txt")
  LAB_MLB_TALLY=$(grep 'LoadBalancer Services:' "$out.txt" || echo "no tally")
}

# lab_mlb_convert: the converted configuration (the IPPool lab-mlb) applied.
lab_mlb_convert() {
  local bin out=$LAB_SCN_DIR/converted
  bin=$(lab_mlb_ccm_binary)
  "$bin" migrate metallb --from-cluster --kubeconfig "$LAB_KUBECONFIG" >"$out.yaml" 2>"$out.report" \
    || die "migrate metallb failed: $(tail -5 "$out.report")"
  lab_kubectl apply --server-side -f "$out.yaml" >>"$LAB_LOGS/apply.log" 2>&1 \
    || die "applying the converted configuration failed: $(tail -5 "$LAB_LOGS/apply.log")"
  lab_event "converted configuration applied: $(grep -c '^kind: IPPool' "$out.yaml") IPPool(s)"
}

# lab_mlb_condition TYPE: the Service's condition TYPE is True.
lab_mlb_condition() {
  [ "$(lab_kubectl -n "$LAB_DEMO_NS" get svc "$LAB_MLB_SVC" -o jsonpath="{.status.conditions[?(@.type==\"$1\")].status}")" = True ]
}
lab_mlb_condition_message() {
  lab_kubectl -n "$LAB_DEMO_NS" get svc "$LAB_MLB_SVC" -o jsonpath="{.status.conditions[?(@.type==\"$1\")].message}"
}

# The layer-2 client's entry holds the MAC our L2Announced condition names ("… (MAC)").
lab_mlb_neigh_on_announcer() {
  local mac
  mac=$(lab_l2_neigh_mac "$LAB_MLB_IP")
  [ -n "$mac" ] && [ "$(lab_mac_node "$mac")" != "?" ] && lab_mlb_condition_message baremetal-ccm.io/L2Announced | grep -q "($mac)"
}

# lab_mlb_report NODE_BEFORE MAC_BEFORE IP_AFTER MAC_AFTER T_ROLLOUT T_ALLOC T_ANNOUNCED T_NEIGH MESSAGE
lab_mlb_report() {
  local curls failed gap demo_failed l2_failed
  read -r curls failed gap < <(lab_mlb_curl_figures "$LAB_SCN_DIR/mlb-curl")
  # When the client's entry first held another MAC than MetalLB's announcer's (none: the same node won).
  local moved
  moved=$(awk -v t0="$LAB_SCN_T0" -v old="$2" '$1 >= t0 && $2 != "-" && $2 != old { print $1 - t0; exit }' "$LAB_SCN_DIR/mlb-neigh")
  demo_failed=$(awk '$2 == "fail"' "$LAB_SCN_DIR/curl" | wc -l)
  l2_failed=$(awk '$2 == "fail"' "$LAB_SCN_DIR/l2-curl4" | wc -l)
  printf 'RESULT %s: address=%s->%s metallb_announcer=%s(%s) ours=%s(%s) curls=%s failed=%s gap_ms=%s takeover_ms=%s (switch start = dry run -> L2Announced True, as watched; metallb_stopped_ms=%s rollout_ms=%s AddressAllocated_ms=%s neighbour_on_ours_ms=%s neighbour_moved_ms=%s) dry_run: exit=%s %s=%s kept=%s moved=%s pending=%s [%s] demo_failed=%s/%s l2_demo_failed=%s/%s metallb_speaker_restarts=%s\n' \
    "$LAB_SCN" "$LAB_MLB_IP" "${3:-none}" "$1" "$2" "$(lab_mac_node "${4:-none}")" "${4:-none}" "$curls" "$failed" "$gap" \
    "$7" "$LAB_MLB_T_STOPPED" "$5" "$6" "$8" "${moved:-none}" "$LAB_MLB_DRY_RC" "$LAB_MLB_SVC" "${LAB_MLB_FATE:-absent}" "$LAB_MLB_KEPT" "$LAB_MLB_MOVED" \
    "$LAB_MLB_PENDING" "$LAB_MLB_TALLY" "$demo_failed" "$(wc -l <"$LAB_SCN_DIR/curl")" "$l2_failed" "$(wc -l <"$LAB_SCN_DIR/l2-curl4")" \
    "${LAB_MLB_SPEAKER_RESTARTS:-0}"
  printf '  L2Announced: %s\n' "$9"
  lab_expect "the dry run exited 0 with $LAB_MLB_SVC kept (kept 1, moved 0)" lab_mlb_dry_run_clean
  lab_expect "the address never changed ($LAB_MLB_IP)" [ "$3" = "$LAB_MLB_IP" ]
  lab_expect "AddressAllocated=True and L2Announced=True" lab_mlb_all_held "$6" "$7"
  lab_expect "the layer-2 client's entry names our announcer, a lab node" [ "$8" != never ]
  lab_expect "no curl to $LAB_MLB_IP failed" [ "$failed" -eq 0 ]
  lab_expect "the demo Services answered throughout (BGP and layer 2)" lab_mlb_all_zero "$demo_failed" "$l2_failed"
}

lab_mlb_dry_run_clean() {
  [ "$LAB_MLB_DRY_RC" -eq 0 ] && [ "$LAB_MLB_FATE" = kept ] && [ "$LAB_MLB_KEPT" -eq 1 ] && [ "$LAB_MLB_MOVED" -eq 0 ]
}
lab_mlb_all_held() { [ "$1" != never ] && [ "$2" != never ]; }
lab_mlb_all_zero() { [ "$1" -eq 0 ] && [ "$2" -eq 0 ]; }

# lab_mlb_curl_figures FILE: "CURLS FAILED GAP_MS", the gap the longest stretch from a failed
# curl to the next answered one (0 when none failed).
lab_mlb_curl_figures() {
  awk '$2 == "fail" { nfail++; if (first == "") first = $1 }
       $2 == "ok" && first != "" { if ($1 - first > gap) gap = $1 - first; first = "" }
       END { if (first != "") gap = "never"; print NR, nfail + 0, gap + 0 }' "$1"
}

# lab_mlb_cleanup: everything the scenario made goes, the controller's args as shipped again;
# idempotent, also the EXIT trap when the scenario fails half-way.
lab_mlb_cleanup() {
  local n
  set +e
  lab_probes_stop probe-mlb-curl probe-mlb-neigh probe-curl probe-l2-curl4
  lab_stop mlb-watch
  for n in "${LAB_NODES[@]}"; do lab_stop "metallb-speaker-$n"; done
  lab_stop metallb-controller
  if [ -n "${LAB_MLB_SHIPPED_ARGS:-}" ] && [ "$(lab_ccm_args)" != "$LAB_MLB_SHIPPED_ARGS" ]; then
    log "scenario $LAB_SCN: restoring the controller's args as shipped"
    lab_ccm_set_args "$LAB_MLB_SHIPPED_ARGS" || log "the controller's rollout did not finish (hack/lab status)"
  fi
  # Our controller releases the address and removes its finalizer.
  lab_kubectl -n "$LAB_DEMO_NS" delete svc "$LAB_MLB_SVC" --ignore-not-found --timeout=60s >/dev/null
  lab_kubectl delete ippools.baremetal-ccm.io "$LAB_MLB_POOL" --ignore-not-found --timeout=60s >/dev/null
  lab_kubectl delete -f "$TOOLS_BIN/metallb-$METALLB_VERSION/crds" --ignore-not-found --timeout=60s >/dev/null
  lab_kubectl delete namespace "$LAB_MLB_NS" --ignore-not-found --timeout=60s >/dev/null
  rm -rf "$LAB_STATE/migrate"
  set -e
}

lab_mlb_gone() {
  ! lab_kubectl -n "$LAB_DEMO_NS" get svc "$LAB_MLB_SVC" >/dev/null 2>&1 \
    && ! lab_kubectl get ippools.baremetal-ccm.io "$LAB_MLB_POOL" >/dev/null 2>&1 \
    && ! lab_kubectl get namespace "$LAB_MLB_NS" >/dev/null 2>&1 \
    && ! lab_kubectl get crd ipaddresspools.metallb.io >/dev/null 2>&1 \
    && ! lab_running metallb-controller && ! lab_running metallb-speaker-lab-n1
}
