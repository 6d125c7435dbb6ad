#!/usr/bin/env bash
# Builds the request fuzzer (request_fuzzer.cc) with clang-14's libFuzzer plus ASan and UBSan,
# against the protobuf code the build generated in BUILD_DIR, and runs it for AN1_FUZZ_SECONDS
# (default 20) from the seed corpus. Exit 77 (ctest: skipped) without clang-14.
#   run_request_fuzzer.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:?usage: run_request_fuzzer.sh BUILD_DIR}
out=$build/fuzz
if ! command -v clang++-14 >/dev/null; then
  echo "skipped: clang++-14 is not installed (scripts/bootstrap.sh installs it)"
  exit 77
fi
mkdir -p "$out/request_corpus"
cp -n "$here"/request_corpus/* "$out/request_corpus/" 2>/dev/null || true
read -r -a libs <<<"$(pkg-config --cflags --libs protobuf grpc++)"
clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I"$root" -I"$build/proto/gen" -I"$build/server/gen" \
  "$here/request_fuzzer.cc" "$root/server/convert.cc" \
  "$root/engine/validation.cc" "$root/engine/paged_validation.cc" \
  "$root/engine/tensor_checks.cc" "$root/engine/broadcast.cc" "$root/engine/status.cc" \
  "$root/engine/dtype.cc" "$root/engine/tensor.cc" \
  "$build/proto/gen/an1/v1/an1.pb.cc" "$build/proto/gen/an1/v1/an1.grpc.pb.cc" \
  "${libs[@]}" -o "$out/request_fuzzer"
"$out/request_fuzzer" -max_total_time="${AN1_FUZZ_SECONDS:-20}" -max_len=4096 -rss_limit_mb=2048 \
  -print_final_stats=1 "$out/request_corpus"
