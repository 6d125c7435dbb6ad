#!/usr/bin/env bash
# Runs inside the Dockerfile's build stages (Debian 12 or Ubuntu 24.04 bases):
#   scripts/image-build.sh deps            # the packages the build needs
#   scripts/image-build.sh build [ARGS]    # configure (extra cmake ARGS), build, install to
#                                          # /opt/an1, list the runtime packages the binaries need
# The runtime list (/opt/an1/runtime-packages.txt) is read off the binaries with ldd and dpkg,
# so the runtime stage installs exactly what the build linked, whatever the base's package names.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
case "${1:-}" in
  deps)
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libspdlog-dev prometheus-cpp-dev libssl-dev libcli11-dev >/dev/null
    rm -rf /var/lib/apt/lists/*
    ;;
  build)
    shift
    cmake -S /src -B /tmp/build -G Ninja -DCMAKE_BUILD_TYPE=Release -DAN1_BUILD_TESTS=OFF "$@"
    cmake --build /tmp/build -j "$(nproc)"
    cmake --install /tmp/build --prefix /opt/an1
    # The package of every shared library the binaries load (merged /usr: try both spellings).
    for lib in $(ldd /opt/an1/bin/* | awk '/=> \//{print $3}' | sort -u); do
      real=$(realpath "$lib")
      dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null ||
        dpkg -S "/usr$real" 2>/dev/null || { echo "image-build: no package owns $lib" >&2; exit 1; }
    done | cut -d: -f1 | sort -u >/opt/an1/runtime-packages.txt
    echo "image-build: runtime packages: $(tr '\n' ' ' </opt/an1/runtime-packages.txt)"
    ;;
  *)
    echo "usage: scripts/image-build.sh deps|build [cmake args]" >&2
    exit 2
    ;;
esac
