"""The PyTorch peers of `an1 bench`, on the GPU host: the old library's naive attention (GEMM,
mask, softmax, GEMM), SDPA with the FlashAttention-2 and cuDNN backends, and torch.matmul, with
the same flags and the same CSV measurement columns, so that the two CSVs join on the shape
columns (batch_size, seq_len, n_heads, head_dim, dtype, n_kv_heads, causal).

Each implementation gets the columns <impl>_latency_ms, _tflops (causal-aware), _tflops_dense,
_p99_ms, _tokens_per_s and _j_per_token, for impl in naive, flash2, cudnn. Latency: median of
CUDA-event times of --iters calls after --warmup, queued back to back. Energy: the GPU's NVML
energy counter over --energy-seconds of back-to-back calls, per token.

    python3 tests/bench/llm_bench_peers.py --batch-size 8 --n-heads 32 --head-dim 128 \
        --seq-len 512,1024,2048 --dtype fp16 [--no-causal] [--csv FILE] [--matmul 4096,8192]
"""
import argparse
import csv
import ctypes
import math
import os
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from torch_peers import naive_attention, queued_times


class Nvml:
    """The energy counter through libnvidia-ml (no Python NVML bindings on the GPU host)."""

    def __init__(self):
        self.lib = ctypes.CDLL("libnvidia-ml.so.1")
        assert self.lib.nvmlInit_v2() == 0
        self.device = ctypes.c_void_p()
        assert self.lib.nvmlDeviceGetHandleByIndex_v2(torch.cuda.current_device(),
                                                      ctypes.byref(self.device)) == 0

    def joules(self):
        mj = ctypes.c_ulonglong()
        assert self.lib.nvmlDeviceGetTotalEnergyConsumption(self.device, ctypes.byref(mj)) == 0
        return mj.value / 1000.0


def visible_pairs(s, causal):
    return s * (s + 1) / 2 if causal else s * s


def measure(fn, warmup, iters, nvml, energy_seconds):
    """Median and p99 ms of `iters` calls queued back to back (CUDA events), and joules per call
    from the energy counter over at least `energy_seconds` of calls (the counter moves in steps
    of tens of milliseconds, too coarse for a few short calls)."""
    times = queued_times([fn], warmup, iters)[0]
    p99 = times[min(len(times) - 1, math.ceil(0.99 * len(times)) - 1)]
    joules_per_call = None
    if nvml:
        calls, e0, t0 = 0, nvml.joules(), time.time()
        while time.time() - t0 < energy_seconds:
            for _ in range(max(1, int(50 / max(times[len(times) // 2], 0.01)))):  # ~50 ms
                fn()
                calls += 1
            torch.cuda.synchronize()
        joules_per_call = (nvml.joules() - e0) / calls
    return times[len(times) // 2], p99, joules_per_call


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--n-heads", type=int, default=32)
    p.add_argument("--n-kv-heads", type=int, default=0)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--seq-len", default="2048", help="S, or a sweep: 512,1024,2048")
    p.add_argument("--dtype", choices=("fp16", "bf16"), default="fp16")
    p.add_argument("--causal", action="store_true", help="causal mask (the default)")
    p.add_argument("--no-causal", action="store_true")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--csv", default="bench_logs/llm_bench_peers.csv")
    p.add_argument("--energy-seconds", type=float, default=2.0,
                   help="sustained calls per implementation for the energy figure")
    p.add_argument("--matmul", default="", help="also time torch.matmul at these sizes: 4096,8192")
    a = p.parse_args()
    causal = not a.no_causal
    dtype = torch.float16 if a.dtype == "fp16" else torch.bfloat16
    hkv = a.n_kv_heads or a.n_heads
    try:
        nvml = Nvml()
    except (OSError, AssertionError):
        nvml = None
        print("NVML unavailable: no energy figures")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, cuDNN "
          f"{torch.backends.cudnn.version()}")
    impls = ("naive", "flash2", "cudnn")
    header = ["batch_size", "seq_len", "n_heads", "head_dim", "dtype", "n_kv_heads", "causal"]
    for impl in impls:
        header += [f"{impl}_{c}" for c in ("latency_ms", "tflops", "tflops_dense", "p99_ms",
                                           "tokens_per_s", "j_per_token")]
    rows = []
    print(f"{'impl':8s} {'seq_len':>7s} {'latency_ms':>10s} {'p99_ms':>8s} {'TFLOP/s':>8s} "
          f"{'dense':>8s} {'tokens/s':>12s} {'uJ/token':>9s}")
    for s in (int(x) for x in a.seq_len.split(",")):
        q = torch.randn(a.batch_size, a.n_heads, s, a.head_dim, device="cuda", dtype=dtype)
        k, v = (torch.randn(a.batch_size, hkv, s, a.head_dim, device="cuda", dtype=dtype)
                for _ in range(2))
        gqa = hkv != a.n_heads

        def sdpa(backend):
            def run():
                with sdpa_kernel(backend):
                    F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)
            return run

        kr, vr = (x.repeat_interleave(a.n_heads // hkv, dim=1) for x in (k, v))
        fns = {"naive": lambda: naive_attention(q, kr, vr, causal),
               "flash2": sdpa(SDPBackend.FLASH_ATTENTION), "cudnn": sdpa(SDPBackend.CUDNN_ATTENTION)}
        row = [a.batch_size, s, a.n_heads, a.head_dim, a.dtype, hkv, int(causal)]
        flops = 4.0 * a.batch_size * a.n_heads * a.head_dim
        tokens = a.batch_size * s
        for impl in impls:
            ms, p99, joules = measure(fns[impl], a.warmup, a.iters, nvml, a.energy_seconds)
            jpt = joules / tokens if joules is not None else None
            tf = flops * visible_pairs(s, causal) / (ms * 1e9)
            tfd = flops * s * s / (ms * 1e9)
            row += [f"{ms:.4f}", f"{tf:.3f}", f"{tfd:.3f}", f"{p99:.4f}", f"{tokens / ms * 1e3:.1f}",
                    f"{jpt:.6g}" if jpt is not None else ""]
            print(f"{impl:8s} {s:7d} {ms:10.3f} {p99:8.3f} {tf:8.1f} {tfd:8.1f} "
                  f"{tokens / ms * 1e3:12.0f} {jpt * 1e6 if jpt is not None else float('nan'):9.3f}")
        rows.append(row)
        del q, k, v, kr, vr
    if a.csv:
        os.makedirs(os.path.dirname(a.csv) or ".", exist_ok=True)
        fresh = not os.path.exists(a.csv) or os.path.getsize(a.csv) == 0
        with open(a.csv, "a", newline="") as f:
            w = csv.writer(f)
            if fresh:
                w.writerow(header)
            w.writerows(rows)
        print(f"appended {len(rows)} row(s) to {a.csv}")
    for n in (int(x) for x in a.matmul.split(",") if x):
        x, y = (torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(2))
        ms, p99, joules = measure(lambda: torch.matmul(x, y), a.warmup, a.iters, None, 0)
        print(f"torch.matmul {a.dtype} {n}^3: {ms:.3f} ms, {2.0 * n ** 3 / ms / 1e9:.1f} TFLOP/s")


if __name__ == "__main__":
    main()
