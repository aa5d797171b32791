# The product installed as a user installs it (its images in every node's containerd, then
# `kubectl apply -k` over the shipped manifests with the lab overlay), and the demo.
# Sourced by hack/lab.
# shellcheck shell=bash

lab_kubectl() { "$KUBE_LAB_BIN/kubectl" --kubeconfig "$LAB_KUBECONFIG" "$@"; }

# lab_kustomization: the top layer over hack/lib/lab/overlay that sets the image tags.
lab_kustomization() {
  local d=$LAB_STATE/kustomize
  mkdir -p "$d"
  cat >"$d/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$d" "$HACK_DIR/lib/lab/overlay")
images:
  - {name: localhost/baremetal-ccm, newTag: "${LAB_CCM_IMAGE##*:}"}
  - {name: localhost/baremetal-ccm-gobgpd, newTag: "${LAB_GOBGPD_IMAGE##*:}"}
EOF
  echo "$d"
}

lab_product_up() {
  local n
  # kubeadm labels its control-plane nodes so; the shipped controller DaemonSet selects them.
  for n in "${LAB_CONTROL_PLANE_NODES[@]}"; do
    lab_kubectl label node "$n" node-role.kubernetes.io/control-plane= --overwrite >/dev/null
  done
  # The layer-2 gossip key, created as docs/install.md tells users to (kustomize cannot draw a
  # random key); kept if it exists, so that a second `up` does not split the membership.
  if ! lab_kubectl -n kube-system get secret baremetal-ccm-l2-gossip >/dev/null 2>&1; then
    lab_kubectl -n kube-system create secret generic baremetal-ccm-l2-gossip \
      --from-literal=key="$(head -c 32 /dev/urandom | base64)" >/dev/null \
      || die "creating the layer-2 gossip key Secret failed"
  fi
  lab_kubectl apply --server-side -k "$(lab_kustomization)" >"$LAB_LOGS/apply.log" 2>&1 \
    || die "kubectl apply -k of the product failed: $(tail -5 "$LAB_LOGS/apply.log")"
}

lab_demo_up() {
  lab_wait 60 "the CRDs to be established" lab_kubectl wait --for condition=established --timeout=5s \
    crd/ippools.baremetal-ccm.io crd/bgppeers.baremetal-ccm.io || return 1
  lab_kubectl apply --server-side -f "$HACK_DIR/lib/lab/demo.yaml" >>"$LAB_LOGS/apply.log" 2>&1 \
    || die "applying the demo failed: $(tail -5 "$LAB_LOGS/apply.log")"
}

# lab_service_ip / lab_service_ip6: the demo Service's IPv4 / IPv6 address.
# lab_service_ips [SERVICE]: its addresses, one a line (default: the BGP demo Service).
lab_service_ips() {
  lab_kubectl -n "$LAB_DEMO_NS" get svc "${1:-$LAB_DEMO_SVC}" -o jsonpath='{range .status.loadBalancer.ingress[*]}{.ip}{"\n"}{end}' 2>/dev/null
}
# (awk reads all its input: a `head -1` may close the pipe while kubectl still writes, and under
# pipefail the SIGPIPE fails the whole substitution, silently.)
lab_service_ip() { lab_service_ips | awk '!/:/ && !n++'; }
lab_service_ip6() { lab_service_ips | awk '/:/ && !n++'; }
