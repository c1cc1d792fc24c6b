#!/usr/bin/env bash
# The operator end to end on a real API server: 500 fake nodes × 8 GPUs; 4,000
# single-GPU GPUJobs at once (seconds until all Running); a team guaranteed 2,000 GPUs
# submits 2,000 jobs (seconds until they run, checkpoint hooks answering at once); the
# operator's RSS with 10,000 GPUJobs. Goals: < 60 s each, < 300 MB. Prints JSON.
# Runs on $KUBECONFIG when set, else on a local control plane started (and deleted) here.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/gpupool bench e2e --json "$@"
