#!/usr/bin/python3
"""The served an1 attention beside PyTorch SDPA on the same inputs (label `gpu`, needs torch).

A real licensed an1d (the test daemon, trusting a key made here) on the GPU; the an1 CLI sends
q, k, v from .npy files with --backend an1 and writes the output to .npy. The same inputs go
through torch.nn.functional.scaled_dot_product_attention (fp16/bf16 on the GPU) and a float64
reference; both results must be within the kernel tolerance of the reference (relative error
2e-3 fp16, 1e-2 bf16, max |error| / max |reference|), with no NaN. Awkward shapes: lengths of
1, primes, Sq != Sk (bottom-right causal), GQA and MQA, head_dim 64 and 128, custom scale.
Exits 77 (ctest: skipped) without a GPU or without torch.

    gpu_sdpa_compare.py --an1d PATH --an1 PATH --an1-license PATH   (or --bundle DIR)
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from an1d_process import An1dProcess, licensed_env  # noqa: E402

# (B, H, Hkv, Sq, Sk, D, causal, scale)
CASES = [
    (1, 1, 1, 1, 1, 64, True, None),
    (2, 4, 2, 37, 53, 64, True, None),
    (1, 8, 1, 131, 131, 128, True, None),    # MQA
    (2, 6, 3, 97, 29, 128, True, None),      # Sq > Sk: the first rows see no key
    (1, 2, 2, 1, 257, 128, False, None),     # one query (decode)
    (3, 2, 1, 200, 333, 64, False, 0.3),     # custom scale
    (1, 4, 4, 509, 509, 128, True, -0.05),   # negative scale
]


def reference(q, k, v, causal, scale):
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    groups = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, groups, axis=1), np.repeat(v, groups, axis=1)
    s = q @ k.transpose(0, 1, 3, 2) * scale
    sq, sk = q.shape[2], k.shape[2]
    if causal:
        visible = np.tril(np.ones((sq, sk), dtype=bool), k=sk - sq)
        s = np.where(visible, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    p = np.exp(s - m)
    l = p.sum(axis=-1, keepdims=True)
    return np.where(l > 0, (p / np.where(l > 0, l, 1)) @ v, 0.0)


def rel_error(x, ref):
    return float(np.abs(x.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d")
    parser.add_argument("--an1")
    parser.add_argument("--an1-license")
    parser.add_argument("--bundle", help="a gpu-bundle.sh folder with an1d_with_test_keys, an1, "
                        "an1-license")
    opts = parser.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("skipped: no torch")
        return 77
    if not torch.cuda.is_available():
        print("skipped: torch sees no GPU")
        return 77
    run = (lambda name: [f"{opts.bundle}/run", name]) if opts.bundle else None
    an1d = run("an1d_with_test_keys") if run else [opts.an1d]
    an1 = run("an1") if run else [opts.an1]
    an1_license = run("an1-license") if run else [opts.an1_license]

    work = tempfile.mkdtemp(prefix="an1_sdpa_")
    env = licensed_env(an1_license, work)
    server = An1dProcess(an1d, work, env=env)
    failures = 0
    try:
        info = subprocess.run(an1 + ["--server", server.target, "info"], capture_output=True,
                              text=True)
        if "mode: gpu" not in info.stdout:
            print("skipped: the server has no usable GPU\n" + info.stdout)
            return 77
        rng = np.random.default_rng(7)
        for B, H, Hkv, Sq, Sk, D, causal, scale in CASES:
            for dtype, tol in (("fp16", 2e-3), ("bf16", 1e-2)):
                tdtype = torch.float16 if dtype == "fp16" else torch.bfloat16
                # Inputs rounded to the wire dtype once, so all three see the same values.
                tensors = [torch.from_numpy(rng.standard_normal(shape)).to(tdtype)
                           for shape in ((B, H, Sq, D), (B, Hkv, Sk, D), (B, Hkv, Sk, D))]
                paths = []
                for name, t in zip("qkv", tensors):
                    paths.append(os.path.join(work, f"{name}.npy"))
                    np.save(paths[-1], t.float().numpy())
                out = os.path.join(work, "o.npy")
                args = ["--server", server.target, "attention", "--backend", "an1", "--dtype",
                        dtype, "--q", paths[0], "--k", paths[1], "--v", paths[2], "--out", out,
                        "--causal" if causal else "--no-causal"]
                if scale is not None:
                    args.append(f"--scale={scale}")  # "=": a negative value is not an option
                r = subprocess.run(an1 + args, capture_output=True, text=True)
                label = f"{dtype} B={B} H={H} Hkv={Hkv} Sq={Sq} Sk={Sk} D={D} causal={causal} " \
                        f"scale={scale}"
                if r.returncode != 0:
                    print(f"FAIL {label}: an1 exited {r.returncode}: {r.stdout}{r.stderr}")
                    failures += 1
                    continue
                ours = np.load(out).astype(np.float64)
                q, k, v = (t.float().numpy() for t in tensors)
                s = scale if scale is not None else 1.0 / np.sqrt(D)
                ref = reference(q, k, v, causal, s)
                qc, kc, vc = (t.cuda() for t in tensors)
                # SDPA's is_causal is top-left aligned; an explicit bottom-right mask otherwise.
                mask = None
                if causal:
                    mask = torch.ones(Sq, Sk, dtype=torch.bool, device="cuda").tril(Sk - Sq)
                sdpa = F.scaled_dot_product_attention(qc, kc, vc, attn_mask=mask, scale=s,
                                                      enable_gqa=Hkv != H)
                sdpa = sdpa.float().cpu().numpy().astype(np.float64)
                # Rows that see no key (Sq > Sk, causal) are 0 by our contract; SDPA leaves them
                # undefined (NaN or garbage), so SDPA is compared on the other rows only.
                seen = np.ones(Sq, dtype=bool)
                if causal:
                    seen = np.arange(Sq) + (Sk - Sq) >= 0
                e_ours = rel_error(ours, ref)
                e_sdpa = rel_error(sdpa[:, :, seen], ref[:, :, seen]) if seen.any() else 0.0
                diff = np.abs(ours[:, :, seen] - sdpa[:, :, seen]).max() if seen.any() else 0.0
                ok = not np.isnan(ours).any() and e_ours <= tol
                print(("ok   " if ok else "FAIL ") + f"{label}: an1 rel err {e_ours:.2e}, "
                      f"SDPA {e_sdpa:.2e}, an1 vs SDPA max |diff| {diff:.2e}")
                failures += not ok
    finally:
        code = server.stop()
        if code != 0:
            print(f"FAIL an1d exited {code}\n" + server.log_text())
            failures += 1
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
