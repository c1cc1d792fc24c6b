#!/usr/bin/env bash
# Node agent overhead: 8 GPUs sampled at 1 Hz through the real NVML code path
# (stand-in pynvml), with attribution, publishing and metrics. Goal: < 1% of one
# core and < 60 MB RSS. Prints JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/gpupool bench agent --gpus "${GPUS:-8}" --seconds "${SECONDS_MEASURED:-30}" --json
