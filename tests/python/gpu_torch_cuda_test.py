#!/usr/bin/python3
"""an1_cache with torch CUDA tensors (label `gpu`): CUDA IPC both ways against a real an1d on the
GPU. Checks that the output is a CUDA tensor on the input's device, that 0 bytes were copied
through the host (ExecutionInfo.copied_bytes), that the kernel is named, that repeated calls on
the same tensors register no new region, and that the result matches torch's SDPA in fp16/bf16
within the kernel tolerance. Exits 77 (skipped) without a CUDA-capable torch.

    gpu_torch_cuda_test.py --an1d PATH --python-dir BUILD/python
"""
import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from an1d_process import An1dProcess  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d", required=True)
    parser.add_argument("--python-dir", required=True)
    opts = parser.parse_args()
    try:
        import torch
    except ImportError as e:
        print(f"skipped: torch is not importable ({e})")
        return 77
    if not torch.cuda.is_available():
        print("skipped: torch sees no CUDA device")
        return 77
    sys.path.insert(0, opts.python_dir)
    import an1_cache
    server = An1dProcess([opts.an1d], tempfile.mkdtemp(prefix="an1-py-gpu-"))
    failures = []

    def check(condition, what):
        print(("ok   " if condition else "FAIL ") + what, flush=True)
        if not condition:
            failures.append(what)

    try:
        client = an1_cache.Client(server.target, timeout=60)
        for dtype in (torch.float16, torch.bfloat16):
            q = torch.randn(2, 8, 128, 64, device="cuda", dtype=dtype)
            k = torch.randn(2, 2, 256, 64, device="cuda", dtype=dtype)
            v = torch.randn(2, 2, 256, 64, device="cuda", dtype=dtype)
            out, info = client.attention(q, k, v, return_info=True)
            regions = len(client.list_regions())
            for _ in range(3):
                client.attention(q, k, v)
            ref = torch.nn.functional.scaled_dot_product_attention(
                q.float(), k.float().repeat_interleave(4, 1), v.float().repeat_interleave(4, 1),
                is_causal=False, attn_mask=torch.ones(128, 256, dtype=torch.bool,
                                                      device="cuda").tril(256 - 128))
            err = (out.float() - ref).abs().max().item()
            check(out.is_cuda and out.device == q.device and out.dtype == dtype,
                  f"{dtype}: output on {out.device}, {out.dtype}")
            check(info.copied_bytes == 0 and info.transport == "cuda-ipc",
                  f"{dtype}: copied_bytes {info.copied_bytes}, transport {info.transport}")
            check(bool(info.kernel), f"{dtype}: kernel {info.kernel} on {info.device}")
            check(len(client.list_regions()) == regions, f"{dtype}: {regions} regions, no more")
            check(err < (2e-2 if dtype == torch.bfloat16 else 4e-3), f"{dtype}: max error {err}")
        a = torch.randn(3, 64, 32, device="cuda", dtype=torch.float16)
        b = torch.randn(32, 16, device="cuda", dtype=torch.float16)
        c, info = client.matmul(a, b, return_info=True)
        check(c.is_cuda and info.copied_bytes == 0, f"matmul: cuda output, {info.copied_bytes} B")
        check((c.float() - a.float() @ b.float()).abs().max().item() < 5e-2, "matmul values")
        client.close()
    finally:
        server.stop()
    print(f"gpu_torch_cuda_test: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
