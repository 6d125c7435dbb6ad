#!/usr/bin/python3
"""`an1 paged-attention` end to end against a real `an1d` on the CPU: .npy inputs (ragged
lengths 1 and primes, an empty sequence, page sizes 1, 16 and 256, append, sliding window,
softcap, LSE, GQA group 5, NaN in every cache slot that must not be read) checked against a NumPy
float64 reference, the index tensors inline and in a shared-memory region; refusals exit 1 with the server's INVALID_ARGUMENT; random inputs from flags.

Run by ctest (label `integration`): cli_paged_test.py --an1d PATH --an1 PATH
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from an1d_process import An1dProcess, checker  # noqa: E402

FAILURES = []
DTYPES = {"fp32": np.float32, "fp16": np.float16, "bf16": np.float32}  # bf16: sent as fp32 files
TOLERANCE = {"fp32": 1e-4, "fp16": 3e-3, "bf16": 2e-2}


check = checker(FAILURES)


def bf16_round(x):
    """Rounds float32 values to bfloat16 (nearest even), as the client converts them."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return bits.astype(np.uint32).view(np.float32)


def make_case(rng, kv_lens, q_lens, heads, kv_heads, dim, page_size, append, dtype):
    pages = [(n + page_size - 1) // page_size for n in kv_lens]
    num_pages = sum(pages) + 2
    max_pages = max(pages) + 1
    order = rng.permutation(num_pages)
    table = np.full((len(kv_lens), max_pages), 1 << 30, np.int32)  # padding: never read
    k_cache = np.full((num_pages, page_size, kv_heads, dim), np.nan, np.float32)
    v_cache = k_cache.copy()
    nxt = 0
    for b, n in enumerate(kv_lens):
        filled = n - (q_lens[b] if append else 0)
        for p in range(pages[b]):
            table[b, p] = order[nxt]
            nxt += 1
            for s in range(page_size):
                if p * page_size + s < filled:
                    k_cache[table[b, p], s] = rng.standard_normal((kv_heads, dim))
                    v_cache[table[b, p], s] = rng.standard_normal((kv_heads, dim))
    total_q = sum(q_lens)
    case = {
        "q": rng.standard_normal((total_q, heads, dim)).astype(np.float32),
        "k_cache": k_cache, "v_cache": v_cache, "page_table": table,
        "kv_lens": np.array(kv_lens, np.int32),
        "cu_seqlens_q": np.concatenate([[0], np.cumsum(q_lens)]).astype(np.int32),
    }
    if append:
        case["k_new"] = rng.standard_normal((total_q, kv_heads, dim)).astype(np.float32)
        case["v_new"] = rng.standard_normal((total_q, kv_heads, dim)).astype(np.float32)
    for name in ("q", "k_cache", "v_cache", "k_new", "v_new"):  # what the server will see
        if name in case:
            case[name] = (bf16_round(case[name]) if dtype == "bf16"
                          else case[name].astype(DTYPES[dtype]).astype(np.float32))
    return case


def reference(case, page_size, causal=True, window=(-1, -1), softcap=0.0):
    """Output (total_q, H, D) and LSE (total_q, H) in float64."""
    q = case["q"].astype(np.float64)
    total_q, heads, dim = q.shape
    kv_heads = case["k_cache"].shape[2]
    out = np.zeros_like(q)
    lse = np.full((total_q, heads), -np.inf)
    cu = case["cu_seqlens_q"]
    for b, n in enumerate(case["kv_lens"]):
        q_len = cu[b + 1] - cu[b]
        if q_len == 0:
            continue
        pos = np.arange(n)
        pages = case["page_table"][b, pos // page_size]
        k = case["k_cache"][pages, pos % page_size].astype(np.float64)  # (n, Hkv, D)
        v = case["v_cache"][pages, pos % page_size].astype(np.float64)
        if "k_new" in case:
            k[n - q_len:] = case["k_new"][cu[b]:cu[b + 1]]
            v[n - q_len:] = case["v_new"][cu[b]:cu[b + 1]]
        k = np.repeat(k, heads // kv_heads, axis=1)
        v = np.repeat(v, heads // kv_heads, axis=1)
        qb = q[cu[b]:cu[b + 1]]
        s = np.einsum("qhd,khd->hqk", qb, k) / np.sqrt(dim)
        if softcap > 0:
            s = softcap * np.tanh(s / softcap)
        i = (n - q_len + np.arange(q_len))[:, None]
        j = pos[None, :]
        visible = np.ones((q_len, n), bool)
        if causal:
            visible &= j <= i
        if window[0] >= 0:
            visible &= j >= i - window[0]
        if window[1] >= 0:
            visible &= j <= i + window[1]
        s = np.where(visible[None], s, -np.inf)
        m = s.max(axis=-1, keepdims=True)
        p = np.exp(s - m)
        out[cu[b]:cu[b + 1]] = np.einsum("hqk,khd->qhd", p / p.sum(-1, keepdims=True), v)
        lse[cu[b]:cu[b + 1]] = (m[..., 0] + np.log(p.sum(-1))).T
    return out, lse


def run(cli, args):
    return subprocess.run([cli] + args, capture_output=True, text=True, timeout=120)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d", required=True)
    parser.add_argument("--an1", required=True)
    opts = parser.parse_args()
    work = tempfile.mkdtemp(prefix="an1-paged-")
    server = An1dProcess([opts.an1d], work, ["--no-gpu"])
    rng = np.random.default_rng(15)
    base = ["paged-attention", "--server", server.target]
    try:
        cases = [
            # name, dtype, kv_lens, q_lens, heads, kv_heads, page, append, causal, window, softcap
            ("page 1 fp32 decode+prefill", "fp32", [1, 7, 13], [1, 3, 13], 4, 2, 1, False,
             True, (-1, -1), 0.0),
            ("page 16 fp16 append window softcap gqa5", "fp16", [37, 2, 101], [5, 1, 31], 10, 2,
             16, True, True, (19, -1), 20.0),
            ("page 256 bf16 non-causal, an empty sequence", "bf16", [300, 11, 5], [17, 0, 5], 4,
             4, 256, False, False, (8, 4), 0.0),
        ]
        for (name, dtype, kv_lens, q_lens, heads, kv_heads, page, append, causal, window,
             softcap) in cases:
            case = make_case(rng, kv_lens, q_lens, heads, kv_heads, 32, page, append, dtype)
            flags = ["--dtype", dtype]
            for key, value in case.items():
                path = os.path.join(work, key + ".npy")
                np.save(path, value if value.dtype == np.int32 else value.astype(DTYPES[dtype]))
                flags += ["--" + key.replace("_", "-") + ("-file" if key == "kv_lens" else ""),
                          path]
            if not causal:
                flags.append("--no-causal")
            flags += ["--window-left", str(window[0]), "--window-right", str(window[1]),
                      "--softcap", str(softcap)]
            out, lse = os.path.join(work, "out.npy"), os.path.join(work, "lse.npy")
            if append:  # the append needs the caches in a region: inline is refused
                r = run(opts.an1, base + flags)
                check(r.returncode == 1 and "INVALID_ARGUMENT" in r.stderr and
                      "shared memory region" in r.stderr, name + ": append with inline caches "
                      "refused (" + r.stderr.strip()[:120] + ")")
                flags += ["--transport", "shm"]
            r = run(opts.an1, base + flags + ["--out", out, "--lse-out", lse])
            check(r.returncode == 0, name + ": exit 0 " + r.stderr.strip())
            if r.returncode != 0:
                continue
            want, want_lse = reference(case, page, causal, window, softcap)
            got = np.load(out).astype(np.float64)
            err = np.abs(got - want).max() / np.abs(want).max()
            check(np.isfinite(got).all() and err <= TOLERANCE[dtype],
                  "%s: output within %g of the float64 reference (%.2g)" % (name, TOLERANCE[dtype], err))
            got_lse = np.load(lse)
            check(got_lse.shape == want_lse.shape and
                  np.allclose(got_lse, want_lse, atol=1e-3, rtol=1e-4),
                  name + ": lse matches")
            if not append:  # the index tensors in a shared-memory region of their own
                r = run(opts.an1, base + flags + ["--index-transport", "shm", "--out", out])
                check(r.returncode == 0 and np.array_equal(np.load(out), got.astype(np.load(out).dtype)),
                      name + ": --index-transport shm gives the same output " + r.stderr.strip())

        # Refusals name the field and index.
        case = make_case(rng, [20, 9], [3, 1], 2, 2, 16, 8, False, "fp32")
        case["page_table"][1, 1] = 9999
        flags = []
        for key, value in case.items():
            path = os.path.join(work, key + ".npy")
            np.save(path, value)
            flags += ["--" + key.replace("_", "-") + ("-file" if key == "kv_lens" else ""), path]
        r = run(opts.an1, base + flags + ["--dtype", "fp32"])
        check(r.returncode == 1 and "INVALID_ARGUMENT" in r.stderr and
              "page_table[1][1] = 9999 is outside [0, " in r.stderr,
              "a page-table entry out of range is refused: " + r.stderr.strip())

        # Random inputs from flags (slots that must not be read are NaN).
        r = run(opts.an1, base + ["--kv-lens", "100,37,5", "--q-lens", "1,1,5", "--page-size",
                                  "16", "--append", "--return-lse", "--n-heads", "10",
                                  "--n-kv-heads", "2"])
        check(r.returncode == 0 and "output: fp16 (7, 10, 64)" in r.stdout and
              "nan" not in r.stdout.lower(), "random inputs with --append: " + r.stdout[-200:])
        r = run(opts.an1, base + ["--kv-lens", "3", "--q-lens", "4"])
        check(r.returncode == 1 and "q_len <= kv_len" in r.stderr, "q_len > kv_len: usage error")
    finally:
        code = server.stop()
        check(code == 0, "an1d exits 0 on SIGTERM")
    if FAILURES:
        print("%d failure(s)" % len(FAILURES))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
