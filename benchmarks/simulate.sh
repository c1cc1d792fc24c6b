#!/usr/bin/env bash
# The shipped Philly trace (52,849 jobs) replayed on a contended cluster under each
# policy, timed per policy (goal on a 2-core machine: under 5 minutes each), then its
# JSON metrics. GPUS sets the size: 560 by default, where the trace's average demand
# (~465 GPUs) is ~83% load; TRACE another trace.
set -euo pipefail
cd "$(dirname "$0")/.."
trace="${TRACE:-../shared/traces/philly-2017-09-10.csv}"
gpus="${GPUS:-560}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for policy in static borrow gpupool; do
  start=$(date +%s)
  .venv/bin/gpupool simulate --trace "$trace" --gpus "$gpus" --policy "$policy" --json >"$out"
  echo "{\"policy\": \"${policy}\", \"gpus\": ${gpus}, \"wall_s\": $(($(date +%s) - start))}"
  cat "$out"
done
