#!/usr/bin/env bash
# One full plan() over synthetic clusters of N nodes × 8 GPUs with M jobs (running and
# pending mix) across 50 teams. Goal on a 2-core machine: 1,000 nodes / 10,000 jobs
# under 100 ms at p99, cost growing no faster than n·log n. Prints one JSON line a size.
set -euo pipefail
cd "$(dirname "$0")/.."
for size in 100:1000 1000:10000 5000:50000; do
  .venv/bin/gpupool bench planner --nodes "${size%%:*}" --jobs "${size##*:}" --json
done
