#!/usr/bin/env bash
# Packs what tests/bench/gpu_run.sh needs on the lent GPU host into one folder (default
# gpu-bundle/, ignored through .git/info/exclude), with ../shared/tools/gpu-bundle.sh. What needs
# no bundled library (gpu_devices_test and liban1_flash_bench.so: CUDA runtime linked
# statically, nothing else) is copied beside them: the bundler stops on those.
#   scripts/gpu-bundle.sh [OUT_DIR] [BUILD_DIR]
set -euo pipefail
out=${1:-gpu-bundle}
build=${2:-build}
rm -rf "$out"
../shared/tools/gpu-bundle.sh "$out" "$build"/bin/{an1d,an1,an1d_with_test_keys,an1-license,gpu_engine_test,gpu_fault_test,engine_bench}
cp "$build"/bin/{gpu_devices_test,liban1_flash_bench.so} "$out/bin/"
