#!/usr/bin/env bash
# Builds the Dockerfile's images with podman and checks that they serve: on a Debian 12 base made
# here with debootstrap (no registry needed), the `cpu` target and the `cuda` target (its devel
# base is the same Debian base with this machine's CUDA toolkit mounted at /usr/local/cuda for the
# build: the toolkit is not a Debian package). Each container is started, asked for health
# through the image's own HEALTHCHECK, sent an attention request, sent SIGTERM while a long
# request runs, and must drain (the request answered, exit 0) within the stop timeout.
#
#   scripts/image-check.sh [cpu] [cuda]     # default: both; needs root (apt, podman)
#
# Takes about 8 minutes on a 2-core machine from nothing (under 5 with the package layers cached); the
# base image is kept between runs (image-check/ and localhost/an1-base:debian12).
set -euo pipefail
cd "$(dirname "$0")/.."
targets=${*:-cpu cuda}
base=localhost/an1-base:debian12
start=$(date +%s)
# Sandboxed CI machines refuse crun's cgroup setup (cgroup v1/v2 hybrid) and raising resource
# limits in a container's init: runc, with limits at or under the host's.
runtime=(--runtime runc)
limits=(--ulimit nofile=16384:16384 --ulimit nproc=8192:8192)
log() { echo "image-check [$(($(date +%s) - start)) s]: $*"; }

missing=()
for p in podman debootstrap runc; do command -v "$p" >/dev/null || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman \
    debootstrap runc uidmap fuse-overlayfs slirp4netns >/dev/null
fi

if ! podman image exists "$base"; then
  log "debootstrap of Debian 12 (minbase)"
  rm -rf image-check/rootfs
  mkdir -p image-check
  debootstrap --variant=minbase bookworm image-check/rootfs http://deb.debian.org/debian >/dev/null
  # The archive's security and updates suites too, as the official image has them.
  printf 'deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
    >image-check/rootfs/etc/apt/sources.list
  tar -C image-check/rootfs -c . | podman import - "$base" >/dev/null
  rm -rf image-check/rootfs
fi

# `--format docker`: OCI images have no HEALTHCHECK, and the check below uses the image's own.
build() {
  local target=$1
  shift
  log "building the $target image"
  podman "${runtime[@]}" build "${limits[@]}" --format docker --network host --target "$target" \
    -t "an1-engine:check-$target" "$@" . >"image-check/build-$target.log" 2>&1 || {
    tail -40 "image-check/build-$target.log"
    return 1
  }
}

check() {
  local target=$1 port=$2
  local name="an1-check-$target" image="an1-engine:check-$target"
  podman rm -f "$name" >/dev/null 2>&1 || true
  # A non-default port: the image's health check must follow --listen.
  podman "${runtime[@]}" run -d "${limits[@]}" --name "$name" --network host --shm-size 1g "$image" \
    --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$((port + 1))" >/dev/null
  local healthy=""
  for _ in $(seq 60); do
    if podman "${runtime[@]}" healthcheck run "$name" >/dev/null 2>&1; then
      healthy=yes
      break
    fi
    sleep 1
  done
  [ -n "$healthy" ] || { podman logs "$name"; log "$target: never healthy"; return 1; }
  log "$target: healthy (the image's HEALTHCHECK on port $port)"
  podman "${runtime[@]}" exec "$name" an1 --server "127.0.0.1:$port" info | head -5
  podman "${runtime[@]}" exec "$name" an1 --server "127.0.0.1:$port" attention --batch-size 2 --n-heads 4 \
    --n-kv-heads 2 --seq-len 37 --kv-seq-len 53 --head-dim 64 --dtype fp16 | head -4
  curl -sf "http://127.0.0.1:$((port + 1))/metrics" | grep -m1 '^an1_requests_total' ||
    { log "$target: no request counted on /metrics"; return 1; }
  # A request that runs a few seconds on the CPU baseline, then SIGTERM: it must be answered and
  # an1d exit 0 well inside the 45 s stop timeout (its drain grace is 30 s).
  podman "${runtime[@]}" exec "$name" an1 --server "127.0.0.1:$port" attention --batch-size 2 --n-heads 16 \
    --seq-len 2048 --head-dim 128 --dtype fp32 --backend baseline >"image-check/drain-$target.log" 2>&1 &
  local request=$!
  sleep 1
  # The request must still be running when SIGTERM comes, or no drain is exercised.
  kill -0 "$request" 2>/dev/null || { log "$target: the long request ended before SIGTERM"; return 1; }
  local stop_start
  stop_start=$(date +%s%N)
  podman "${runtime[@]}" stop -t 45 "$name" >/dev/null
  local stop_ms=$((($(date +%s%N) - stop_start) / 1000000))
  local request_rc=0
  wait "$request" || request_rc=$?
  local exit_code
  exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
  log "$target: stopped in ${stop_ms} ms, exit code $exit_code, in-flight request exit $request_rc"
  podman logs "$name" 2>&1 | tail -3
  podman rm "$name" >/dev/null
  if [ "$exit_code" != 0 ] || [ "$request_rc" != 0 ] || [ "$stop_ms" -ge 45000 ]; then
    cat "image-check/drain-$target.log"
    log "$target: did not drain cleanly"
    return 1
  fi
}

mkdir -p image-check
for target in $targets; do
  case "$target" in
    cpu)
      build cpu --build-arg "CPU_IMAGE=$base"
      check cpu 56051
      ;;
    cuda)
      [ -x /usr/local/cuda/bin/nvcc ] || { log "no CUDA toolkit at /usr/local/cuda"; exit 1; }
      build cuda --build-arg "CUDA_DEVEL_IMAGE=$base" --build-arg "CUDA_RUNTIME_IMAGE=$base" \
        --volume /usr/local/cuda:/usr/local/cuda:ro
      check cuda 57051
      ;;
    *)
      echo "usage: scripts/image-check.sh [cpu] [cuda]" >&2
      exit 2
      ;;
  esac
done
log "passed: $targets"
