# `hack/lab down`: ends what the lab recorded, then what containerd started for its nodes,
# unmounts what kubelets and containerd mounted under the lab's directory, removes the lab's
# cgroups, namespaces, bridge and routes. Idempotent, and works after a crash (it relies on
# names and paths, not on a lab that is still healthy). Sourced by hack/lab.
# shellcheck shell=bash

lab_down() {
  local n name f
  lab_stop bird
  for n in "${LAB_NODES[@]}"; do
    lab_node_processes_down "$n"
  done
  for name in "${LAB_CONTROLPLANE[@]}"; do
    lab_stop "$name"
  done
  # Anything else recorded (a scenario's curl loop, …).
  for f in "$LAB_RUN"/*.pid; do
    [ -e "$f" ] && lab_stop "$(basename "$f" .pid)"
  done
  lab_unmount_all
  for n in "${LAB_NODES[@]}"; do
    lab_kill_cgroup_tree "$(lab_netns "$n")"
  done
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
