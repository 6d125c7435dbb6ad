#!/usr/bin/env bash
# One call on the GPU host: GPU tests, the kernel and engine benchmarks beside the PyTorch peers,
# the real server end to end (the an1 backend through a licensed test daemon), `an1 bench` and
# `an1 power` beside the PyTorch peers, and the 60-second energy agreement run. Expects a bundle
# from scripts/gpu-bundle.sh in $1; sections may be picked (default: all).
#   tests/bench/gpu_run.sh BUNDLE_DIR OUT_DIR [tests kernel decode paged python served bench power
#                                              energy engine peers overhead]
set -uo pipefail
bundle=$1
out=${2:-/tmp/an1-gpu-run}
shift 2 || true
sections=${*:-tests kernel decode paged python served bench power energy engine peers overhead}
mkdir -p "$out"
run() { "$bundle/run" "$@"; }
want() { [[ " $sections " == *" $1 "* ]]; }

# A licensed test daemon (an1d_with_test_keys trusting a key made here) for the served sections.
start_licensed_daemon() {
  work=$(mktemp -d)
  run an1-license keygen --kid gpu --out "$work/key" >"$work/keygen.txt"
  public=$(sed -n 's/.*public key: //p' "$work/keygen.txt")
  token=$(run an1-license issue --key "$work/key" --kid gpu --id GPU --licensee bench --days 1)
  # The bundle's run script execs an1d, so $! is the daemon itself (SIGTERM drains it).
  AN1_TEST_TRUSTED_LICENSE_KEYS=$public AN1_LICENSE_KEY=$token "$bundle/run" an1d_with_test_keys \
    --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --ready-file "$work/ready" \
    >>"$out/an1d.log" 2>&1 &
  daemon=$!
  for _ in $(seq 200); do grep -q metrics_port "$work/ready" 2>/dev/null && break; sleep 0.1; done
  server="127.0.0.1:$(sed -n 's/grpc_port=//p' "$work/ready")"
}
stop_licensed_daemon() { kill -TERM "$daemon"; wait "$daemon"; echo "an1d exit $?"; }

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv
  if want tests; then
    echo "== gpu tests"
    run gpu_devices_test
    run attention_kernel_test
    run gpu_engine_test
    run gpu_fault_test
    run gpu_paged_test
    python3 tests/gpu_ipc_test.py --bundle "$bundle"
    python3 tests/gpu_sdpa_compare.py --bundle "$bundle"
  fi
  if want kernel; then
    echo "== prefill kernels (sm90, sm80) beside the PyTorch peers, interleaved"
    python3 tests/bench/torch_peers.py --sweep --iters 50 --warmup 10 \
      --an1-lib "$bundle/bin/liban1_flash_bench.so" --an1-kernels sm90,sm80 \
      --csv "$out/attention_sweep.csv"
  fi
  if want decode; then
    echo "== decode attention beside cuDNN and FlashAttention-2, interleaved"
    python3 tests/bench/decode_bench.py --an1-lib "$bundle/bin/liban1_flash_bench.so" --sweep \
      --iters 50 --warmup 10 --csv "$out/decode_sweep.csv"
  fi
  if want paged; then
    echo "== paged attention beside the dense kernels and SDPA, interleaved"
    python3 tests/bench/paged_bench.py --an1-lib "$bundle/bin/liban1_flash_bench.so" \
      --csv "$out/paged.csv"
  fi
  if want decode || want paged || want python || want served || want bench || want power; then
    start_licensed_daemon
    run an1 --server "$server" info
  fi
  if want decode; then
    echo "== served decode step (an1 backend, CUDA IPC): B=64, 32/8 heads, Sk=4096, Sq=1"
    run an1 --server "$server" attention --backend an1 --batch-size 64 --n-heads 32 \
      --n-kv-heads 8 --seq-len 1 --kv-seq-len 4096 --head-dim 128 --dtype fp16 \
      --transport cuda-ipc --repeat 100
  fi
  if want paged; then
    echo "== served paged decode step (an1 backend, CUDA IPC): B=64, 32/8 heads, Sk=4096, page 16"
    kv_lens=$(printf '4096,%.0s' $(seq 64)); q_lens=$(printf '1,%.0s' $(seq 64))
    run an1 --server "$server" paged-attention --backend an1 --page-size 16 \
      --kv-lens "${kv_lens%,}" --q-lens "${q_lens%,}" --n-heads 32 --n-kv-heads 8 --head-dim 128 \
      --dtype fp16 --transport cuda-ipc --repeat 100
    echo "== the same step through the GPU baseline (gather, GEMM, softmax, GEMM)"
    run an1 --server "$server" paged-attention --backend baseline --page-size 16 \
      --kv-lens "${kv_lens%,}" --q-lens "${q_lens%,}" --n-heads 32 --n-kv-heads 8 --head-dim 128 \
      --dtype fp16 --transport cuda-ipc --repeat 10
  fi
  if want python; then
    echo "== the Python client on torch CUDA tensors (CUDA IPC) beside in-process SDPA"
    AN1_SERVER=$server python3 tests/bench/python_client_bench.py --python-dir "$bundle/python"
  fi
  if want served; then
    echo "== served end to end (an1 backend, CUDA IPC)"
    for causal in --causal --no-causal; do
      run an1 --server "$server" attention --backend an1 --batch-size 8 --n-heads 32 \
        --seq-len 2048 --head-dim 128 $causal --transport cuda-ipc --repeat 100
    done
  fi
  if want bench; then
    echo "== an1 bench (CUDA IPC), then the PyTorch peers with the same flags"
    shape=(--batch-size 8 --n-heads 32 --head-dim 128 --dtype fp16)
    for causal in --causal --no-causal; do
      tag=${causal#--}
      run an1 --server "$server" bench "${shape[@]}" $causal --seq-len 512,1024,2048,4096 \
        --warmup 5 --iters 30 --energy-seconds 3 --transport cuda-ipc \
        --csv "$out/llm_bench_results.csv" --plot "$out/llm_bench_$tag.png"
      matmul=()
      if [ "$causal" = --causal ]; then matmul=(--matmul "4096,8192"); fi
      python3 tests/bench/llm_bench_peers.py "${shape[@]}" $causal --seq-len 512,1024,2048,4096 \
        --warmup 5 --iters 30 --csv "$out/llm_bench_peers.csv" "${matmul[@]}"
    done
  fi
  if want power; then
    echo "== an1 power: the energy counter over 10 s of sustained load per backend"
    for causal in --causal --no-causal; do
      # 4 clients keep the GPU busy (one client leaves it idle between its calls).
      run an1 --server "$server" power --batch-size 8 --n-heads 32 --head-dim 128 --dtype fp16 \
        $causal --seq-len 2048 --duration 10 --warmup 3 --transport cuda-ipc --concurrency 4
    done
  fi
  if want decode || want paged || want python || want served || want bench || want power; then
    stop_licensed_daemon
  fi
  if want energy; then
    echo "== energy metrics under 8 concurrent clients for 60 s"
    python3 tests/bench/energy_agreement.py "$bundle" --seconds 60 --clients 8 \
      --scrape-out "$out/metrics_under_load.txt"
  fi
  if want engine; then
    echo "== engine benchmark"
    run engine_bench --iters 20 --warmup 3
  fi
  if want overhead; then
    echo "== fixed cost of a served call: paged decode step (index tensors inline or in shared"
    echo "   memory) and a tiny call, TCP vs Unix socket, the client polling"
    python3 tests/bench/served_overhead.py "$bundle" --calls 100 --rounds 1 \
      --gpu-wait yield --poll-us 2000 --index-transport inline,shm
  fi
  if want peers; then
    echo "== pytorch peers (naive, matmul)"
    python3 tests/bench/torch_peers.py --iters 100 --warmup 10
  fi
} 2>&1 | tee "$out/gpu_run.log"
