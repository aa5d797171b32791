# hack/image --check: the images are reproducible, valid, and run in a real containerd.
# Sourced by hack/image after it has built the images into $out.
# shellcheck shell=bash

# check_images: every check in turn; the first failure stops with a message.
check_images() {
  check_reproducible
  check_layouts
  check_containerd
  log "hack/image --check passed"
}

# A second assembly from the same commit and binaries gives byte-identical archives.
check_reproducible() {
  local first_ccm=$CCM_DIGEST first_sidecar=$SIDECAR_DIGEST again=$out/.again
  rm -rf "$again" && mkdir -p "$again"
  assemble "$again"
  [ "$CCM_DIGEST" = "$first_ccm" ] || die "baremetal-ccm built twice: $first_ccm, then $CCM_DIGEST"
  [ "$SIDECAR_DIGEST" = "$first_sidecar" ] || die "baremetal-ccm-gobgpd built twice: $first_sidecar, then $SIDECAR_DIGEST"
  local name
  for name in baremetal-ccm baremetal-ccm-gobgpd; do
    cmp -s "$out/$name.tar" "$again/$name.tar" || die "$name.tar differs between two builds"
    diff -r "$out/$name" "$again/$name" >/dev/null || die "the $name layout differs between two builds"
  done
  rm -rf "$again"
  log "reproducible: two builds give ${CCM_DIGEST% *} and ${SIDECAR_DIGEST% *} again"
}

# index.json -> manifest -> config and layer blobs: digests, sizes, mediaTypes; entrypoint, user.
check_layouts() {
  "$IMAGETOOL_BIN" verify -layout "$out/baremetal-ccm" -entrypoint '["/baremetal-ccm"]' -user 65532:65532 >/dev/null \
    || die "the baremetal-ccm layout is invalid"
  "$IMAGETOOL_BIN" verify -layout "$out/baremetal-ccm-gobgpd" -entrypoint '["/usr/local/bin/gobgpd-sidecar"]' \
    -user 65532:65532 >/dev/null || die "the baremetal-ccm-gobgpd layout is invalid"
  log "layouts valid: blobs match their digests and sizes, entrypoints and user 65532:65532 as built"
}

CTR_SOCK=""
CTR_DIR=""
CTR_PID=""

stop_containerd() {
  local id
  if [ -n "$CTR_SOCK" ] && [ -S "$CTR_SOCK" ]; then
    for id in $(ctr -a "$CTR_SOCK" -n k8s.io task ls -q 2>/dev/null); do
      ctr -a "$CTR_SOCK" -n k8s.io task kill -s KILL "$id" >/dev/null 2>&1 || true
      ctr -a "$CTR_SOCK" -n k8s.io task delete -f "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr -a "$CTR_SOCK" -n k8s.io container ls -q 2>/dev/null); do
      ctr -a "$CTR_SOCK" -n k8s.io container delete "$id" >/dev/null 2>&1 || true
    done
  fi
  if [ -n "$CTR_PID" ]; then
    kill "$CTR_PID" 2>/dev/null || true
    wait "$CTR_PID" 2>/dev/null || true
    CTR_PID=""
  fi
  if [ -n "$CTR_DIR" ]; then
    local m
    for m in $(awk -v d="$CTR_DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
      umount "$m" 2>/dev/null || umount -l "$m" || true
    done
    rm -rf "$CTR_DIR"
    CTR_DIR=""
  fi
}

# ctr_in ARGS...: ctr against the throw-away containerd, in the namespace the kubelet uses.
ctr_in() { ctr -a "$CTR_SOCK" -n k8s.io "$@"; }

start_containerd() {
  [ "$(id -u)" -eq 0 ] || die "hack/image --check needs root to run containerd"
  need_cmd containerd "Debian: apt-get install containerd (hack/tools installs it)."
  need_cmd ctr "Debian: apt-get install containerd (hack/tools installs it)."
  need_cmd runc "Debian: apt-get install runc (hack/tools installs it)."
  CTR_DIR=$(mktemp -d /tmp/baremetal-ccm-image-check.XXXXXX)
  CTR_SOCK=$CTR_DIR/containerd.sock
  trap stop_containerd EXIT
  # Only what importing and running needs: no CRI (no kubelet here), nothing on the network.
  cat >"$CTR_DIR/config.toml" <<EOF
version = 2
root = "$CTR_DIR/root"
state = "$CTR_DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTR_SOCK"
[ttrpc]
  address = "$CTR_SOCK.ttrpc"
EOF
  containerd --config "$CTR_DIR/config.toml" >"$CTR_DIR/containerd.log" 2>&1 &
  CTR_PID=$!
  local i
  for i in $(seq 100); do
    ctr -a "$CTR_SOCK" version >/dev/null 2>&1 && return 0
    kill -0 "$CTR_PID" 2>/dev/null || break
    sleep 0.1
  done
  die "containerd did not start: $(tail -5 "$CTR_DIR/containerd.log")"
}

# expect_output WHAT WANT CMD...: CMD succeeds and prints WANT.
expect_output() {
  local what=$1 want=$2 output; shift 2
  output=$("$@" 2>&1) || die "$what failed: $output"
  grep -qF -- "$want" <<<"$output" || die "$what did not print '$want': $(head -c 2000 <<<"$output")"
}

check_containerd() {
  start_containerd
  local name ref digest
  for name in baremetal-ccm baremetal-ccm-gobgpd; do
    ctr_in image import "$out/$name.tar" >"$CTR_DIR/import.log" 2>&1 \
      || die "ctr image import $name.tar failed: $(cat "$CTR_DIR/import.log")"
  done
  for ref in "$CCM_REF:${CCM_DIGEST% *}" "$SIDECAR_REF:${SIDECAR_DIGEST% *}"; do
    digest=${ref##*:sha256:}
    ref=${ref%:sha256:*}
    ctr_in image ls | awk -v r="$ref" '$1 == r {print $3}' | grep -qx "sha256:$digest" \
      || die "ctr image ls does not show $ref at sha256:$digest: $(ctr_in image ls)"
  done
  log "containerd imported both archives: ctr image ls shows $CCM_REF and $SIDECAR_REF at their digests"

  local run=imgcheck-$$
  expect_output "ctr run $CCM_REF --help" "Usage: baremetal-ccm" ctr_in run --rm "$CCM_REF" "$run-help" /baremetal-ccm --help
  expect_output "ctr run $CCM_REF crd" "kind: CustomResourceDefinition" ctr_in run --rm "$CCM_REF" "$run-crd" /baremetal-ccm crd
  expect_output "ctr run $SIDECAR_REF gobgpd --version" "$GOBGP_VERSION" \
    ctr_in run --rm "$SIDECAR_REF" "$run-version" /usr/local/bin/gobgpd --version
  # The entrypoint as the kubelet starts it (user 65532), then the health check beside it. The
  # socket directory is a directory of its own, as the pod's emptyDir is (ctr's default spec
  # also puts a tmpfs on /run, hiding the image's /run/gobgp).
  mkdir -p "$CTR_DIR/gobgp" && chown 65532:65532 "$CTR_DIR/gobgp"
  ctr_in run -d --log-uri "file://$CTR_DIR/sidecar.log" \
    --mount "type=bind,src=$CTR_DIR/gobgp,dst=/run/gobgp,options=rbind:rw" "$SIDECAR_REF" "$run-sidecar" >/dev/null \
    || die "ctr run $SIDECAR_REF (its entrypoint) failed"
  local i healthy=false
  for i in $(seq 100); do
    if ctr_in task exec --exec-id "health-$i" "$run-sidecar" /usr/local/bin/healthcheck >/dev/null 2>&1; then
      healthy=true
      break
    fi
    sleep 0.2
  done
  $healthy || die "the sidecar's health check never passed in the running image: $(tail -5 "$CTR_DIR/sidecar.log")"
  expect_output "the sidecar's user" "65532" ctr_in task exec --exec-id whoami "$run-sidecar" /bin/busybox id -u
  log "ran in containerd: baremetal-ccm --help and crd; gobgpd --version $GOBGP_VERSION; the sidecar entrypoint healthy as uid 65532"
  stop_containerd
  trap - EXIT
}
