"""Paged attention on the GPU host: our paged kernel (kernels/attention/decode/paged.h, through
liban1_flash_bench.so's an1_paged_prepare/an1_paged_run) beside the dense decode kernel and
PyTorch SDPA's cuDNN backend on the same data made dense, timed call by call in turn in one
process (CUDA events, medians after warm-up). A benchmark, not a test: it prints (and checks our
output against cuDNN's), it does not assert speed.

    python3 tests/bench/paged_bench.py --an1-lib BUNDLE/bin/liban1_flash_bench.so [--csv FILE]

Cases (fp16, D=128, 32 query heads over 8 KV heads, pages of 16 tokens, a shuffled page table):
  decode: B=64, Sk=4096, one query each. Peers: the dense decode kernel and SDPA cuDNN on
    (B, H, S, D) tensors.
  mixed: 4 prefill chunks of 512 tokens (contexts 1k, 4k, 8k, 16k, the chunk included) and 60
    decode rows (contexts 1k..16k), in one paged launch. Peers: the same 64 sequences as dense
    tensors, one call each (what a caller without a paged kernel does): our dense kernels, and
    SDPA (cuDNN for the decode rows; the default backend for the chunks, whose bottom-right causal
    mask cuDNN's SDPA path does not take).
TB/s counts the bytes of q, the K/V each sequence sees, and o once.
"""
import argparse
import ctypes
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.bias import causal_lower_right

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_peers import an1_attention, load_an1_lib, queued_times  # noqa: E402

H, HKV, D, PAGE = 32, 8, 128, 16


def bind_paged(lib):
    lib.an1_paged_prepare.restype = ctypes.c_int
    lib.an1_paged_prepare.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int64] * 7 + [
        ctypes.c_int, ctypes.c_int, ctypes.c_float, ctypes.c_char_p]
    lib.an1_paged_run.restype = ctypes.c_int
    lib.an1_paged_run.argtypes = [ctypes.c_void_p] * 8


def paged_case(q_lens, kv_lens, gen):
    """Dense per-sequence q (1, H, q_len, D), k/v (1, HKV, kv_len, D) and the same data paged."""
    qs = [torch.randn(1, H, n, D, device="cuda", dtype=torch.float16, generator=gen) for n in q_lens]
    ks = [torch.randn(1, HKV, n, D, device="cuda", dtype=torch.float16, generator=gen) for n in kv_lens]
    vs = [torch.randn(1, HKV, n, D, device="cuda", dtype=torch.float16, generator=gen) for n in kv_lens]
    pages = [math.ceil(n / PAGE) for n in kv_lens]
    num_pages = sum(pages) + 8
    order = torch.randperm(num_pages, device="cuda", generator=gen).to(torch.int32)
    k_cache = torch.full((num_pages, PAGE, HKV, D), float("nan"), device="cuda", dtype=torch.float16)
    v_cache = torch.full_like(k_cache, float("nan"))
    max_pages = max(pages)
    page_table = torch.zeros(len(kv_lens), max_pages, dtype=torch.int32, device="cuda")
    used = 0
    for b, n in enumerate(kv_lens):
        ids = order[used:used + pages[b]].long()
        used += pages[b]
        page_table[b, :pages[b]] = ids.to(torch.int32)
        for cache, dense in ((k_cache, ks[b]), (v_cache, vs[b])):
            padded = torch.zeros(pages[b] * PAGE, HKV, D, device="cuda", dtype=torch.float16)
            padded[:n] = dense[0].transpose(0, 1)
            view = padded.view(pages[b], PAGE, HKV, D)
            full = pages[b] if n % PAGE == 0 else pages[b] - 1
            cache[ids[:full]] = view[:full]
            if full < pages[b]:  # the last page's slots past kv_len stay NaN: never read
                cache[ids[full], : n % PAGE] = view[full, : n % PAGE]
    q_packed = torch.cat([q[0].transpose(0, 1) for q in qs]).contiguous()  # (total_q, H, D)
    cu = [0]
    for n in q_lens:
        cu.append(cu[-1] + n)
    return qs, ks, vs, q_packed, k_cache, v_cache, page_table, cu


def bytes_read(q_lens, kv_lens):
    return 2 * (2 * sum(q_lens) * H * D + 2 * sum(kv_lens) * HKV * D)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1-lib", required=True, help="liban1_flash_bench.so")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--csv")
    args = parser.parse_args()
    name, lib = load_an1_lib(args.an1_lib)
    bind_paged(lib)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"cuDNN {torch.backends.cudnn.version()}")
    gen = torch.Generator(device="cuda")
    gen.manual_seed(0)
    cases = {
        "decode B=64 Sk=4096": ([1] * 64, [4096] * 64),
        "mixed 4x512 prefill + 60 decode": (
            [512] * 4 + [1] * 60,
            [1024, 4096, 8192, 16384] + [1024 + (15360 * i) // 59 for i in range(60)]),
    }
    rows = []
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    scale = 1.0 / math.sqrt(D)
    for case, (q_lens, kv_lens) in cases.items():
        qs, ks, vs, q_packed, k_cache, v_cache, page_table, cu = paged_case(q_lens, kv_lens, gen)
        cu_host = (ctypes.c_int32 * len(cu))(*cu)
        kv_host = (ctypes.c_int32 * len(kv_lens))(*kv_lens)
        label = ctypes.create_string_buffer(64)
        if lib.an1_paged_prepare(cu_host, kv_host, len(kv_lens), H, HKV, D, k_cache.shape[0], PAGE,
                                 page_table.shape[1], 0, 1, ctypes.c_float(scale), label) != 0:
            sys.exit("an1_paged_prepare failed")
        cu_dev = torch.tensor(cu, dtype=torch.int32, device="cuda")
        kv_dev = torch.tensor(kv_lens, dtype=torch.int32, device="cuda")
        o_paged = torch.empty_like(q_packed)

        def paged():
            if lib.an1_paged_run(ctypes.c_void_p(q_packed.data_ptr()), ctypes.c_void_p(k_cache.data_ptr()),
                                 ctypes.c_void_p(v_cache.data_ptr()), ctypes.c_void_p(page_table.data_ptr()),
                                 ctypes.c_void_p(cu_dev.data_ptr()), ctypes.c_void_p(kv_dev.data_ptr()),
                                 ctypes.c_void_p(o_paged.data_ptr()), stream) != 0:
                sys.exit("an1_paged_run failed")

        impls = [(f"{name}-paged ({label.value.decode()})", paged)]
        if all(n == 1 for n in q_lens) and len(set(kv_lens)) == 1:  # one dense batch
            q = torch.cat(qs)
            k, v = torch.cat(ks), torch.cat(vs)
            dense_run, _ = an1_attention(lib, q, k, v, causal=True)
            impls.append((f"{name}-dense decode", dense_run))

            def cudnn():
                with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                    return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
            impls.append(("sdpa-cudnn dense", cudnn))
            want = cudnn()[:, :, 0]  # (B, H, D)
        else:  # one dense call per sequence
            dense_runs = [an1_attention(lib, q, k, v, causal=True)[0] for q, k, v in zip(qs, ks, vs)]
            impls.append((f"{name}-dense, a call per sequence", lambda: [r() for r in dense_runs]))
            expanded = [(k.repeat_interleave(H // HKV, 1), v.repeat_interleave(H // HKV, 1))
                        for k, v in zip(ks, vs)]
            masks = [causal_lower_right(q.shape[2], k.shape[2]) if q.shape[2] > 1 else None
                     for q, k in zip(qs, ks)]

            def sdpa_each():
                outs = []
                for q, (k, v), mask, small in zip(qs, expanded, masks, q_lens):
                    if small == 1:
                        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                            outs.append(F.scaled_dot_product_attention(q, k, v))
                    else:
                        outs.append(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
                return outs
            impls.append(("sdpa, a call per sequence", sdpa_each))
            want = torch.cat([o[0].transpose(0, 1) for o in sdpa_each()])
        paged()
        torch.cuda.synchronize()
        err = (o_paged.float().reshape(want.shape) - want.float()).abs().max().item()
        times = queued_times([fn for _, fn in impls], args.warmup, args.iters)
        moved = bytes_read(q_lens, kv_lens)
        print(f"== {case}: max |paged - sdpa| = {err:.2e}")
        for (impl, _), t in zip(impls, times):
            ms = t[len(t) // 2]
            print(f"  {impl:40s} {ms:8.3f} ms {moved / (ms * 1e-3) / 1e12:6.2f} TB/s")
            rows.append((case, impl, ms))
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("case,impl,ms\n")
            for row in rows:
                f.write(f"{row[0]},{row[1]},{row[2]:.4f}\n")


if __name__ == "__main__":
    main()
