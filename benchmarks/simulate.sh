#!/usr/bin/env bash
# The shipped Philly trace (52,849 jobs) replayed under each policy, timed per policy
# (goal on a 2-core machine: under 5 minutes each), then its JSON metrics (one line:
# the run's parameters and every metric). GPUS sets the size (360 by default: the
# trace's average demand is ~465 GPUs); IDLE_MODEL (owed) and SIGTERM_SAVE (0.5) the
# assumptions; TRACE another trace. The sensitivity table: benchmarks/sensitivity.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
trace="${TRACE:-../shared/traces/philly-2017-09-10.csv}"
gpus="${GPUS:-360}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for policy in static borrow kueue-fair gpupool; do
  start=$(date +%s)
  nice -n 10 .venv/bin/gpupool simulate --trace "$trace" --gpus "$gpus" --policy "$policy" \
    --idle-model "${IDLE_MODEL:-owed}" --sigterm-save "${SIGTERM_SAVE:-0.5}" --json >"$out"
  echo "{\"policy\": \"${policy}\", \"gpus\": ${gpus}, \"wall_s\": $(($(date +%s) - start))}"
  cat "$out"
done
