"""an1_cache on torch CUDA tensors beside in-process PyTorch SDPA, on the GPU host: the round
trip of `Client.attention` (CUDA IPC both ways: nothing copied through the host) split into the
kernel (the server's compute time, CUDA events), the rest of the server's time, and what the
client and transport add; SDPA (default backend choice) timed with CUDA events in this process.
A benchmark, not a test. Needs a running an1d (AN1_SERVER; licensed for the an1 kernels).

    AN1_SERVER=host:port python3 tests/bench/python_client_bench.py --python-dir BUNDLE/python
"""
import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

SHAPES = [  # (label, B, H, Hkv, Sq, Sk, causal): the old library's benchmark shape and a decode step
    ("prefill 8x32x2048x128 causal", 8, 32, 32, 2048, 2048, True),
    ("decode B=64 32/8 heads Sk=4096", 64, 32, 8, 1, 4096, True),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--python-dir", required=True, help="the built an1_cache package's folder")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    sys.path.insert(0, args.python_dir)
    import an1_cache  # noqa: E402

    client = an1_cache.Client(None)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    print(f"{'shape':34s} {'round trip':>10s} {'kernel':>8s} {'server+':>8s} {'client+':>8s} "
          f"{'SDPA':>8s}  kernel that ran")
    for label, b, h, hkv, sq, sk, causal in SHAPES:
        q = torch.randn(b, h, sq, 128, device="cuda", dtype=torch.float16)
        k, v = (torch.randn(b, hkv, sk, 128, device="cuda", dtype=torch.float16) for _ in range(2))
        out = torch.empty_like(q)
        infos, trips = [], []
        for i in range(args.warmup + args.iters):
            start = time.perf_counter()
            _, info = client.attention(q, k, v, causal=causal, return_info=True, out=out)
            trip = time.perf_counter() - start
            if i >= args.warmup:
                infos.append(info)
                trips.append(trip)
        if any(info.copied_bytes for info in infos):
            sys.exit(f"{label}: bytes were copied through the host")
        # PyTorch's causal mask is top-left aligned for Sq != Sk: the decode step runs unmasked
        # (one query sees every key, the same function).
        sdpa_causal = causal and sq == sk
        for _ in range(args.warmup):
            F.scaled_dot_product_attention(q, k, v, is_causal=sdpa_causal, enable_gqa=True)
        times = []
        for _ in range(args.iters):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            F.scaled_dot_product_attention(q, k, v, is_causal=sdpa_causal, enable_gqa=True)
            e1.record()
            e1.synchronize()
            times.append(e0.elapsed_time(e1))
        trip = statistics.median(trips) * 1e3
        kernel = statistics.median(i.compute_seconds for i in infos) * 1e3
        server = statistics.median(i.server_seconds for i in infos) * 1e3
        print(f"{label:34s} {trip:9.3f}ms {kernel:7.3f}ms {server - kernel:7.3f}ms "
              f"{trip - server:7.3f}ms {statistics.median(times):7.3f}ms  {infos[-1].kernel}")
        del q, k, v, out
        torch.cuda.empty_cache()
    client.close()


if __name__ == "__main__":
    main()
