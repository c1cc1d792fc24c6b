#!/usr/bin/env bash
# End-to-end on kind, for machines with Docker (it cannot run on the project's
# Docker-less development and CI machines; see README.md):
#   1. create a kind cluster and advertise nvidia.com/gpu on its workers;
#   2. build the image, load it into kind, `helm install` the chart with it;
#   3. check the installed operator: it leads, serves its webhook, and the webhook
#      refuses a GPUJob from a namespace no team owns;
#   4. uninstall it, install kwok (fake nodes and pods, as on the local control plane)
#      and run the project's integration suite against the cluster.
# Environment: CLUSTER (gpupool-e2e), GPUS_PER_NODE (8), KEEP=1 keeps the cluster,
# PYTEST_ARGS (passed on to pytest), KWOK_VERSION (v0.8.0).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
HERE="$ROOT/tests/e2e/kind"
CLUSTER="${CLUSTER:-gpupool-e2e}"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
IMAGE="gpupool:e2e"
RELEASE="gpupool"
NAMESPACE="gpupool-system"
WORK="$(mktemp -d)"
export KUBECONFIG="$WORK/kubeconfig"

need() { command -v "$1" >/dev/null || { echo "run.sh needs $1 on PATH" >&2; exit 1; }; }
need docker
need kind
need kubectl
HELM="$(command -v helm || true)"
if [[ -z "$HELM" ]]; then
  HELM="$(bash "$ROOT/tests/cluster/build.sh" --list helm | awk '{print $2}')"
  [[ -x "$HELM" ]] || { echo "run.sh needs helm (on PATH, or: make bins)" >&2; exit 1; }
fi
PYTHON="$ROOT/.venv/bin/python"
[[ -x "$PYTHON" ]] || make -C "$ROOT" venv

cleanup() {
  if [[ "${KEEP:-0}" == 1 ]]; then
    echo "cluster kept: export KUBECONFIG=$KUBECONFIG  (kind delete cluster --name $CLUSTER)"
  else
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

echo "== 1. kind cluster $CLUSTER with $GPUS_PER_NODE advertised GPUs per worker"
kind create cluster --name "$CLUSTER" --config "$HERE/kind.yaml" --kubeconfig "$KUBECONFIG" --wait 120s
for node in $(kubectl get nodes -l gpupool.io/pool=kind-e2e -o name); do
  # An extended resource the kubelet does not manage: it keeps what the status says.
  kubectl patch "$node" --subresource=status --type=json \
    -p "[{\"op\":\"add\",\"path\":\"/status/capacity/nvidia.com~1gpu\",\"value\":\"$GPUS_PER_NODE\"}]"
done
kubectl wait --for=jsonpath='{.status.allocatable.nvidia\.com/gpu}'="$GPUS_PER_NODE" \
  nodes -l gpupool.io/pool=kind-e2e --timeout=60s

echo "== 2. image $IMAGE, helm install"
docker build -t "$IMAGE" "$ROOT"
kind load docker-image "$IMAGE" --name "$CLUSTER"
# No NVML in kind: the agent DaemonSet is left out (the suite runs fake agents).
"$HELM" install "$RELEASE" "$ROOT/helm/gpupool" -n "$NAMESPACE" --create-namespace \
  --set image.repository=gpupool --set image.tag=e2e --set image.pullPolicy=Never \
  --set agent.enabled=false --set operator.gpuNodeSelector=gpupool.io/pool=kind-e2e \
  --wait --timeout 5m

echo "== 3. the installed operator leads and its webhook answers"
leader=""
for _ in $(seq 1 60); do
  leader="$(kubectl -n "$NAMESPACE" get pods -l gpupool.io/webhook=serving -o name)"
  [[ -n "$leader" ]] && break
  sleep 2
done
[[ -n "$leader" ]] || { echo "no operator replica took the lead" >&2; exit 1; }
echo "leading: $leader"
kubectl create namespace no-team
refused=""
for _ in $(seq 1 30); do
  if ! output="$(kubectl create -f - 2>&1 <<YAML
apiVersion: gpupool.io/v1alpha1
kind: GPUJob
metadata: {name: orphan, namespace: no-team}
spec:
  gpusPerWorker: 1
  workers: 1
  template: {spec: {containers: [{name: main, image: busybox}]}}
YAML
)"; then
    if grep -q 'denied the request: spec.team' <<<"$output"; then refused="$output"; break; fi
  else
    kubectl -n no-team delete gpujob orphan --wait=false
  fi
  sleep 2
done
[[ -n "$refused" ]] || { echo "the webhook did not refuse the GPUJob: $output" >&2; exit 1; }
echo "refused as expected: $refused"
kubectl delete namespace no-team --wait=false
# Its webhook judges every GPUJob by its own pool: out of the suite's way.
"$HELM" uninstall "$RELEASE" -n "$NAMESPACE" --wait

echo "== 4. kwok in the cluster, then the integration suite"
kubectl apply -f "https://github.com/kubernetes-sigs/kwok/releases/download/$KWOK_VERSION/kwok.yaml"
kubectl -n kube-system rollout status deployment/kwok-controller --timeout=120s
"$PYTHON" -c 'from gpupool.devcluster import stages; print(stages.manifest())' | kubectl apply -f -
# The API server runs in a container: it reaches webhooks on this machine through the
# kind network's gateway.
GATEWAY="$(docker network inspect kind -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' \
  | tr ' ' '\n' | grep -E '^[0-9]+\.' | head -n 1)"
cd "$ROOT"
GPUPOOL_TEST_KUBECONFIG="$KUBECONFIG" GPUPOOL_TEST_WEBHOOK_HOST="$GATEWAY" \
  "$ROOT/.venv/bin/pytest" tests/integration ${PYTEST_ARGS:-}
