#!/usr/bin/env bash
# Fresh machine to passing tests: installs what is missing, builds, runs every test that does not
# need a GPU. On a GPU host, `ctest --preset gpu` runs the GPU-labelled ones.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/build.sh
ctest --preset release -j "$(nproc)"
