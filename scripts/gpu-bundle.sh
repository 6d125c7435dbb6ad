#!/usr/bin/env bash
# Packs the executables a GPU host needs into one relocatable folder, with the shared libraries
# they load that such a host lacks (gRPC, protobuf, abseil, spdlog, fmt, prometheus-cpp, ...), so
# that a build made on Debian 12 runs on a GPU host of another distribution (glibc 2.36 or newer)
# that has CUDA and a driver but no gRPC. The C/C++ runtimes, the NVIDIA driver libraries and the
# CUDA libraries are left out: the host provides them (CUDA from /usr/local/cuda/lib64).
#
#   scripts/gpu-bundle.sh [OUT_DIR] [BUILD_DIR]      # default: gpu-bundle build
#   OUT_DIR/run NAME [ARGS...]                       # on the GPU host: runs OUT_DIR/bin/NAME
#
# Executables that are not built (a CPU-only build has no GPU benchmark library) are skipped
# with a note.
set -euo pipefail
out=${1:-gpu-bundle}
build=${2:-build}
programs=(an1d an1 an1d_with_test_keys an1-license gpu_devices_test gpu_engine_test gpu_paged_test
  gpu_fault_test attention_kernel_test engine_bench liban1_flash_bench.so)
# Loaded from the host, never bundled: the C and C++ runtimes, the driver, CUDA.
host_provided='/(ld-linux[^/]*|libc|libm|libpthread|libdl|librt|libutil|libresolv|libgcc_s|libstdc\+\+|libcuda|libnvidia-[^/]*|libcudart|libcublas[^/]*|libcudnn[^/]*)\.so'

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
for name in "${programs[@]}"; do
  path="$build/bin/$name"
  if [ ! -e "$path" ]; then
    echo "gpu-bundle: $name not built, skipped" >&2
    continue
  fi
  cp -L "$path" "$out/bin/"
  # ldd lists "name => /path (address)"; statically linked files list none.
  { ldd "$path" 2>/dev/null || true; } | awk '/=> \//{print $3}' | { grep -v -E "$host_provided" || true; } |
    while read -r lib; do
      cp -L -n "$lib" "$out/lib/"
    done
done
# The Python client package with its generated stubs, when built (it needs grpcio and protobuf
# for Python on the host, which the GPU hosts may lack: carry them as wheels there).
if [ -d "$build/python/an1_cache" ]; then
  cp -r "$build/python" "$out/python"
fi
cat >"$out/run" <<'RUN'
#!/usr/bin/env bash
# Runs a bundled executable with the bundled libraries first on the library path.
here=$(cd "$(dirname "$0")" && pwd)
name=$1
shift
export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$here/bin/$name" "$@"
RUN
chmod +x "$out/run"
echo "gpu-bundle: $(find "$out/bin" -type f | wc -l) program(s), $(find "$out/lib" -type f | wc -l) libraries in $out ($(du -sh "$out" | cut -f1))"
