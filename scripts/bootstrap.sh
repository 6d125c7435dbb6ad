#!/usr/bin/env bash
# Installs the Debian 12 packages AN1 Engine needs to build, run, check and test.
# Idempotent: only missing packages are installed. Needs root or sudo when something is missing.
# The CUDA toolkit is not a Debian package: when /usr/local/cuda exists the build uses it,
# otherwise the project builds CPU-only.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libspdlog-dev prometheus-cpp-dev libgtest-dev libssl-dev libcli11-dev
  python3-numpy clang-14 libclang-rt-14-dev prometheus yamllint gnuplot-nox
  python3-grpcio python3-protobuf python3-torch  # the Python client (torch: optional, CPU)
  clang-format shellcheck
  # scripts/check-deploy.sh: kubectl comes with these machines (its package owns /usr/bin/kubectl,
  # so Debian's kubernetes-client cannot be installed beside it), and so does npm with their
  # NodeSource nodejs (Debian's npm package conflicts with it); on plain Debian 12 add
  # kubernetes-client and npm by hand.
  docker-compose nodejs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "bootstrap: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bootstrap: done"
