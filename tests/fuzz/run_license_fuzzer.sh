#!/usr/bin/env bash
# Builds the license token fuzzer with clang-14's libFuzzer (plus ASan and UBSan) and runs it for
# AN1_FUZZ_SECONDS (default 20) from the seed corpus. Exit 77 (ctest: skipped) without clang-14.
#   run_license_fuzzer.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: run_license_fuzzer.sh BUILD_DIR}/fuzz
if ! command -v clang++-14 >/dev/null; then
  echo "skipped: clang++-14 is not installed (scripts/bootstrap.sh installs it)"
  exit 77
fi
mkdir -p "$out/corpus"
cp -n "$here"/corpus/* "$out/corpus/" 2>/dev/null || true
clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I"$root" "$here/license_token_fuzzer.cc" "$root/engine/license/token.cc" \
  "$root/engine/license/ed25519.cc" "$root/engine/status.cc" -lcrypto -o "$out/license_token_fuzzer"
"$out/license_token_fuzzer" -max_total_time="${AN1_FUZZ_SECONDS:-20}" -max_len=8192 \
  -print_final_stats=1 "$out/corpus"
