"""Decode attention on the GPU host: our kernel family (through liban1_flash_bench.so, which the
dispatcher sends to the decode kernel for 1-16 queries) beside PyTorch SDPA's cuDNN and
FlashAttention-2 backends (enable_gqa=True), timed call by call in turn in one process (CUDA
events, medians after warm-up), with the device-to-device copy bandwidth measured in the same run.
A benchmark, not a test: it prints, it does not assert speed.

    python3 tests/bench/decode_bench.py --an1-lib BUNDLE/bin/liban1_flash_bench.so [--sweep]
        [--csv FILE]

Shapes: fp16, D=128, 32 query heads over 8 KV heads; the issue's table (B=64 Sk=4096, B=256
Sk=1024, B=8 Sk=32768, B=1 Sk=131072 at Sq=1; B=32 Sk=4096 at Sq=4), and with --sweep batch
1..256 x Sk 1k..128k (K+V up to 16 GiB). TB/s counts the bytes of q, k, v and o once each;
"copy" is that over the copy bandwidth. Our kernel runs bottom-right causal (a decode step sees
every key up to its own position); the peers run without a mask for Sq=1 (the same keys) and with
is_causal=False for Sq>1 (PyTorch's causal mask is top-left aligned for Sq != Sk), which reads
the same bytes.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_peers import an1_attention, load_an1_lib, queued_times  # noqa: E402

TABLE = [(64, 1, 4096), (256, 1, 1024), (8, 1, 32768), (1, 1, 131072), (32, 4, 4096)]


def copy_bandwidth(iters):
    """Device-to-device copy in TB/s (bytes read plus bytes written), median of `iters`."""
    x = torch.empty(2 << 30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    times = queued_times([lambda: y.copy_(x)], 5, iters)[0]
    del x, y
    return 2 * (2 << 30) / (times[len(times) // 2] * 1e-3) / 1e12


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1-lib", action="append", required=True, metavar="[NAME=]PATH",
                        help="liban1_flash_bench.so; repeat with NAME=PATH to compare builds")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--sweep", action="store_true", help="also batch 1..256 x Sk 1k..128k")
    parser.add_argument("--csv", help="write one row per (shape, implementation)")
    args = parser.parse_args()

    libs = [load_an1_lib(spec) for spec in args.an1_lib]
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"cuDNN {torch.backends.cudnn.version()}")
    bandwidth = copy_bandwidth(args.iters)
    print(f"device-to-device copy: {bandwidth:.2f} TB/s")

    shapes = list(TABLE)
    if args.sweep:
        for batch in (1, 4, 16, 64, 256):
            for kv_len in (1024, 4096, 16384, 65536, 131072):
                if batch * kv_len * 8 * 128 * 2 * 2 <= (16 << 30) and (batch, 1, kv_len) not in shapes:
                    shapes.append((batch, 1, kv_len))
    H, HKV, D = 32, 8, 128
    rows = []
    print(f"{'B':>4s} {'Sq':>3s} {'Sk':>7s}  {'impl':12s} {'ms':>8s} {'TB/s':>7s} {'copy':>6s}")
    for batch, q_len, kv_len in shapes:
        q = torch.randn(batch, H, q_len, D, device="cuda", dtype=torch.float16)
        k, v = (torch.randn(batch, HKV, kv_len, D, device="cuda", dtype=torch.float16)
                for _ in range(2))
        ours = []
        for name, lib in libs:
            run, out = an1_attention(lib, q, k, v, causal=True)
            try:
                run()
            except SystemExit as failed:  # one build that cannot run this shape: say so, go on
                print(f"{name}: {failed}")
                continue
            if q_len == 1:  # one query sees every key: the same function as SDPA without a mask
                with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                    ref = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                err = (out.float() - ref.float()).abs().max().item()
                if not err < 4e-3:
                    sys.exit(f"{name} differs from SDPA by {err} at B={batch} Sk={kv_len}")
            ours.append((name, run))

        def sdpa(backend):
            def call():
                with sdpa_kernel(backend):
                    F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
            return call
        impls = ours + [("sdpa-cudnn", sdpa(SDPBackend.CUDNN_ATTENTION)),
                        ("sdpa-flash2", sdpa(SDPBackend.FLASH_ATTENTION))]
        bytes_moved = 2 * (q.numel() * 2 + k.numel() + v.numel())  # q, k, v, o at 2 bytes
        for (name, _), times in zip(impls, queued_times([f for _, f in impls], args.warmup,
                                                        args.iters)):
            ms = times[len(times) // 2]
            tbs = bytes_moved / (ms * 1e-3) / 1e12
            print(f"{batch:4d} {q_len:3d} {kv_len:7d}  {name:12s} {ms:8.3f} {tbs:7.2f} "
                  f"{tbs / bandwidth:6.1%}")
            rows.append(f"{name},{batch},{H},{HKV},{q_len},{kv_len},{D},{ms:.4f},{tbs:.3f},"
                        f"{tbs / bandwidth:.4f}")
        del q, k, v, ours
        torch.cuda.empty_cache()
    if args.csv:
        with open(args.csv, "w") as f:
            f.write(f"# device-to-device copy {bandwidth:.3f} TB/s\n")
            f.write("impl,batch,heads,kv_heads,q_len,kv_len,head_dim,ms,tbps,copy_fraction\n")
            f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
