#!/usr/bin/env bash
# Configures and builds with the `release` preset (CUDA kernels too when /usr/local/cuda exists).
# Extra arguments go to `cmake --preset`, e.g. scripts/build.sh -DAN1_ENABLE_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release "$@" >/dev/null
cmake --build --preset release -j "$(nproc)"
