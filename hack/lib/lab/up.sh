# `hack/lab up`, `status` and `logs`. Sourced by hack/lab.
# shellcheck shell=bash

# lab_preflight: refuse to start over a live lab or into names and addresses someone else
# holds, and name a missing kernel feature before anything is created.
lab_preflight() {
  if lab_running kube-apiserver || ip link show "$LAB_BRIDGE" >/dev/null 2>&1 \
      || ip netns list | grep -q "^$LAB-"; then
    die "a lab is already up (or a crashed one is left over): run 'hack/lab down' first"
  fi
  if ip -4 addr show | grep -q "inet 10\.250\.[01]\." || ip -6 addr show | grep -q "inet6 fd42:25[01]:"; then
    die "10.250.0.0/23 or fd42:250::/63 (the lab's network) is already in use on this machine: remove that address first"
  fi
  local r
  r=$(ip route show match "$LAB_HOST_IP" | grep -v '^default' || true)
  [ -z "$r" ] || die "the lab's network $LAB_HOST_IP/$LAB_PREFIX_LEN is already routed here ($r): remove that route first"
  [ -e /proc/sys/net/bridge ] || [ -d /sys/class/net ] || die "no bridge support in this kernel (CONFIG_BRIDGE)"
  grep -qw overlay /proc/filesystems || die "no overlayfs in this kernel (CONFIG_OVERLAY_FS; modprobe overlay): containerd's snapshotter needs it"
  local c
  for c in cpu memory pids; do
    lab_cgroup_dirs | grep -q "/$c\$" \
      || die "no cgroup v1 '$c' hierarchy mounted: the lab's kubelets run on this machine's cgroup v1 (docs/lab.md)"
  done
  nft list tables >/dev/null 2>&1 || die "nftables does not work here (CONFIG_NF_TABLES): kube-proxy runs in nftables mode"
  ip link add "$LAB-probe" type veth peer name "$LAB-probe1" 2>/dev/null \
    || die "cannot create a veth pair (CONFIG_VETH)"
  ip link del "$LAB-probe"
  if [ -e "$LAB_STATE" ]; then
    die "$LAB_STATE exists from an earlier lab: run 'hack/lab down' first"
  fi
  # Three nodes' containerd state, the images, logs and etcd; the kubelets evict below 256 MiB.
  need_free_space "$LAB_STATE" 1536 "the lab (three nodes' containers and images)"
}

lab_install() {
  lab_phase "checking packages and tools (installed and built on the first run only)"
  ensure_package_list "${DEBIAN_PACKAGES[@]:0:1}" iproute2:ip "${LAB_DEBIAN_PACKAGES[@]}"
  ensure_go_tools
  ensure_gobgp
}

# lab_phase MESSAGE: a progress line with the seconds since `up` started.
lab_phase() {
  local e=$(( $(now_ms) - ${LAB_T0:-$(now_ms)} ))
  printf '==> [%3d.%ds] %s\n' $((e / 1000)) $((e % 1000 / 100)) "$*" >&2
}

lab_up() {
  local t0 t
  t0=$(now_ms)
  LAB_T0=$t0
  lab_preflight
  lab_install
  lab_phase "building the images"
  mkdir -p "$LAB_STATE" "$LAB_LOGS" "$LAB_RUN"
  trap 'lab_up_failed' EXIT
  local tarballs=() word
  for word in $(lab_product_images; lab_own_images); do
    [[ $word == *.tar ]] && [ -f "$word" ] && tarballs+=("$word")
  done
  [ ${#tarballs[@]} -ge 4 ] || die "the image build produced ${#tarballs[@]} tarballs, expected 4"

  lab_phase "certificates, network, control plane"
  lab_pki
  lab_phase "network"
  lab_net_up
  lab_controlplane_up || die "the control plane did not start (logs: $LAB_LOGS)"
  lab_router_up || die "BIRD did not start (log: $LAB_LOGS/bird.log, $LAB_LOGS/bird.log)"

  lab_phase "nodes: containerd, images, kubelet, kube-proxy"
  local n pids=()
  for n in "${LAB_NODES[@]}"; do
    ( lab_node_up "$n" && lab_import "$n" "${tarballs[@]}" ) &
    pids+=($!)
  done
  local p
  for p in "${pids[@]}"; do wait "$p" || die "a node did not come up (logs: $LAB_LOGS/containerd-*.log)"; done
  lab_phase "images imported; starting kubelets and kube-proxies"
  for n in "${LAB_NODES[@]}"; do
    lab_kubelet_start "$n"
    lab_kube_proxy_start "$n"
  done
  for n in "${LAB_NODES[@]}"; do
    lab_wait 60 "node $n to register (log: $LAB_LOGS/kubelet-$n.log)" lab_kubectl get node "$n" \
      || die "kubelet of $n did not register"
  done
  t=$(now_ms); lab_phase "control plane and nodes up in $(( (t - t0) / 1000 ))s"

  lab_phase "installing baremetal-ccm: kubectl apply -k (manifests/ + hack/lib/lab/overlay)"
  lab_product_up
  for n in "${LAB_NODES[@]}"; do
    lab_wait 120 "node $n to be initialized by baremetal-ccm and Ready" lab_node_initialized "$n" \
      || { lab_pod_diagnosis kube-system; die "node $n was not initialized (hack/lab logs controller)"; }
  done
  lab_phase "demo: IPPools (BGP, layer 2), BGPPeers, Deployment, LoadBalancer Services"
  lab_demo_up
  lab_kubectl -n "$LAB_DEMO_NS" rollout status deploy/hello --timeout=120s >/dev/null 2>&1 \
    || { lab_pod_diagnosis "$LAB_DEMO_NS"; die "the demo pods did not become ready"; }
  lab_wait 60 "an EXTERNAL-IP on the Service" lab_in_pool_service \
    || die "the Service got no address from the pool (kubectl -n demo describe svc hello; hack/lab logs controller)"
  LAB_VIP=$(lab_service_ip)
  lab_wait 60 "the first answered curl to $LAB_VIP" lab_curl "$LAB_VIP" 1 \
    || die "no curl to $LAB_VIP was answered within 60s (hack/lab router show route all)"
  local t_first
  t_first=$(now_ms)
  lab_kubectl -n kube-system rollout status ds/baremetal-ccm --timeout=120s >/dev/null 2>&1 \
    || { lab_pod_diagnosis kube-system; die "the controller DaemonSet did not become ready"; }
  lab_checks
  [ "$LAB_FAILED" -eq 0 ] || die "the lab is up but some checks failed (above); it stays up for inspection? no: tearing down"
  trap - EXIT
  t=$(now_ms)
  lab_phase "lab up: first answered curl after $(( (t_first - t0) / 1000 )).$(( (t_first - t0) % 1000 / 100 ))s, total $(( (t - t0) / 1000 )).$(( (t - t0) % 1000 / 100 ))s"
  printf '\nkubeconfig: %s\n  hack/lab kubectl get nodes,svc -A\n  hack/lab client curl http://%s/\n  hack/lab l2-client curl http://%s/; hack/lab l2-client ip neigh    (layer 2)\n  hack/lab down\n' \
    "$LAB_KUBECONFIG" "$LAB_VIP" "$LAB_L2_IP"
}

lab_in_pool_service() { lab_in_pool "$(lab_service_ip)" && lab_in_pool "$(lab_service_ip6)"; }

lab_checks() {
  LAB_VIP=$(lab_service_ip)
  LAB_VIP6=$(lab_service_ip6)
  lab_check_nodes
  lab_check_service
  lab_check_route
  lab_check_curls
  lab_check_l2
}

lab_up_failed() {
  local rc=$?
  [ "$rc" -eq 0 ] && return
  # A process that died is usually the cause: name it, with the end of its log.
  local f name
  for f in "$LAB_RUN"/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    case $name in probe-*) continue ;; esac
    if ! lab_running "$name"; then
      log "$name is not running; the end of its log ($LAB_STATE.last-logs/$name.log):"
      tail -5 "$LAB_LOGS/$name.log" 2>/dev/null | sed 's/^/    /' >&2
    fi
  done
  log "hack/lab up failed: tearing the half-started lab down"
  lab_down || true
  exit "$rc"
}

# lab_pod_diagnosis NAMESPACE: why pods are not running (waiting reasons and warning events).
lab_pod_diagnosis() {
  {
    echo "pods in $1:"
    lab_kubectl -n "$1" get pods -o wide 2>&1 | sed 's/^/  /'
    echo "waiting containers:"
    lab_kubectl -n "$1" get pods -o jsonpath='{range .items[*]}{.metadata.name}{": "}{range .status.containerStatuses[*]}{.name}={.state.waiting.reason} {.state.waiting.message} {end}{"\n"}{end}' 2>&1 | sed 's/^/  /'
    echo "warning events:"
    lab_kubectl -n "$1" get events --field-selector type=Warning 2>&1 | tail -15 | sed 's/^/  /'
  } >&2
}

lab_status() {
  local name f
  echo "processes (recorded in $LAB_RUN):"
  for f in "$LAB_RUN"/*.pid; do
    [ -e "$f" ] || { echo "  none: the lab is down"; return 0; }
    name=$(basename "$f" .pid)
    if lab_running "$name"; then echo "  $name: running (pid $(lab_pid "$name"))"; else echo "  $name: NOT running"; fi
  done
  lab_running kube-apiserver || return 0
  echo; lab_kubectl get nodes -o wide
  echo; lab_kubectl get pods -A -o wide
  echo; lab_kubectl get svc -A; echo; lab_kubectl get ippools,bgppeers
  local vip; vip=$(lab_service_ip)
  [ -n "$vip" ] && { echo; echo "router's route to $vip:"; lab_ns "$LAB_ROUTER_NS" ip route show "$vip"; }
  echo; echo "layer 2: the client's (router's) neighbour entries:"
  for vip in "$LAB_L2_IP" "$LAB_L2_IP6"; do
    echo "  $(lab_ns "$LAB_L2_CLIENT_NS" ip neigh show to "$vip") -> owner $(lab_l2_owner "$vip")"
  done
  return 0
}

lab_logs() {
  local c=$1
  case "$c" in
    controller | speaker)
      lab_kubectl -n kube-system logs -l "app.kubernetes.io/component=$c" --all-containers --prefix --tail=-1 ;;
    "") echo "components: controller speaker $(cd "$LAB_LOGS" 2>/dev/null && ls ./*.log | sed 's#^\./##; s/\.log$//' | tr '\n' ' ')" ;;
    *) [ -f "$LAB_LOGS/$c.log" ] || die "no log for '$c' (hack/lab logs: the list)"; cat "$LAB_LOGS/$c.log" ;;
  esac
}
