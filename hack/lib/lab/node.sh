# One lab node: a network namespace with its own containerd, a real kubelet in external
# mode and a real kube-proxy (nftables mode), pods on a CNI bridge. What a kubeadm node would
# not have carries the reason next to it. Sourced by hack/lab.
# shellcheck shell=bash

# The cgroup v1 hierarchies of this machine (a cgroup2 at unified is skipped by the kubelet).
lab_cgroup_dirs() {
  awk '$3 == "cgroup" {print $2}' /proc/mounts
}
# Every cgroup hierarchy, the cgroup2 one too (runc also creates the nodes' cgroups there).
lab_cgroup_all_dirs() {
  awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/mounts
}

lab_node_config() {
  local n=$1 d=$LAB_STATE/$1
  mkdir -p "$d/cni/net.d" "$d/manifests" "$d/logs" "$d/kubelet" "$d/pki"
  # One containerd per node, each with its own root, state, socket and runc root.
  cat >"$d/containerd.toml" <<TOML
version = 2
root = "$d/cd-root"
state = "$d/cd-state"
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$LAB_PAUSE_IMAGE"
  # This machine's capability bounding set lacks CAP_SYS_RESOURCE, so nobody may lower an
  # oom_score_adj: runc fails every pod sandbox (the kubelet gives pause -998). This clamps
  # every container's score to containerd's own (docs/lab.md).
  restrict_oom_score_adj = true
  # Pod network namespaces under the state directory, not /var/run/netns, so that
  # hack/lab down finds (and unmounts) exactly this node's.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # No systemd as PID 1 here: the cgroupfs driver, as the kubelet's.
        SystemdCgroup = false
        Root = "$d/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni/net.d"
TOML
  cat >"$d/cni/net.d/10-lab.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "lab",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local",
              "ranges": [[{"subnet": "$(lab_node_pod_cidr "$n")"}], [{"subnet": "$(lab_node_pod_cidr6 "$n")"}]],
              "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}], "dataDir": "$d/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
JSON
  # No cluster DNS in the lab (nothing needs names): pods get this resolver file.
  echo "nameserver 127.0.0.1" >"$d/resolv.conf"
  cat >"$d/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $LAB_PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$d/containerd.sock
# This machine mounts cgroup v1 only; 1.36 still runs on it when told so (KEP 5573 will end it).
failCgroupV1: false
# PID 1 is not systemd.
cgroupDriver: cgroupfs
# Three kubelets share one cgroup tree: each gets its own root (pre-created in every v1
# hierarchy by hack/lab), so none sees or evicts another's pods.
cgroupRoot: /$(lab_netns "$n")
# Three nodes share one machine's directories: each gets its own.
staticPodPath: $d/manifests
podLogsDir: $d/logs
resolvConf: $d/resolv.conf
# A shared machine: swap and its disk are not the node's alone. Evict only when really short, in
# absolute terms: a percentage of a large shared disk (2% of 252 GiB is 5 GiB) once evicted the
# lab's own pods in CI while gigabytes were still free. Never garbage-collect the images
# imported by hand (there is no registry to pull from): 100 turns image GC off.
failSwapOn: false
evictionHard: {memory.available: "100Mi", nodefs.available: "256Mi", imagefs.available: "256Mi"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# The kubelet's health endpoint on the node's loopback (the default port, each node has its own).
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
YAML
  cat >"$d/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $LAB_STATE/kube-proxy.kubeconfig}
hostnameOverride: $n
mode: nftables
clusterCIDR: $LAB_CLUSTER_CIDR
# The conntrack table is global to the machine: leave its size to the host.
conntrack: {maxPerCore: 0}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
YAML
  local c
  for c in $(lab_cgroup_dirs); do
    mkdir -p "$c/$(lab_netns "$n")"
  done
}

lab_node_up() {
  local n=$1 d=$LAB_STATE/$1 ns
  ns=$(lab_netns "$n")
  lab_node_config "$n"
  lab_start "containerd-$n" "$ns" containerd --config "$d/containerd.toml"
  lab_wait 30 "containerd of $n (log: $LAB_LOGS/containerd-$n.log)" \
    ctr -a "$d/containerd.sock" version || return 1
}

# lab_kubelet_start NODE: start the kubelet (also used by the node-down scenario to bring
# a node back). --cloud-provider=external: the node stays tainted until our cloud-node
# initializes it (as on a kubeadm node with an external CCM); --node-ip (both families) must be
# addresses inside the node's namespace. Not on a kubeadm node: --root-dir and --cert-dir (three
# kubelets share one machine's /var/lib/kubelet otherwise), --hostname-override (they share one
# hostname), a client certificate per node instead of TLS bootstrap (docs/lab.md).
lab_kubelet_start() {
  local n=$1 d=$LAB_STATE/$1
  lab_start "kubelet-$n" "$(lab_netns "$n")" "$KUBE_LAB_BIN/kubelet" \
    --config "$d/kubelet.yaml" --kubeconfig "$LAB_STATE/kubelet-$n.kubeconfig" \
    --root-dir "$d/kubelet" --cert-dir "$d/pki" \
    --cloud-provider=external --node-ip "$(lab_node_ip "$n"),$(lab_node_ip6 "$n")" --hostname-override "$n"
}

lab_kube_proxy_start() {
  local n=$1
  lab_start "kube-proxy-$n" "$(lab_netns "$n")" "$KUBE_LAB_BIN/kube-proxy" \
    --config "$LAB_STATE/$n/kube-proxy.yaml"
}

# lab_shim_pids PATH: the containerd shims whose -address (their containerd's socket) starts
# with PATH (a node's socket, or the lab's directory for every node's).
lab_shim_pids() {
  local f
  for f in /proc/[0-9]*/cmdline; do
    { tr '\0' ' ' <"$f"; } 2>/dev/null | grep -q -- "^[^ ]*containerd-shim[^ ]* .*-address $1" \
      && { f=${f#/proc/}; echo "${f%%/*}"; }
  done
  return 0
}

# lab_kill_cgroup_trees NAME…: kill every process in the cgroups NAME (in every hierarchy)
# and remove them, deepest first.
lab_kill_cgroup_trees() {
  local c i name
  for i in 1 2 3; do
    for c in $(lab_cgroup_all_dirs); do
      for name in "$@"; do
        [ -d "$c/$name" ] || continue
        find "$c/$name" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
      done
    done
    sleep 0.2
  done
  for c in $(lab_cgroup_all_dirs); do
    for name in "$@"; do
      [ -d "$c/$name" ] && find "$c/$name" -depth -type d -exec rmdir {} + 2>/dev/null
    done
  done
  return 0
}
