#!/usr/bin/env bash
# Builds the local control plane from Go modules (no Docker, no release
# downloads): kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok,
# kwokctl and helm. Each upstream has a wrapper module next to this script;
# its go.mod pins the version and its go.sum makes the build reproducible.
#
# Binaries land in a cache keyed by version, so a second run builds nothing:
#   ${GPUPOOL_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gpupool/bin}/<name>-<version>
#
# Usage: build.sh [--list] [name...]   (default: the control plane and helm)
# Progress goes to stderr; stdout gets one "<name> <path>" line per binary.
# --list only prints those lines (where each binary is or would be), building nothing.
#
# Versions (the newest patch releases of the requested lines, all build as pinned):
#   Kubernetes v1.36.3, etcd v3.6.16, kwok v0.8.0, helm v3.22.0.
#
# The controllers of the workload kinds gpupool governs are built only when named
# (`controllers` names them all): the default suite does not need them, and they
# cost CI minutes (see tests/cluster/README.md). Tests that run one build it on first use.
#   jobset-controller (sigs.k8s.io/jobset v0.10.1), training-operator
#   (github.com/kubeflow/training-operator v1.8.1), trainer-controller-manager
#   (github.com/kubeflow/trainer/v2 v2.0.0), kuberay-operator
#   (github.com/ray-project/kuberay/ray-operator v1.5.0), kueue (sigs.k8s.io/kueue v0.17.0).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN_DIR=${GPUPOOL_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gpupool/bin}
ALL=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl helm)
CONTROLLERS=(jobset-controller training-operator trainer-controller-manager kuberay-operator kueue)

export GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false"

log() { printf '%s\n' "$*" >&2; }

# The version a wrapper module's go.mod pins for a module.
modver() {
  awk -v m="$2" '
    $1 == m && $2 ~ /^v/ { print $2; exit }
    $1 == "require" && $2 == m { print $3; exit }
  ' "$HERE/$1/go.mod"
}

K8S_VERSION=$(modver kubernetes k8s.io/kubernetes)
ETCD_VERSION=$(modver etcd go.etcd.io/etcd/server/v3)
KWOK_VERSION=$(modver kwok sigs.k8s.io/kwok)
HELM_VERSION=$(modver helm helm.sh/helm/v3)
HELM_CLIENT_GO=$(modver helm k8s.io/client-go)
JOBSET_VERSION=$(modver jobset sigs.k8s.io/jobset)
TRAINING_OPERATOR_VERSION=$(modver training-operator github.com/kubeflow/training-operator)
TRAINER_VERSION=$(modver trainer github.com/kubeflow/trainer/v2)
KUBERAY_VERSION=$(modver kuberay github.com/ray-project/kuberay/ray-operator)
KUEUE_VERSION=$(modver kueue sigs.k8s.io/kueue)

# name -> "wrapper-dir version package"
spec() {
  case $1 in
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl)
      echo "kubernetes $K8S_VERSION k8s.io/kubernetes/cmd/$1" ;;
    etcd) echo "etcd $ETCD_VERSION go.etcd.io/etcd/server/v3" ;;
    kwok | kwokctl) echo "kwok $KWOK_VERSION sigs.k8s.io/kwok/cmd/$1" ;;
    helm) echo "helm $HELM_VERSION helm.sh/helm/v3/cmd/helm" ;;
    jobset-controller) echo "jobset $JOBSET_VERSION sigs.k8s.io/jobset" ;;
    training-operator)
      echo "training-operator $TRAINING_OPERATOR_VERSION github.com/kubeflow/training-operator/cmd/training-operator.v1" ;;
    trainer-controller-manager)
      echo "trainer $TRAINER_VERSION github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager" ;;
    kuberay-operator) echo "kuberay $KUBERAY_VERSION github.com/ray-project/kuberay/ray-operator" ;;
    kueue) echo "kueue $KUEUE_VERSION sigs.k8s.io/kueue/cmd/kueue" ;;
    *) log "build.sh: unknown binary '$1' (known: ${ALL[*]} ${CONTROLLERS[*]})"; exit 2 ;;
  esac
}

k8s_ldflags() {
  local v=${K8S_VERSION#v} key val pkg flags=()
  local major=${v%%.*} rest=${v#*.}
  local -A vars=(
    [gitVersion]=$K8S_VERSION [gitMajor]=$major [gitMinor]=${rest%%.*}
    [gitTreeState]=clean [buildDate]=1970-01-01T00:00:00Z
  )
  for key in "${!vars[@]}"; do
    val=${vars[$key]}
    for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
      flags+=("-X $pkg.$key=$val")
    done
  done
  echo "${flags[*]}"
}

helm_ldflags() {
  local cg=${HELM_CLIENT_GO#v} pkg
  local major=$((${cg%%.*} + 1)) rest=${cg#*.}
  local flags=(
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    "-X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  )
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    flags+=("-X $pkg.k8sVersionMajor=$major" "-X $pkg.k8sVersionMinor=${rest%%.*}")
  done
  echo "${flags[*]}"
}

ldflags() {
  case $1 in
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) echo "-s -w $(k8s_ldflags)" ;;
    helm) echo "-s -w $(helm_ldflags)" ;;
    jobset-controller) echo "-s -w -X sigs.k8s.io/jobset/pkg/version.GitVersion=$JOBSET_VERSION" ;;
    kueue) echo "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" ;;
    *) echo "-s -w" ;;
  esac
}

TICKER=""
stop_ticker() {
  if [[ -n $TICKER ]]; then
    kill "$TICKER" 2>/dev/null || true
    wait "$TICKER" 2>/dev/null || true
    TICKER=""
  fi
}
trap stop_ticker EXIT

build_one() {
  local name=$1 dir version pkg out tmp start
  read -r dir version pkg <<<"$(spec "$name")"
  out="$BIN_DIR/$name-$version"
  if [[ -x $out ]]; then
    log "cached   $name $version"
    return
  fi
  if ! command -v go >/dev/null; then
    log "build.sh: 'go' (1.26 or newer) is needed to build $name; see https://go.dev/doc/install"
    exit 1
  fi
  tmp="$out.tmp.$$"
  start=$SECONDS
  log "building $name $version (package $pkg) ..."
  (while sleep 30; do log "  ... $name: $((SECONDS - start))s"; done) &
  TICKER=$!
  if ! (cd "$HERE/$dir" && go build -trimpath -ldflags "$(ldflags "$name")" -o "$tmp" "$pkg"); then
    stop_ticker
    rm -f "$tmp"
    log "build.sh: building $name $version failed"
    exit 1
  fi
  stop_ticker
  mv -f "$tmp" "$out"
  log "built    $name $version in $((SECONDS - start))s"
}

print_paths() {
  local name dir version pkg
  for name in "$@"; do
    read -r dir version pkg <<<"$(spec "$name")"
    echo "$name $BIN_DIR/$name-$version"
  done
}

main() {
  local list=false
  if [[ ${1-} == --list ]]; then
    list=true
    shift
  fi
  local names=() name total=$SECONDS
  for name in "$@"; do
    if [[ $name == controllers ]]; then names+=("${CONTROLLERS[@]}"); else names+=("$name"); fi
  done
  [[ ${#names[@]} -gt 0 ]] || names=("${ALL[@]}")
  for name in "${names[@]}"; do spec "$name" >/dev/null; done
  if $list; then
    print_paths "${names[@]}"
    return
  fi
  mkdir -p "$BIN_DIR"
  # One build at a time per cache, so concurrent callers wait instead of racing.
  if command -v flock >/dev/null; then
    exec 9>"$BIN_DIR/.lock"
    if ! flock -n 9; then
      log "waiting for another build in $BIN_DIR to finish ..."
      flock 9
    fi
  fi
  for name in "${names[@]}"; do build_one "$name"; done
  log "binaries in $BIN_DIR ($((SECONDS - total))s)"
  print_paths "${names[@]}"
}

main "$@"
