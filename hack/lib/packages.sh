# Debian packages the tests and the lab need. Sourced after common.sh.
# shellcheck shell=bash

# package:command-it-provides pairs; the command proves the package is usable. nftables: the
# layer-2 tests cut a host's gossip or API traffic with nft rules in its network namespace. A command
# given as an absolute path (a daemon outside PATH) is checked as that file.
DEBIAN_PACKAGES=(
  bird2:bird
  frr:/usr/lib/frr/bgpd
  arping:arping
  ndisc6:ndisc6
  iproute2:ip
  tcpdump:tcpdump
  iputils-ping:ping
  procps:sysctl
  containerd:containerd
  runc:runc
  file:file
  socat:socat
  nftables:nft
)

# The lab's real cluster (hack/lab): a container runtime per node, CNI plugins, kube-proxy's
# nftables, busybox for the lab's images, curl for the client, arping and ndisc6 for the
# layer-2 scenario's resolver probe.
LAB_DEBIAN_PACKAGES=(
  arping:arping
  ndisc6:ndisc6
  containerd:containerd
  runc:runc
  containernetworking-plugins:/usr/lib/cni/bridge
  iptables:iptables
  nftables:nft
  conntrack:conntrack
  busybox-static:/bin/busybox
  curl:curl
  openssl:openssl
  python3:python3
)

ensure_packages() {
  ensure_package_list "${DEBIAN_PACKAGES[@]}"
}

# ensure_package_list PACKAGE:COMMAND...: install the packages whose command is missing.
ensure_package_list() {
  local missing=() entry
  for entry in "$@"; do
    local cmd="${entry#*:}"
    case "$cmd" in
      /*) [ -x "$cmd" ] || missing+=("${entry%%:*}") ;;
      *) command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${entry%%:*}") ;;
    esac
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 \
    || die "missing packages: ${missing[*]}; install them with your package manager (Debian/Ubuntu names given)"
  [ "$(id -u)" -eq 0 ] \
    || die "missing packages: ${missing[*]}; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
  # BIRD's and FRR's Debian packages start system daemons; the tests run their own
  # instances (in their own network namespaces, with their own sockets).
  local service
  for service in bird frr; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet "$service" 2>/dev/null; then
      systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
  done
}
