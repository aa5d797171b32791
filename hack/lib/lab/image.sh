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

# lab_product_images: build the product's images with hack/image and print what it printed;
# every word of it that names an existing .tar file is a docker-archive to import (hack/image
# prints "  archive _output/images/baremetal-ccm.tar").
# LAB_PRODUCT_IMAGES="A.tar B.tar" imports archives built elsewhere instead.
lab_product_images() {
  if [ -n "${LAB_PRODUCT_IMAGES:-}" ]; then
    echo "$LAB_PRODUCT_IMAGES"
  else
    # tee -a: opening /dev/stderr without O_APPEND truncates it when stderr is a file (a CI
    # log), which cut everything logged before and left a hole of zero bytes in its place.
    "$HACK_DIR/image" | tee -a /dev/stderr; [ "${PIPESTATUS[0]}" -eq 0 ] || die "hack/image failed (its output above names the cause)"
  fi
}

# lab_own_images: the pause and demo images (busybox, the lab's own: not what ships).
lab_own_images() {
  local out=$LAB_IMAGES_DIR py=$HACK_DIR/lib/lab/busybox-image.py a links=()
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
