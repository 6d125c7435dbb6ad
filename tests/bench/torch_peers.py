"""PyTorch peers for the GPU engine benchmark, timed the same way (CUDA events, median after
warm-up): the old library's naive attention (GEMM, mask, softmax, GEMM in fp16), SDPA with the
FlashAttention-2 and cuDNN backends, and torch.matmul.

    python3 tests/bench/torch_peers.py [--iters N]
"""
import argparse
import math

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def median_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def naive_attention(q, k, v, causal):
    scale = 1.0 / math.sqrt(q.shape[-1])
    s = (q @ k.transpose(-2, -1)) * scale
    if causal:
        sq, sk = q.shape[-2], k.shape[-2]
        mask = torch.ones(sq, sk, dtype=torch.bool, device=q.device).tril(diagonal=sk - sq)
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"cuDNN {torch.backends.cudnn.version()}")
    print(f"{'case':44s} {'ms':>10s} {'TFLOP/s':>10s}")
    B, H, S, D = 8, 32, 2048, 128
    q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.float16) for _ in range(3))
    for causal in (True, False):
        flops = 4.0 * B * H * S * S * D * (0.5 if causal else 1.0)
        tag = "causal" if causal else "dense "
        ms = median_ms(lambda: naive_attention(q, k, v, causal), args.warmup, args.iters)
        print(f"{'attention naive-torch fp16 ' + tag:44s} {ms:10.3f} {flops / ms / 1e9:10.1f}")
        for name, backend in (("flash2", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            with sdpa_kernel(backend):
                ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                               args.warmup, args.iters)
            print(f"{'attention sdpa-' + name + ' fp16 ' + tag:44s} {ms:10.3f} {flops / ms / 1e9:10.1f}")
    for size in (4096, 8192):
        for dtype, name in ((torch.float16, "fp16"), (torch.bfloat16, "bf16")):
            a = torch.randn(size, size, device="cuda", dtype=dtype)
            b = torch.randn(size, size, device="cuda", dtype=dtype)
            ms = median_ms(lambda: torch.matmul(a, b), args.warmup, args.iters)
            print(f"{'matmul torch ' + name + ' ' + str(size) + '^3':44s} {ms:10.3f} "
                  f"{2.0 * size ** 3 / ms / 1e9:10.1f}")


if __name__ == "__main__":
    main()
