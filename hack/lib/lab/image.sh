# Container images for the lab, without a container engine or a registry: docker-archive
# tarballs imported into every node's containerd. Sourced by hack/lab.
# shellcheck shell=bash

LAB_VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO_ROOT/Cargo.toml" | head -1)
LAB_CCM_IMAGE=localhost/baremetal-ccm:$LAB_VERSION
LAB_GOBGPD_IMAGE=localhost/baremetal-ccm-gobgpd:v$GOBGP_VERSION
# The lab's own images (not the product's): the pod sandbox and the demo HTTP server, both
# busybox, built the same way.
LAB_PAUSE_IMAGE=localhost/pause:lab
LAB_HTTPD_IMAGE=localhost/lab-httpd:1
LAB_IMAGES_DIR=$LAB_STATE/images

# lab_product_images: build the product's images and print what the builder printed; every
# word of it that names an existing .tar file is a docker-archive to import (hack/image prints
# "  archive _output/images/baremetal-ccm.tar"). hack/image (issue 13 item 3) is used as soon as
# it exists; LAB_IMAGE_BUILDER=standin forces the stand-in below.
# LAB_PRODUCT_IMAGES="A.tar B.tar" imports archives built elsewhere (CI builds them once).
lab_product_images() {
  if [ -n "${LAB_PRODUCT_IMAGES:-}" ]; then
    echo "$LAB_PRODUCT_IMAGES"
  elif [ -x "$HACK_DIR/image" ] && [ "${LAB_IMAGE_BUILDER:-}" != standin ]; then
    "$HACK_DIR/image" | tee /dev/stderr; [ "${PIPESTATUS[0]}" -eq 0 ] || die "hack/image failed (its output above names the cause)"
  else
    lab_standin_product_images
  fi
}

# STAND-IN for hack/image: the debug binary (with the shared libraries it links) and the
# cached gobgpd/gobgp with busybox for the sidecar's scripts. Not what ships: hack/image
# builds the real images (static binary, no shell in the controller image).
lab_standin_product_images() {
  local out=$LAB_IMAGES_DIR py=$HACK_DIR/lib/lab/standin-image.py
  mkdir -p "$out"
  log "stand-in image build: cargo build --bin baremetal-ccm (until hack/image exists)"
  ( cd "$REPO_ROOT" && cargo build --bin baremetal-ccm ) >&2 \
    || die "building baremetal-ccm failed (see the cargo output above)"
  local bin=${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/baremetal-ccm
  local files=(--file "$bin:/usr/local/bin/baremetal-ccm") lib
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    files+=(--file "$(readlink -f "$lib"):$lib")
  done
  python3 "$py" "$out/baremetal-ccm.tar" "$LAB_CCM_IMAGE" --entrypoint '["/usr/local/bin/baremetal-ccm"]' \
    --user 65532:65532 --label "lab.build=${LAB_IMAGE_LABEL:-1}" "${files[@]}" --dir tmp >/dev/null \
    || die "stand-in image build of $LAB_CCM_IMAGE failed"
  python3 "$py" "$out/gobgpd.tar" "$LAB_GOBGPD_IMAGE" --entrypoint '["/usr/local/bin/gobgpd-sidecar"]' \
    --user 65532:65532 --env PATH=/usr/local/bin:/bin \
    --file "$GOBGPD_BIN:/usr/local/bin/gobgpd" --file "$GOBGP_BIN:/usr/local/bin/gobgp" \
    --file "$REPO_ROOT/gobgp-sidecar/gobgpd-sidecar:/usr/local/bin/gobgpd-sidecar" \
    --file "$REPO_ROOT/gobgp-sidecar/healthcheck:/usr/local/bin/healthcheck" \
    "${LAB_BUSYBOX_FILES[@]}" --dir tmp --dir run/gobgp >/dev/null \
    || die "stand-in image build of $LAB_GOBGPD_IMAGE failed"
  echo "$out/baremetal-ccm.tar"
  echo "$out/gobgpd.tar"
}

LAB_BUSYBOX_FILES=(--file /bin/busybox:/bin/busybox --link busybox:/bin/sh --link busybox:/bin/rm)

# lab_own_images: the pause and demo images (busybox).
lab_own_images() {
  local out=$LAB_IMAGES_DIR py=$HACK_DIR/lib/lab/standin-image.py a links=()
  mkdir -p "$out"
  for a in sh httpd sleep cat echo hostname mkdir env ls nc wget; do
    links+=(--link "busybox:/bin/$a")
  done
  python3 "$py" "$out/pause.tar" "$LAB_PAUSE_IMAGE" --entrypoint '["/bin/sleep","2147483647"]' \
    --file /bin/busybox:/bin/busybox "${links[@]}" >/dev/null || die "building $LAB_PAUSE_IMAGE failed"
  python3 "$py" "$out/httpd.tar" "$LAB_HTTPD_IMAGE" --entrypoint '["/bin/sh","-c"]' \
    --file /bin/busybox:/bin/busybox "${links[@]}" --dir tmp --dir www >/dev/null \
    || die "building $LAB_HTTPD_IMAGE failed"
  echo "$out/pause.tar"
  echo "$out/httpd.tar"
}

# lab_import NODE TARBALL...: import docker-archive tarballs into the node's containerd (the
# namespace the kubelet's CRI uses).
lab_import() {
  local n=$1 t; shift
  for t in "$@"; do
    ctr -a "$LAB_STATE/$n/containerd.sock" -n k8s.io image import "$t" >/dev/null 2>"$LAB_LOGS/import.err" \
      || die "importing $t into $n's containerd failed: $(cat "$LAB_LOGS/import.err")"
  done
}
