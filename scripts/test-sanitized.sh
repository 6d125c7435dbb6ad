#!/usr/bin/env bash
# The CPU test suite under AddressSanitizer and UBSan (the `debug` preset, CUDA off, build-debug/):
# every test that needs no GPU, with any sanitizer report failing it. About 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset debug -DAN1_ENABLE_CUDA=OFF >/dev/null
cmake --build --preset debug -j "$(nproc)"
# halt_on_error: a report fails the test that caused it; leaks are reported at exit too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# The soak runs in the release suite only: ASan's quarantine makes resident memory grow by design.
ctest --preset debug -j "$(nproc)" -E '^soak_test$'
