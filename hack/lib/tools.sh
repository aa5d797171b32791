# Builds the Go-based test and lab components from their Go modules at the versions pinned in
# hack/versions.env, caching the binaries under $CACHE_ROOT/bin/<name>-<version>/.
# Sourced after common.sh.
# shellcheck shell=bash

# go_wrapper_build DIR OUT PKG...: build the main package(s) PKG inside the wrapper module in DIR
# into the directory OUT, all in one `go build` (shared packages compiled once, links beside
# compiles), with GO_LDFLAGS (default: stripped) as the linker flags and GO_EXTRA_LDFLAGS
# (optional, e.g. the Kubernetes version stamp) appended.
go_wrapper_build() {
  local dir=$1 out=$2; shift 2
  local ldflags=${GO_LDFLAGS:--s -w}
  ( cd "$dir" && go mod tidy >"$dir/tidy.log" 2>&1 ) || { cat "$dir/tidy.log" >&2; die "go mod tidy failed in $dir"; }
  log "go build $*"
  ( cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags ${GO_EXTRA_LDFLAGS:-}" -o "$out/" "$@" ) \
    || die "building $* failed (needs Go and the Go module proxy)"
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

# The Go-built components other than GoBGP — everything the pinned k8s.io/kubernetes module
# builds (kube-apiserver and kubeadm for the tests; kubelet, kube-proxy, kube-controller-manager,
# kube-scheduler and kubectl for the lab), etcd and helm — come from ONE wrapper module and ONE
# `go build`: one module graph, so every package they share (client-go, apimachinery, gRPC,
# etcd's client, ...) is compiled once, and the linker runs beside the compiler. Building them
# one module at a time cost a cold machine ~12 minutes more (docs/development.md). Each binary
# lands in the directory of its own name and version under $TOOLS_BIN, where the test rig looks.
KUBE_COMPONENTS=(kube-apiserver kubeadm kubelet kube-proxy kube-controller-manager kube-scheduler kubectl)

# go_tool_dirs: the cache directories of the combined build.
go_tool_dirs() {
  KUBE_BIN=$TOOLS_BIN/kubernetes-$KUBERNETES_VERSION
  ETCD_DIR=$TOOLS_BIN/etcd-$ETCD_VERSION
  HELM_DIR=$TOOLS_BIN/helm-$HELM_VERSION
}

# go_tools_wrapper_module DIR IMPORT...: write the wrapper module that requires k8s.io/kubernetes
# (every staging module pinned to its published twin, as upstream documents for depending on
# k8s.io/kubernetes), etcd's server and helm at their pinned versions, and imports IMPORT(s).
go_tools_wrapper_module() {
  local w=$1; shift
  local gomod
  gomod=$(cd "$w" && go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@v$KUBERNETES_VERSION"
  local staging="0.${KUBERNETES_VERSION#1.}"
  {
    echo "module baremetal-ccm.io/hack/gotools"
    echo
    echo "go 1.24"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes v$KUBERNETES_VERSION"
    echo "	go.etcd.io/etcd/server/v3 v$ETCD_VERSION"
    echo "	helm.sh/helm/v4 v$HELM_VERSION"
    echo ")"
    echo
    sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#replace \1 => \1 v'"$staging"'#p' "$gomod"
  } >"$w/go.mod"
  {
    printf 'package hack\n\nimport (\n'
    local i
    for i in "$@"; do printf '\t_ "%s"\n' "$i"; done
    printf ')\n'
  } >"$w/tools.go"
}

# ensure_go_tools: build whichever of those binaries is missing, all in one `go build`, into a
# scratch directory, then move each into place (an interrupted build never leaves a half-written
# binary that the -x tests would accept). Sets KUBE_BIN, ETCD_BIN, HELM_BIN, KUBE_APISERVER_BIN
# and KUBEADM_BIN.
ensure_go_tools() {
  need_cmd go "Install Go 1.24+ (Debian: golang-go, or the upstream tarball)."
  go_tool_dirs
  local c imports=() pkgs=() missing=()
  for c in "${KUBE_COMPONENTS[@]}"; do
    [ -x "$KUBE_BIN/$c" ] && continue
    missing+=("$c")
    pkgs+=("k8s.io/kubernetes/cmd/$c")
    case $c in
      kubectl) imports+=("k8s.io/kubectl/pkg/cmd") ;;  # cmd/kubectl is a main package
      *) imports+=("k8s.io/kubernetes/cmd/$c/app") ;;
    esac
  done
  if [ ! -x "$ETCD_DIR/etcd" ]; then
    missing+=(etcd); pkgs+=(go.etcd.io/etcd/server/v3); imports+=(go.etcd.io/etcd/server/v3/etcdmain)
  fi
  if [ ! -x "$HELM_DIR/helm" ]; then
    missing+=(helm); pkgs+=(helm.sh/helm/v4/cmd/helm); imports+=(helm.sh/helm/v4/pkg/cmd)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "building ${missing[*]} (Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION) from their Go modules in one build (first run only; ~15 min on 2 cores)"
    local w; w=$(mktemp -d)
    go_tools_wrapper_module "$w" "${imports[@]}"
    mkdir -p "$w/out"
    # The -X flags of packages a binary does not link are ignored, so one set serves all.
    GO_LDFLAGS="-s -w -X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION" \
      GO_EXTRA_LDFLAGS=$(kube_version_ldflags) go_wrapper_build "$w" "$w/out" "${pkgs[@]}"
    # etcd's main package is the module root (.../server/v3); go names its binary after the last
    # element that is not a major-version suffix.
    [ -e "$w/out/server" ] && mv "$w/out/server" "$w/out/etcd"
    [ -e "$w/out/v3" ] && mv "$w/out/v3" "$w/out/etcd"
    mkdir -p "$KUBE_BIN" "$ETCD_DIR" "$HELM_DIR"
    for c in "${missing[@]}"; do
      case $c in
        etcd) mv "$w/out/etcd" "$ETCD_DIR/etcd" ;;
        helm) mv "$w/out/helm" "$HELM_DIR/helm" ;;
        *) mv "$w/out/$c" "$KUBE_BIN/$c" ;;
      esac
    done
    rm -rf "$w"
  fi
  ETCD_BIN=$ETCD_DIR/etcd
  HELM_BIN=$HELM_DIR/helm
  KUBEADM_BIN=$KUBE_BIN/kubeadm
  KUBE_APISERVER_BIN=$KUBE_BIN/kube-apiserver
  # KUBEBUILDER_ASSETS, when set, supplies the tests' kube-apiserver and etcd instead.
  if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
    [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ] \
      || die "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks kube-apiserver or etcd; unset it to use the built ones"
    KUBE_APISERVER_BIN=$KUBEBUILDER_ASSETS/kube-apiserver
    ETCD_BIN=$KUBEBUILDER_ASSETS/etcd
  fi
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

# ensure_metallb: MetalLB's controller and speaker from the pinned go.universe.tf/metallb module
# (one build of both), and its CRDs (config/crd/bases of the same module) beside them in crds/.
ensure_metallb() {
  need_cmd go "Install Go 1.24+ (Debian: golang-go, or the upstream tarball)."
  local mdir=$TOOLS_BIN/metallb-$METALLB_VERSION
  if [ ! -x "$mdir/controller" ] || [ ! -x "$mdir/speaker" ] || [ ! -d "$mdir/crds" ]; then
    log "building MetalLB's controller and speaker $METALLB_VERSION from its Go module (first run only)"
    local w; w=$(mktemp -d)
    printf 'module baremetal-ccm.io/hack/metallb\n\ngo 1.24\n\nrequire go.universe.tf/metallb v%s\n\nreplace github.com/metallb/frr-k8s => github.com/metallb/frr-k8s v%s\n' \
      "$METALLB_VERSION" "$METALLB_FRR_K8S_VERSION" >"$w/go.mod"
    printf 'package hack\n\nimport (\n\t_ "go.universe.tf/metallb/controller"\n\t_ "go.universe.tf/metallb/speaker"\n)\n' >"$w/tools.go"
    rm -rf "$mdir.tmp" && mkdir -p "$mdir.tmp"
    go_wrapper_build "$w" "$mdir.tmp" go.universe.tf/metallb/controller go.universe.tf/metallb/speaker
    local moddir
    moddir=$(cd "$w" && go mod download -json "go.universe.tf/metallb@v$METALLB_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
    [ -d "$moddir/config/crd/bases" ] || die "MetalLB $METALLB_VERSION's module has no config/crd/bases"
    mkdir -p "$mdir.tmp/crds" && cp "$moddir"/config/crd/bases/*.yaml "$mdir.tmp/crds/"
    rm -rf "$mdir" && mv "$mdir.tmp" "$mdir" && rm -rf "$w"
  fi
  METALLB_CONTROLLER_BIN=$mdir/controller
  METALLB_SPEAKER_BIN=$mdir/speaker
}

# ensure_kwok: kwok (sigs.k8s.io/kwok cmd/kwok) from its pinned Go module: the scale rig's
# stand-in for kubelets, keeping fake Nodes Ready with heartbeats (tests/src/kwok.rs).
ensure_kwok() {
  need_cmd go "Install Go 1.24+ (Debian: golang-go, or the upstream tarball)."
  local kdir=$TOOLS_BIN/kwok-$KWOK_VERSION
  if [ ! -x "$kdir/kwok" ]; then
    log "building kwok $KWOK_VERSION from its Go module (first run only)"
    local w; w=$(mktemp -d)
    printf 'module baremetal-ccm.io/hack/kwok\n\ngo 1.24\n\nrequire sigs.k8s.io/kwok v%s\n' "$KWOK_VERSION" >"$w/go.mod"
    printf 'package hack\n\nimport _ "sigs.k8s.io/kwok/cmd/kwok"\n' >"$w/tools.go"
    rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp"
    go_wrapper_build "$w" "$kdir.tmp" sigs.k8s.io/kwok/cmd/kwok
    rm -rf "$kdir" && mv "$kdir.tmp" "$kdir" && rm -rf "$w"
  fi
  KWOK_BIN=$kdir/kwok
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
