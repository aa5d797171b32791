# `hack/lab down`: ends what the lab recorded, then what containerd started for its nodes,
# unmounts what kubelets and containerd mounted under the lab's directory, removes the lab's
# cgroups, namespaces, bridge and routes. Idempotent, and works after a crash (it relies on
# names and paths, not on a lab that is still healthy). Sourced by hack/lab.
# shellcheck shell=bash

lab_down() {
  local pid
  lab_stop_all
  # What containerd started for the nodes: the containers (in the nodes' cgroups) and the
  # shims (which name a node's containerd socket, under the lab's directory).
  lab_kill_cgroup_trees "${LAB_NODES[@]/#/$LAB-}"
  for pid in $(lab_shim_pids "$LAB_STATE/"); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  lab_unmount_all
  lab_kill_cgroup_trees "${LAB_NODES[@]/#/$LAB-}"
  lab_net_down
  if [ -d "$LAB_STATE" ]; then
    rm -rf "$LAB_STATE.last-logs"
    [ -d "$LAB_LOGS" ] && mv "$LAB_LOGS" "$LAB_STATE.last-logs"
    rm -rf "$LAB_STATE" || die "could not remove $LAB_STATE (something still mounted? grep $LAB_STATE /proc/mounts)"
  fi
  log "lab down (logs of the last lab: $LAB_STATE.last-logs)"
}

# Every mount under the lab's directory (kubelet's bind mount of its root dir, pod volumes,
# containerd's rootfs, shm and network-namespace mounts), deepest first.
lab_unmount_all() {
  local m i
  for i in 1 2 3; do
    m=$(awk -v p="$LAB_STATE/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    [ -z "$m" ] && return 0
    while IFS= read -r f; do umount "$f" 2>/dev/null || umount -l "$f" 2>/dev/null || true; done <<<"$m"
  done
}
