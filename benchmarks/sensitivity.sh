#!/usr/bin/env bash
# The sensitivity table of docs/simulator.md: every policy at each cluster size ×
# idle model × fraction of jobs that save on SIGTERM, one JSON document per run (its
# parameters and every metric) in OUT/, then the table (benchmarks/sensitivity.py).
# `static` never preempts, so neither assumption moves it: it runs once per size.
#
# Period: the held-out week 2017-10-09 .. 2017-10-16 (12,751 jobs; its submitted
# demand, ~455 GPUs on average, is close to the whole trace's ~465); no test uses it.
# SINCE, UNTIL, SIZES, SAVES (the SIGTERM-save fractions, default "0 0.5 1"),
# PARALLEL (runs at once, default 2), OUT override; a run whose file in OUT is
# complete is not run again. Niced: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
export TRACE="${TRACE:-../shared/traces/philly-2017-09-10.csv}"
export SINCE="${SINCE:-2017-10-09}" UNTIL="${UNTIL:-2017-10-16}"
export OUT="${OUT:-sensitivity}" GPUPOOL="${GPUPOOL:-.venv/bin/gpupool}"
mkdir -p "$OUT"
runs=()
for gpus in ${SIZES:-300 360 420 560}; do
  runs+=("$gpus static owed 0.5")
  for idle in owed passes; do
    for save in ${SAVES:-0 0.5 1}; do
      runs+=("$gpus borrow,kueue-fair,gpupool $idle $save")
    done
  done
done
start=$(date +%s)
printf '%s\n' "${runs[@]}" | xargs -P "${PARALLEL:-2}" -L 1 bash -c '
  file="$OUT/$0-${1//,/+}-$2-$3.json"
  [ -s "$file" ] && exit 0
  begin=$(date +%s)
  nice -n 10 "$GPUPOOL" simulate --trace "$TRACE" --since "$SINCE" --until "$UNTIL" \
    --gpus "$0" --policy "$1" --idle-model "$2" --sigterm-save "$3" --json >"$file"
  echo "$file: $(($(date +%s) - begin)) s" >&2
'
echo "sweep wall time: $(($(date +%s) - start)) s" >&2
.venv/bin/python benchmarks/sensitivity.py "$OUT"
