#!/usr/bin/env bash
# `make bench`: every benchmark, each printing its own figures. Run on demand only.
set -euo pipefail
cd "$(dirname "$0")/.."
for bench in planner agent simulate e2e; do
  script="benchmarks/${bench}.sh"
  if [[ -f "$script" ]]; then
    echo "== ${bench}"
    bash "$script"
  fi
done
