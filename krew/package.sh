#!/usr/bin/env bash
# Builds the krew archive of `kubectl gpupool`: the launcher (kubectl-gpupool) and the
# gpupool wheel, platform-independent (the launcher installs the wheel into a private
# virtualenv on first use). .krew.yaml at the repository root names it per platform.
#
# Usage: krew/package.sh [--wheel FILE] [OUT_DIR]   (default OUT_DIR: dist)
# Prints the archive's path and its sha256.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
wheel=""
if [[ ${1-} == --wheel ]]; then
  wheel=$2
  shift 2
fi
out=$(mkdir -p "${1:-$ROOT/dist}" && cd "${1:-$ROOT/dist}" && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
if [[ -z $wheel ]]; then
  python3 -m pip wheel --quiet --no-deps "$ROOT" -w "$stage/wheel"
  wheel=$(ls "$stage"/wheel/gpupool-"$version"-*.whl)
fi
mkdir "$stage/plugin"
cp "$HERE/kubectl-gpupool" "$wheel" "$stage/plugin/"
archive="$out/kubectl-gpupool-v$version.tar.gz"
tar -czf "$archive" -C "$stage/plugin" .
echo "$archive $(sha256sum "$archive" | cut -d' ' -f1)"
