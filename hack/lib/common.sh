# Shared helpers for hack/ scripts. Sourced, never executed.
# shellcheck shell=bash

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_ROOT=$(cd "$HACK_DIR/.." && pwd)
# shellcheck source=hack/versions.env
. "$HACK_DIR/versions.env"

CACHE_ROOT=${BAREMETAL_CCM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baremetal-ccm}
TOOLS_BIN=$CACHE_ROOT/bin
export GOMODCACHE=${GOMODCACHE_OVERRIDE:-$CACHE_ROOT/gomod}
export GOFLAGS=${GOFLAGS:--mod=mod}
export GOTOOLCHAIN=local

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# need_cmd NAME HINT: fail with a message that says how to get NAME.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed. $2"
}

# need_free_space DIR MIB WHAT: fail, saying so, when the file system holding DIR (or its nearest
# existing parent) has less than MIB MiB free; a full disk otherwise surfaces much later as
# something else (the lab's kubelets evicting its pods, a linker killed half-way).
need_free_space() {
  local dir=$1 want=$2 what=$3 free
  while [ ! -e "$dir" ]; do dir=$(dirname "$dir"); done
  free=$(df -Pm "$dir" | awk 'NR == 2 { print $4 }')
  [ "$free" -ge "$want" ] \
    || die "only $free MiB free on the file system of $dir; $what needs at least $want MiB: free some space (old clones, target directories)"
}
