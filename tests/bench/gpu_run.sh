#!/usr/bin/env bash
# One call on the GPU host: GPU tests, the engine benchmark beside the PyTorch peers, and the
# real server end to end. Expects a bundle from ../shared/tools/gpu-bundle.sh in $1.
#   tests/bench/gpu_run.sh BUNDLE_DIR OUT_DIR
set -uo pipefail
bundle=$1
out=${2:-/tmp/an1-gpu-run}
mkdir -p "$out"
run() { "$bundle/run" "$@"; }
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  echo "== gpu tests"
  run gpu_devices_test
  run gpu_engine_test
  run gpu_fault_test
  echo "== server end to end"
  run an1d --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --ready-file /tmp/ready \
    >"$out/an1d.log" 2>&1 &
  for _ in $(seq 100); do grep -q metrics_port /tmp/ready 2>/dev/null && break; sleep 0.1; done
  port=$(sed -n 's/grpc_port=//p' /tmp/ready)
  run an1 --server "127.0.0.1:$port" info
  run an1 --server "127.0.0.1:$port" attention --batch-size 2 --n-heads 4 --n-kv-heads 2 \
    --seq-len 37 --kv-seq-len 53 --head-dim 64
  run an1 --server "127.0.0.1:$port" attention --batch-size 8 --n-heads 32 --seq-len 2048 \
    --head-dim 128
  run an1 --server "127.0.0.1:$port" matmul --a-shape 3,1,17,29 --b-shape 5,29,11 --dtype fp32
  kill -TERM %1; wait %1; echo "an1d exit $?"
  tail -3 "$out/an1d.log"
  echo "== engine benchmark"
  run engine_bench --iters 20 --warmup 3
  echo "== pytorch peers"
  python3 tests/bench/torch_peers.py --iters 100 --warmup 10
} 2>&1 | tee "$out/gpu_run.log"
