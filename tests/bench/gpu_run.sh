#!/usr/bin/env bash
# One call on the GPU host: GPU tests, the kernel and engine benchmarks beside the PyTorch peers,
# and the real server end to end (the an1 backend through a licensed test daemon). Expects a
# bundle from scripts/gpu-bundle.sh in $1.
#   tests/bench/gpu_run.sh BUNDLE_DIR OUT_DIR
set -uo pipefail
bundle=$1
out=${2:-/tmp/an1-gpu-run}
mkdir -p "$out"
run() { "$bundle/run" "$@"; }
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  echo "== gpu tests"
  run gpu_devices_test
  run gpu_engine_test
  run gpu_fault_test
  python3 tests/gpu_ipc_test.py --bundle "$bundle"
  python3 tests/gpu_sdpa_compare.py --bundle "$bundle"
  echo "== fused attention kernel beside the PyTorch peers (same call)"
  python3 tests/bench/torch_peers.py --sweep --iters 50 --warmup 10 \
    --an1-lib "$bundle/bin/liban1_flash_bench.so" --csv "$out/attention_sweep.csv"
  echo "== served end to end (licensed test daemon, an1 backend, CUDA IPC)"
  work=$(mktemp -d)
  run an1-license keygen --kid gpu --out "$work/key" >"$work/keygen.txt"
  public=$(sed -n 's/.*public key: //p' "$work/keygen.txt")
  token=$(run an1-license issue --key "$work/key" --kid gpu --id GPU --licensee bench --days 1)
  # The bundle's run script execs an1d, so $! is the daemon itself (SIGTERM drains it).
  AN1_TEST_TRUSTED_LICENSE_KEYS=$public AN1_LICENSE_KEY=$token "$bundle/run" an1d_with_test_keys \
    --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --ready-file "$work/ready" \
    >"$out/an1d.log" 2>&1 &
  daemon=$!
  for _ in $(seq 200); do grep -q metrics_port "$work/ready" 2>/dev/null && break; sleep 0.1; done
  port=$(sed -n 's/grpc_port=//p' "$work/ready")
  run an1 --server "127.0.0.1:$port" info
  for causal in --causal --no-causal; do
    run an1 --server "127.0.0.1:$port" attention --backend an1 --batch-size 8 --n-heads 32 \
      --seq-len 2048 --head-dim 128 $causal --transport cuda-ipc --repeat 100
  done
  kill -TERM "$daemon"; wait "$daemon"; echo "an1d exit $?"
  echo "== engine benchmark"
  run engine_bench --iters 20 --warmup 3
  echo "== pytorch peers (naive, matmul)"
  python3 tests/bench/torch_peers.py --iters 100 --warmup 10
} 2>&1 | tee "$out/gpu_run.log"
