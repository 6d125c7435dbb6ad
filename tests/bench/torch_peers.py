"""PyTorch peers for the GPU engine benchmark, timed the same way (CUDA events, median after
warm-up): the old library's naive attention (GEMM, mask, softmax, GEMM in fp16), SDPA with the
FlashAttention-2 and cuDNN backends, and torch.matmul.

    python3 tests/bench/torch_peers.py [--iters N] [--sweep] [--csv FILE]

--sweep runs the attention sweep instead: B=8 H=32 S=2048 D=128, S in {512 .. 16384} with
B*S = 16384, H=16, D=128, and GQA 32 query over 8 KV heads at B=1 S=8192, fp16 and bf16, causal
and not. With --an1-lib (build/bin/liban1_flash_bench.so) our kernels are timed too (the
dispatcher's choice, or each of --an1-kernels), call by call in turn with the SDPA
FlashAttention-2 and cuDNN backends, after checking each output against SDPA's.
"""
import argparse
import ctypes
import math
import sys

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
    parser.add_argument("--sweep", action="store_true", help="only the attention sweep")
    parser.add_argument("--csv", help="write the sweep rows to this CSV file")
    parser.add_argument("--an1-lib", action="append", default=[], metavar="[NAME=]PATH",
                        help="liban1_flash_bench.so: time our kernel too, interleaved; repeat with "
                             "NAME=PATH to compare builds (e.g. before=... after=...)")
    parser.add_argument("--an1-kernels", default="auto",
                        help="kernels of each --an1-lib to time: auto (the dispatcher's choice), "
                             "sm80, sm90, comma-separated (default auto)")
    parser.add_argument("--shapes", help="sweep only these BxHxSxD or BxHxHkvxSxD shapes, "
                                         "comma-separated (default: 8x32x2048x128, B*S=16k at "
                                         "H=16, GQA 1x32x8x8192x128)")
    parser.add_argument("--dtypes", default="fp16,bf16", help="sweep dtypes (default fp16,bf16)")
    args = parser.parse_args()
    if args.sweep:
        return sweep(args)
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


def queued_times(fns, warmup, iters):
    """Sorted ms of each function's `iters` calls, timed call by call in turn (a, b, c, a, b,
    c, ...), so that clock and temperature drift fall on all of them alike. Everything is queued
    before one synchronize: the host runs ahead, so the events time the GPU, not Python."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    events = [[] for _ in fns]
    for _ in range(iters):
        for fn, ev in zip(fns, events):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            ev.append((start, stop))
    torch.cuda.synchronize()
    return [sorted(start.elapsed_time(stop) for start, stop in ev) for ev in events]


def interleaved_medians(fns, warmup, iters):
    """Median ms of each function (queued_times)."""
    return [times[len(times) // 2] for times in queued_times(fns, warmup, iters)]


def load_an1_lib(spec):
    """("an1" or "an1-NAME", the library) for "[NAME=]PATH" of a liban1_flash_bench.so."""
    name, _, path = spec.rpartition("=")
    lib = ctypes.CDLL(path)
    lib.an1_flash_attention.restype = ctypes.c_int
    lib.an1_flash_attention.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 6 + [
        ctypes.c_int, ctypes.c_int, ctypes.c_float, ctypes.c_void_p]
    lib.an1_attention_with_kernel.restype = ctypes.c_int
    lib.an1_attention_with_kernel.argtypes = lib.an1_flash_attention.argtypes + [ctypes.c_char_p]
    return (f"an1-{name}" if name else "an1", lib)


def an1_attention(lib, q, k, v, causal, kernel="auto"):
    """Our kernel (`kernel`: auto, sm80, sm90) through the C entry point of
    liban1_flash_bench.so, on torch's stream."""
    o = torch.empty_like(q)
    B, H, S, D = q.shape
    dtype = 0 if q.dtype == torch.float16 else 1
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)

    def run():
        rc = lib.an1_attention_with_kernel(
            ctypes.c_void_p(q.data_ptr()), ctypes.c_void_p(k.data_ptr()), ctypes.c_void_p(v.data_ptr()),
            ctypes.c_void_p(o.data_ptr()), B, H, k.shape[1], S, k.shape[2], D, dtype, int(causal),
            ctypes.c_float(1.0 / math.sqrt(D)), stream, kernel.encode())
        if rc != 0:
            sys.exit(f"an1_attention_with_kernel ({kernel}) failed")
    return run, o


def sweep(args):
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"cuDNN {torch.backends.cudnn.version()}")
    libs = [load_an1_lib(spec) for spec in args.an1_lib]  # (name, library)
    kernels = args.an1_kernels.split(",")
    # (name, library, kernel): every kernel of every library; the name says which when several.
    an1s = [(name if kernel == "auto" else f"{name}-{kernel}", lib, kernel)
            for name, lib in libs for kernel in kernels]
    print(f"{'case':44s} {'ms':>10s} {'TFLOP/s':>10s}")
    def case(shape):  # (B, H, Hkv, S, D)
        dims = [int(x) for x in shape.split("x")]
        return tuple(dims) if len(dims) == 5 else (dims[0], dims[1], dims[1], dims[2], dims[3])
    if args.shapes:
        cases = [case(shape) for shape in args.shapes.split(",")]
    else:
        cases = ([(8, 32, 32, 2048, 128)] +
                 [(16384 // s, 16, 16, s, 128) for s in (512, 1024, 2048, 4096, 8192, 16384)] +
                 [(1, 32, 8, 8192, 128)])
    dtypes = [(getattr(torch, {"fp16": "float16", "bf16": "bfloat16"}[d]), d)
              for d in args.dtypes.split(",")]
    rows = []
    for dtype, dname in dtypes:
        for B, H, Hkv, S, D in cases:
            q = torch.randn(B, H, S, D, device="cuda", dtype=dtype)
            k, v = (torch.randn(B, Hkv, S, D, device="cuda", dtype=dtype) for _ in range(2))
            gqa = Hkv != H
            shape = f"{B}x{H}x{S}x{D}" + (f" gqa{H}/{Hkv}" if gqa else "")
            for causal in (True, False):
                flops = 4.0 * B * H * S * S * D * (0.5 if causal else 1.0)

                def sdpa(backend):
                    def run():
                        with sdpa_kernel(backend):
                            F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)
                    return run
                impls = [("sdpa-flash2", sdpa(SDPBackend.FLASH_ATTENTION)),
                         ("sdpa-cudnn", sdpa(SDPBackend.CUDNN_ATTENTION))]
                for index, (name, lib, kernel) in enumerate(an1s):
                    run, out = an1_attention(lib, q, k, v, causal, kernel)
                    out.fill_(float("nan"))
                    run()
                    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                        ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                             enable_gqa=gqa)
                    err = (out.float() - ref.float()).abs().max().item()
                    if not err < (2e-2 if dtype == torch.bfloat16 else 4e-3):
                        sys.exit(f"{name} differs from SDPA by {err} at {shape}")
                    impls.insert(index, (name, run))
                medians = interleaved_medians([fn for _, fn in impls], args.warmup, args.iters)
                for (name, _), ms in zip(impls, medians):
                    label = f"attention {name} {dname} {'causal' if causal else 'dense '} {shape}"
                    print(f"{label:56s} {ms:10.3f} {flops / ms / 1e9:10.1f}")
                    rows.append(f"{name},{dname},{int(causal)},{B},{H},{Hkv},{S},{D},{ms:.4f},"
                                f"{flops / ms / 1e9:.1f}")
            del q, k, v
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("impl,dtype,causal,batch,heads,kv_heads,seq,dim,ms,tflops\n" + "\n".join(rows) +
                    "\n")


if __name__ == "__main__":
    main()
