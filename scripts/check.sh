#!/usr/bin/env bash
# Static checks CI runs before the tests (.ci/run): every C++/CUDA file formatted by the
# repository's .clang-format, no include that runs up the layers, and every shell script clean
# under ShellCheck. Prints what is wrong and exits 1; exits 0 when all three pass.
#
# The layers (docs/ARCHITECTURE.md): kernels -> engine -> server, each including only itself and
# what is below it; client includes only itself and the wire contract. The one header of proto/
# below the engine is the element encoding proto/an1/v1/float16.h (header-only, no protobuf).
set -euo pipefail
cd "$(dirname "$0")/.."
failed=0

echo "check: clang-format"
mapfile -t sources < <(git ls-files '*.cc' '*.h' '*.cu' '*.cuh')
if ! clang-format --dry-run --Werror "${sources[@]}"; then
  echo "check: run clang-format -i on the files above" >&2
  failed=1
fi

echo "check: layering"
# allowed_includes DIR PATTERN: every project include (#include "...") in DIR must match PATTERN.
allowed_includes() {
  local dir=$1 pattern=$2 bad
  bad=$(git ls-files "$dir" | grep -E '\.(cc|h|cu|cuh|in)$' |
    xargs grep -nE '^#include "' | grep -vE "#include \"($pattern)" || true)
  if [ -n "$bad" ]; then
    echo "$bad"
    echo "check: $dir may include only: $pattern" >&2
    failed=1
  fi
}
allowed_includes kernels 'kernels/'
allowed_includes engine 'engine/|kernels/|proto/an1/v1/float16\.h'
allowed_includes server 'server/|engine/|kernels/|an1/v1/|grpc/|license_keys\.h'
allowed_includes client 'client/|an1/v1/|grpc/|proto/an1/v1/float16\.h'

echo "check: shellcheck"
mapfile -t scripts < <(git ls-files '*.sh' .ci/run)
if ! shellcheck "${scripts[@]}"; then
  failed=1
fi

if [ "$failed" -ne 0 ]; then
  echo "check: FAILED" >&2
  exit 1
fi
echo "check: all passed"
