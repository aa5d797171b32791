# Builds the Go-based test and lab components from their Go modules at the versions pinned in
# hack/versions.env, caching the binaries under $CACHE_ROOT/bin/<name>-<version>/.
# Sourced after common.sh.
# shellcheck shell=bash

# go_wrapper_build DIR OUT PKG...: build PKG(s) inside the wrapper module in DIR into OUT, with
# GO_LDFLAGS (default: stripped) as the linker flags and GO_EXTRA_LDFLAGS (optional, e.g. the
# Kubernetes version stamp) appended.
go_wrapper_build() {
  local dir=$1 out=$2; shift 2
  local ldflags=${GO_LDFLAGS:--s -w}
  ( cd "$dir" && go mod tidy >"$dir/tidy.log" 2>&1 ) || { cat "$dir/tidy.log" >&2; die "go mod tidy failed in $dir"; }
  local pkg
  for pkg in "$@"; do
    log "go build $pkg"
    ( cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags ${GO_EXTRA_LDFLAGS:-}" -o "$out/" "$pkg" ) \
      || die "building $pkg failed (needs Go and the Go module proxy)"
  done
}

# kube_version_ldflags: the -X flags that make a binary built from the k8s.io/kubernetes module
# report v$KUBERNETES_VERSION (a module build otherwise reports v0.0.0-master+$Format:%H$, and
# Nodes would show that as their kubelet version).
kube_version_ldflags() {
  local v=k8s.io/component-base/version minor=${KUBERNETES_VERSION#*.}
  minor=${minor%%.*}
  printf -- '-X %s.gitVersion=v%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean -X %s.buildDate=1970-01-01T00:00:00Z' \
    "$v" "$KUBERNETES_VERSION" "$v" "${KUBERNETES_VERSION%%.*}" "$v" "$minor" "$v" "$v"
}

# kube_wrapper_module DIR IMPORT...: write the wrapper module that requires k8s.io/kubernetes at
# the pinned version (every staging module pinned to its published twin) and imports IMPORT(s).
kube_wrapper_module() {
  local w=$1; shift
  local gomod
  gomod=$(cd "$w" && go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@v$KUBERNETES_VERSION"
  local staging="0.${KUBERNETES_VERSION#1.}"
  {
    echo "module baremetal-ccm.io/hack/kube"
    echo
    echo "go 1.24"
    echo
    echo "require k8s.io/kubernetes v$KUBERNETES_VERSION"
    echo
    # Every staging module k8s.io/kubernetes replaces with ./staging/... is pinned to its
    # published twin, as upstream documents for depending on k8s.io/kubernetes.
    sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#replace \1 => \1 v'"$staging"'#p' "$gomod"
  } >"$w/go.mod"
  {
    printf 'package hack\n\nimport (\n'
    local i
    for i in "$@"; do printf '\t_ "%s"\n' "$i"; done
    printf ')\n'
  } >"$w/tools.go"
}

# ensure_kube_lab: what the lab's real cluster runs besides kube-apiserver and etcd — kubelet,
# kube-proxy, kube-controller-manager, kube-scheduler, kubectl and a kube-apiserver, all from
# the pinned k8s.io/kubernetes module and version-stamped, in $TOOLS_BIN/kubernetes-<v>-lab/.
KUBE_LAB_COMPONENTS=(kube-apiserver kubelet kube-proxy kube-controller-manager kube-scheduler kubectl)
ensure_kube_lab() {
  need_cmd go "Install Go 1.24+ (Debian: golang-go, or the upstream tarball)."
  KUBE_LAB_BIN=$TOOLS_BIN/kubernetes-$KUBERNETES_VERSION-lab
  local c missing=()
  for c in "${KUBE_LAB_COMPONENTS[@]}"; do
    [ -x "$KUBE_LAB_BIN/$c" ] || missing+=("$c")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "building ${missing[*]} $KUBERNETES_VERSION from the k8s.io/kubernetes module (first run only; ~2 min each on 2 cores)"
  local w; w=$(mktemp -d)
  local imports=() pkgs=()
  for c in "${missing[@]}"; do
    pkgs+=("k8s.io/kubernetes/cmd/$c")
    case $c in
      kubectl) imports+=("k8s.io/kubectl/pkg/cmd") ;;  # cmd/kubectl is a main package
      *) imports+=("k8s.io/kubernetes/cmd/$c/app") ;;
    esac
  done
  kube_wrapper_module "$w" "${imports[@]}"
  mkdir -p "$KUBE_LAB_BIN"
  # Built one by one into a scratch directory and moved into place, so an interrupted build
  # never leaves a half-written binary that the -x test above would accept.
  mkdir -p "$w/out"
  GO_EXTRA_LDFLAGS=$(kube_version_ldflags) go_wrapper_build "$w" "$w/out" "${pkgs[@]}"
  for c in "${missing[@]}"; do
    mv "$w/out/$c" "$KUBE_LAB_BIN/$c"
  done
  rm -rf "$w"
}

# ensure_kube: kube-apiserver and etcd. Honours KUBEBUILDER_ASSETS when it holds both.
ensure_kube() {
  if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
    [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ] \
      || die "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks kube-apiserver or etcd; unset it to build them"
    KUBE_APISERVER_BIN=$KUBEBUILDER_ASSETS/kube-apiserver
    ETCD_BIN=$KUBEBUILDER_ASSETS/etcd
    return
  fi
  need_cmd go "Install Go 1.24+ (Debian: golang-go, or the upstream tarball)."
  local kdir=$TOOLS_BIN/kubernetes-$KUBERNETES_VERSION
  if [ ! -x "$kdir/kube-apiserver" ]; then
    log "building kube-apiserver $KUBERNETES_VERSION from its Go module (first run only; several minutes)"
    local w; w=$(mktemp -d)
    kube_wrapper_module "$w" k8s.io/kubernetes/cmd/kube-apiserver/app
    mkdir -p "$kdir.tmp"
    GO_EXTRA_LDFLAGS=$(kube_version_ldflags) go_wrapper_build "$w" "$kdir.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    rm -rf "$kdir" && mv "$kdir.tmp" "$kdir" && rm -rf "$w"
  fi
  local edir=$TOOLS_BIN/etcd-$ETCD_VERSION
  if [ ! -x "$edir/etcd" ]; then
    log "building etcd $ETCD_VERSION from its Go module (first run only)"
    local w; w=$(mktemp -d)
    printf 'module baremetal-ccm.io/hack/etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCD_VERSION" >"$w/go.mod"
    printf 'package hack\n\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n' >"$w/tools.go"
    mkdir -p "$edir.tmp"
    go_wrapper_build "$w" "$edir.tmp" go.etcd.io/etcd/server/v3
    mv "$edir.tmp/v3" "$edir.tmp/etcd" 2>/dev/null || mv "$edir.tmp/server" "$edir.tmp/etcd"
    rm -rf "$edir" && mv "$edir.tmp" "$edir" && rm -rf "$w"
  fi
  KUBE_APISERVER_BIN=$kdir/kube-apiserver
  ETCD_BIN=$edir/etcd
}

# ensure_gobgp: gobgpd and the gobgp CLI from the pinned GoBGP v4 module.
ensure_gobgp() {
  need_cmd go "Install Go 1.24+ (Debian: golang-go, or the upstream tarball)."
  local gdir=$TOOLS_BIN/gobgp-$GOBGP_VERSION
  if [ ! -x "$gdir/gobgpd" ] || [ ! -x "$gdir/gobgp" ]; then
    log "building gobgpd/gobgp $GOBGP_VERSION from the GoBGP v4 module (first run only)"
    local w; w=$(mktemp -d)
    printf 'module baremetal-ccm.io/hack/gobgp\n\ngo 1.24\n\nrequire github.com/osrg/gobgp/v4 v%s\n' "$GOBGP_VERSION" >"$w/go.mod"
    printf 'package hack\n\nimport (\n\t_ "github.com/osrg/gobgp/v4/cmd/gobgp"\n\t_ "github.com/osrg/gobgp/v4/cmd/gobgpd"\n)\n' >"$w/tools.go"
    mkdir -p "$gdir.tmp"
    go_wrapper_build "$w" "$gdir.tmp" github.com/osrg/gobgp/v4/cmd/gobgpd github.com/osrg/gobgp/v4/cmd/gobgp
    rm -rf "$gdir" && mv "$gdir.tmp" "$gdir" && rm -rf "$w"
  fi
  GOBGPD_BIN=$gdir/gobgpd
  GOBGP_BIN=$gdir/gobgp
  # The upstream .proto files, for the test that checks our own definitions against them.
  local moddir
  moddir=$(go mod download -json "github.com/osrg/gobgp/v4@v$GOBGP_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
  [ -d "$moddir/proto/api" ] || die "could not download github.com/osrg/gobgp/v4@v$GOBGP_VERSION"
  GOBGP_API_UPSTREAM_DIR=$moddir/proto
}

# ensure_cargo_deny: cargo-deny at the pinned version, built from crates.io with its own
# lock file into $TOOLS_BIN/cargo-deny-<version>/bin/.
ensure_cargo_deny() {
  need_cmd cargo "Install Rust with rustup (the toolchain in rust-toolchain.toml is selected automatically)."
  local cdir=$TOOLS_BIN/cargo-deny-$CARGO_DENY_VERSION
  if [ ! -x "$cdir/bin/cargo-deny" ]; then
    log "building cargo-deny $CARGO_DENY_VERSION from crates.io (first run only; a few minutes)"
    local w; w=$(mktemp -d)
    rm -rf "$cdir.tmp"
    # Our own toolchain (run from the repository) and a target directory of its own, so a
    # CARGO_TARGET_DIR set for the project is not filled with cargo-deny's build.
    ( cd "$REPO_ROOT" && cargo install --locked --quiet cargo-deny --version "=$CARGO_DENY_VERSION" \
        --root "$cdir.tmp" --target-dir "$w" ) \
      || die "building cargo-deny $CARGO_DENY_VERSION failed (needs crates.io)"
    rm -rf "$cdir" && mv "$cdir.tmp" "$cdir" && rm -rf "$w"
  fi
  CARGO_DENY_BIN=$cdir/bin/cargo-deny
}

# ensure_kubeadm: kubeadm from the same pinned k8s.io/kubernetes module as kube-apiserver,
# version-stamped (kubeadm compares a configuration's kubernetesVersion with its own).
ensure_kubeadm() {
  need_cmd go "Install Go 1.24+ (Debian: golang-go, or the upstream tarball)."
  local kdir=$TOOLS_BIN/kubeadm-$KUBERNETES_VERSION
  if [ ! -x "$kdir/kubeadm" ]; then
    log "building kubeadm $KUBERNETES_VERSION from its Go module (first run only; a few minutes)"
    local w; w=$(mktemp -d)
    kube_wrapper_module "$w" k8s.io/kubernetes/cmd/kubeadm/app
    mkdir -p "$kdir.tmp"
    GO_EXTRA_LDFLAGS=$(kube_version_ldflags) go_wrapper_build "$w" "$kdir.tmp" k8s.io/kubernetes/cmd/kubeadm
    rm -rf "$kdir" && mv "$kdir.tmp" "$kdir" && rm -rf "$w"
  fi
  KUBEADM_BIN=$kdir/kubeadm
}

# ensure_helm: helm from the pinned helm.sh/helm/v4 module.
ensure_helm() {
  need_cmd go "Install Go 1.24+ (Debian: golang-go, or the upstream tarball)."
  local hdir=$TOOLS_BIN/helm-$HELM_VERSION
  if [ ! -x "$hdir/helm" ]; then
    log "building helm $HELM_VERSION from its Go module (first run only; a few minutes)"
    local w; w=$(mktemp -d)
    printf 'module baremetal-ccm.io/hack/helm\n\ngo 1.24\n\nrequire helm.sh/helm/v4 v%s\n' "$HELM_VERSION" >"$w/go.mod"
    printf 'package hack\n\nimport _ "helm.sh/helm/v4/pkg/cmd"\n' >"$w/tools.go"
    mkdir -p "$hdir.tmp"
    GO_LDFLAGS="-s -w -X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION" \
      go_wrapper_build "$w" "$hdir.tmp" helm.sh/helm/v4/cmd/helm
    rm -rf "$hdir" && mv "$hdir.tmp" "$hdir" && rm -rf "$w"
  fi
  HELM_BIN=$hdir/helm
}

# ensure_busybox: the static busybox of the pinned Debian busybox-static package (the sidecar
# image's shell), extracted from the .deb into $TOOLS_BIN/busybox-static-<version>/.
ensure_busybox() {
  local bdir=$TOOLS_BIN/busybox-static-${BUSYBOX_STATIC_DEBIAN_VERSION//:/_}
  if [ ! -x "$bdir/busybox" ]; then
    need_cmd apt-get "busybox-static comes from Debian; hack/image needs apt-get to download it."
    need_cmd dpkg-deb "busybox-static comes from Debian; hack/image needs dpkg-deb to unpack it."
    log "downloading busybox-static $BUSYBOX_STATIC_DEBIAN_VERSION (first run only)"
    local w; w=$(mktemp -d)
    ( cd "$w" && apt-get download -qq "busybox-static=$BUSYBOX_STATIC_DEBIAN_VERSION" >/dev/null 2>&1 ) \
      || ( apt-get update -qq >/dev/null 2>&1 && cd "$w" && apt-get download -qq "busybox-static=$BUSYBOX_STATIC_DEBIAN_VERSION" >/dev/null ) \
      || die "apt-get download busybox-static=$BUSYBOX_STATIC_DEBIAN_VERSION failed (the Debian archive may have moved on: pin the version apt-cache policy busybox-static shows in hack/versions.env)"
    dpkg-deb -x "$w"/busybox-static_*.deb "$w/root" || die "unpacking busybox-static failed"
    mkdir -p "$bdir.tmp"
    cp "$w/root/bin/busybox" "$bdir.tmp/busybox"
    rm -rf "$bdir" && mv "$bdir.tmp" "$bdir" && rm -rf "$w"
  fi
  BUSYBOX_BIN=$bdir/busybox
}

# ensure_imagetool: hack/imagetool (standard library only), built into $TOOLS_BIN keyed by the
# hash of its source, so an edit rebuilds it.
ensure_imagetool() {
  need_cmd go "Install Go 1.24+ (Debian: golang-go, or the upstream tarball)."
  local hash
  hash=$(cat "$HACK_DIR/imagetool/go.mod" "$HACK_DIR/imagetool/main.go" | sha256sum | cut -c1-16)
  IMAGETOOL_BIN=$TOOLS_BIN/imagetool-$hash/imagetool
  if [ ! -x "$IMAGETOOL_BIN" ]; then
    ( cd "$HACK_DIR/imagetool" && CGO_ENABLED=0 go build -trimpath -o "$IMAGETOOL_BIN.tmp" . ) \
      || die "building hack/imagetool failed"
    mv "$IMAGETOOL_BIN.tmp" "$IMAGETOOL_BIN"
  fi
}
