#!/usr/bin/python3
"""The `an1` CLI end to end against a real `an1d`: .npy inputs and outputs checked against an
independent NumPy implementation, error exits, and a clean SIGTERM shutdown.

Run by ctest (label `integration`): cli_npy_test.py --an1d PATH --an1 PATH
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


check = checker(FAILURES)


def attention_reference(q, k, v, causal, scale):
    """softmax(q k^T * scale + bottom-right causal mask) v in float64, with GQA."""
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k = np.repeat(k, group, axis=1)
    v = np.repeat(v, group, axis=1)
    s = np.einsum("bhqd,bhkd->bhqk", q, k) * scale
    sq, sk = q.shape[2], k.shape[2]
    if causal:
        visible = np.arange(sk)[None, :] <= np.arange(sq)[:, None] + (sk - sq)
        s = np.where(visible, s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    p = np.exp(s - m)
    denom = p.sum(axis=-1, keepdims=True)
    p = np.divide(p, denom, out=np.zeros_like(p), where=denom > 0)
    return p @ v


def lse_reference(q, k, causal, scale):
    """ln(sum_j exp(q_i . k_j * scale)) per query row (B, H, Sq) in float64; -inf for rows that
    see no key (bottom-right causal mask), as FlashAttention's softmax_lse."""
    q, k = (x.astype(np.float64) for x in (q, k))
    k = np.repeat(k, q.shape[1] // k.shape[1], axis=1)
    s = np.einsum("bhqd,bhkd->bhqk", q, k) * scale
    sq, sk = q.shape[2], k.shape[2]
    if causal:
        visible = np.arange(sk)[None, :] <= np.arange(sq)[:, None] + (sk - sq)
        s = np.where(visible, s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return (safe + np.log(np.exp(s - safe).sum(axis=-1, keepdims=True)))[..., 0]


def rel_error(got, want):
    return float(np.max(np.abs(got.astype(np.float64) - want)) / max(np.max(np.abs(want)), 1e-30))


def run(cli, args, env=None):
    return subprocess.run([cli] + args, capture_output=True, text=True, timeout=120, env=env)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d", required=True)
    parser.add_argument("--an1", required=True)
    opts = parser.parse_args()

    work = tempfile.mkdtemp(prefix="an1_cli_test_")
    server = An1dProcess([opts.an1d], work, ["--no-gpu", "--log-level", "debug"])
    try:
        target = server.target
        env = dict(os.environ, AN1_SERVER=target)  # the target comes from the environment

        r = run(opts.an1, ["health"], env)
        check(r.returncode == 0 and r.stdout.strip() == "SERVING", "health says SERVING")
        r = run(opts.an1, ["info"], env)
        check(r.returncode == 0 and "backend baseline: available" in r.stdout, "info lists backends")

        # The global options (--server, --timeout, --max-message-bytes) after the subcommand as
        # well as before it. AN1_SERVER names an unreachable port here, so that only the option
        # can reach the server.
        elsewhere = dict(os.environ, AN1_SERVER="127.0.0.1:1")
        small = ["--batch-size", "1", "--n-heads", "1", "--head-dim", "8"]
        after = {
            "health": ["health"],
            "info": ["info"],
            "attention": ["attention", "--seq-len", "4", "--n-heads", "1", "--head-dim", "8"],
            "matmul": ["matmul", "--a-shape", "4,8", "--b-shape", "8,2"],
            "bench": ["bench", *small, "--seq-len", "4", "--iters", "1", "--warmup", "1",
                      "--backend-baseline", "--energy-seconds", "0", "--csv", ""],
        }
        for name, command in after.items():
            r = run(opts.an1, command + ["--server", target, "--timeout", "5",
                                         "--max-message-bytes", "8388608"], elsewhere)
            check(r.returncode == 0, f"an1 {name} --server ... --timeout 5 --max-message-bytes "
                                     f"(options after the subcommand) exits 0: {r.stderr.strip()}")
        r = run(opts.an1, ["health", "--server", target], elsewhere)
        check(r.returncode == 0 and r.stdout.strip() == "SERVING", "an1 health --server HOST:PORT")
        r = run(opts.an1, ["attention", "--seq-len", "4", "--n-heads", "1", "--head-dim", "8",
                           "--server", target, "--timeout", "5"], elsewhere)
        check(r.returncode == 0 and "checksum:" in r.stdout,
              "an1 attention ... --server HOST:PORT --timeout 5: " + r.stderr.strip())
        # power needs a GPU energy counter: on this CPU server it fails, but after reaching it.
        r = run(opts.an1, ["power", *small, "--seq-len", "4", "--duration", "1", "--server", target],
                elsewhere)
        check(r.returncode == 1 and "no GPU energy counter" in r.stderr,
              "an1 power --server reaches the server: " + r.stderr.strip())
        r = run(opts.an1, ["--server", target, "health"], elsewhere)
        check(r.returncode == 0 and r.stdout.strip() == "SERVING", "an1 --server HOST:PORT health")
        # Given in both places, the last one wins, as with an option given twice anywhere.
        r = run(opts.an1, ["--server", "127.0.0.1:1", "health", "--server", target], elsewhere)
        check(r.returncode == 0, "--server before and after the subcommand: the last one wins")
        r = run(opts.an1, ["--server", target, "--timeout", "5", "health",
                           "--server", "127.0.0.1:1"], env)
        check(r.returncode == 1 and "UNAVAILABLE" in r.stderr,
              "--server after the subcommand overrides the one before: " + r.stderr.strip())
        r = run(opts.an1, ["--server", target, "--server", target, "health"], elsewhere)
        check(r.returncode == 0, "--server twice before the subcommand: the last one wins")
        r = run(opts.an1, ["health", "--timeout", "-1"], env)
        check(r.returncode != 0 and "--timeout" in r.stderr,
              "--timeout after the subcommand is still checked: " + r.stderr.strip())
        r = run(opts.an1, ["health", "info"], env)
        check(r.returncode == 2, "two subcommands are still refused, exit 2")

        # Bad usage exits 2 (README: "2 for bad usage"), whatever CLI11 calls the error; help 0.
        usage_errors = {
            "a value that does not parse": ["attention", "--seq-len", "abc"],
            "a value out of range": ["attention", "--seq-len", "0"],
            "an unknown option": ["attention", "--no-such-option"],
            "an unknown option before the subcommand": ["--no-such-option", "health"],
            "no subcommand": [],
            "an unknown subcommand": ["frobnicate"],
            "an unknown --dtype": ["attention", "--dtype", "fp64"],
            "a negative --timeout": ["health", "--timeout", "-1"],
            "an unknown --transport": ["matmul", "--transport", "carrier-pigeon"],
            "a bad bench --energy-seconds": ["bench", "--energy-seconds", "-2"],
            "an option missing its value": ["attention", "--seq-len"],
        }
        for what, command in usage_errors.items():
            r = run(opts.an1, command, env)
            check(r.returncode == 2 and r.stderr.startswith("error: ") and
                  "Traceback" not in r.stderr and r.stdout == "",
                  f"{what} exits 2 (an1 {' '.join(command)}): rc {r.returncode}, "
                  f"{r.stderr.strip()!r}")
        r = run(opts.an1, ["frobnicate"], env)
        check("unknown subcommand frobnicate" in r.stderr and "attention" in r.stderr,
              "an unknown subcommand is named, with the known ones: " + r.stderr.strip())
        r = run(opts.an1, ["attention", "--seq-len", "abc"], env)
        check("--seq-len" in r.stderr and "abc" in r.stderr and "1797693" not in r.stderr,
              "the message names the option and the value, in plain words: " + r.stderr.strip())
        for command in (["--help"], ["attention", "--help"], ["bench", "--help"], ["-h"]):
            r = run(opts.an1, command, env)
            check(r.returncode == 0 and "Usage:" in r.stdout,
                  f"an1 {' '.join(command)} prints help and exits 0")

        # --transport cuda-ipc needs a CUDA GPU on the client's host: said plainly, exit 1, before
        # any input is made. GPU 999 exists nowhere; without a GPU, the default device fails too.
        cuda_ipc = [["attention", "--transport", "cuda-ipc", "--device", "999"],
                    ["matmul", "--transport", "cuda-ipc", "--device", "999"],
                    ["bench", "--transport", "cuda-ipc", "--device", "999", "--csv", ""]]
        if not os.path.exists("/dev/nvidiactl"):
            cuda_ipc.append(["attention", "--transport", "cuda-ipc", "--seq-len", "16"])
        for command in cuda_ipc:
            r = run(opts.an1, command, env)
            check(r.returncode == 1 and
                  r.stderr.startswith("error: --transport cuda-ipc needs a CUDA GPU on this "
                                      "host: ") and
                  r.stderr.strip().endswith("; use --transport shm or inline") and
                  r.stderr.count("\n") == 1,
                  f"an1 {' '.join(command)}: plain message, exit 1: {r.stderr.strip()!r}")

        rng = np.random.default_rng(0)
        shapes = {"q": (2, 4, 37, 64), "k": (2, 2, 53, 64), "v": (2, 2, 53, 64)}
        for file_dtype in (np.float32, np.float16):
            arrays = {n: rng.standard_normal(s).astype(file_dtype) for n, s in shapes.items()}
            for n, a in arrays.items():
                np.save(os.path.join(work, n + ".npy"), a)
            for dtype, tolerance in (("fp32", 1e-5), ("fp16", 2e-3), ("bf16", 1e-2)):
                if file_dtype == np.float16 and dtype == "fp32":
                    tolerance = 1e-5  # fp16 files are exact in fp32
                for causal in (True, False):
                    out = os.path.join(work, "o.npy")
                    if os.path.exists(out):
                        os.remove(out)
                    r = run(opts.an1, ["--server", target, "attention", "--dtype", dtype,
                                       "--causal" if causal else "--no-causal",
                                       "--q", os.path.join(work, "q.npy"),
                                       "--k", os.path.join(work, "k.npy"),
                                       "--v", os.path.join(work, "v.npy"), "--out", out])
                    what = f"attention {np.dtype(file_dtype).name} file as {dtype} causal={causal}"
                    if r.returncode != 0:
                        check(False, what + ": " + r.stderr)
                        continue
                    got = np.load(out)
                    # The reference sees the inputs as the server did: rounded to the wire dtype.
                    inputs = [arrays[n] for n in ("q", "k", "v")]
                    if dtype == "fp16":
                        inputs = [x.astype(np.float16) for x in inputs]
                    elif dtype == "bf16":
                        inputs = [(x.astype(np.float32).view(np.uint32) + 0x7FFF +
                                   ((x.astype(np.float32).view(np.uint32) >> 16) & 1)
                                   & 0xFFFF0000).view(np.float32) for x in inputs]
                    want = attention_reference(*inputs, causal, 1.0 / 8.0)
                    err = rel_error(got, want)
                    check(got.shape == shapes["q"] and err <= tolerance and
                          "backend: baseline" in r.stdout and "checksum:" in r.stdout,
                          f"{what}: rel err {err:.2e} <= {tolerance}")
                    check(got.dtype == (np.float16 if dtype == "fp16" else np.float32),
                          f"{what}: output file dtype {got.dtype}")

        # --return-lse --lse-out: the log-sum-exp of every query row as float32 .npy, -inf for the
        # rows a causal mask leaves without a key (here Sq 9 > Sk 4: 5 rows per head).
        lse_shapes = {"q": (2, 4, 9, 16), "k": (2, 2, 4, 16), "v": (2, 2, 4, 16)}
        lse_inputs = {n: rng.standard_normal(s).astype(np.float32) for n, s in lse_shapes.items()}
        for n, x in lse_inputs.items():
            np.save(os.path.join(work, "lse_" + n + ".npy"), x)
        files = [arg for n in ("q", "k", "v")
                 for arg in ("--" + n, os.path.join(work, f"lse_{n}.npy"))]
        for causal in (True, False):
            lse_out = os.path.join(work, "lse.npy")
            if os.path.exists(lse_out):
                os.remove(lse_out)
            r = run(opts.an1, ["--server", target, "attention", "--dtype", "fp32", "--scale", "0.3",
                               "--causal" if causal else "--no-causal", *files, "--return-lse",
                               "--lse-out", lse_out])
            what = f"attention --return-lse --lse-out causal={causal}"
            if r.returncode != 0 or not os.path.exists(lse_out):
                check(False, what + ": " + r.stderr)
                continue
            got = np.load(lse_out)
            want = lse_reference(lse_inputs["q"], lse_inputs["k"], causal, 0.3)
            inf_rows = 2 * 4 * 5 if causal else 0
            finite = np.isfinite(want)
            err = float(np.max(np.abs(got[finite] - want[finite])))
            check(got.dtype == np.float32 and got.shape == (2, 4, 9) and
                  np.array_equal(np.isneginf(got), ~finite) and err <= 1e-4,
                  f"{what}: .npy float32 (2, 4, 9), -inf where no key is seen, "
                  f"max abs err {err:.1e}")
            check(f", {inf_rows} rows -inf (see no key)" in r.stdout and
                  "lse: fp32 (2, 4, 9): min " in r.stdout and f"wrote {lse_out}" in r.stdout,
                  f"{what}: the summary line: " +
                  "".join(line for line in r.stdout.splitlines() if line.startswith("lse")))
            check("kernel: baseline.cpu" in r.stdout, f"{what}: prints the kernel that ran")
        r = run(opts.an1, ["--server", target, "attention", "--seq-len", "4", "--n-heads", "1",
                           "--head-dim", "8", "--return-lse"])
        check(r.returncode == 0 and "lse: fp32 (1, 1, 4): min " in r.stdout and
              "0 rows -inf" in r.stdout and "wrote" not in r.stdout,
              "--return-lse alone prints the summary and writes no file")
        r = run(opts.an1, ["--server", target, "attention", "--seq-len", "4", "--n-heads", "1",
                           "--head-dim", "8"])
        check(r.returncode == 0 and "lse:" not in r.stdout, "no lse line unless asked for")

        a = rng.standard_normal((3, 1, 17, 29)).astype(np.float32)
        b = rng.standard_normal((5, 29, 11)).astype(np.float32)
        np.save(os.path.join(work, "a.npy"), a)
        np.save(os.path.join(work, "b.npy"), b)
        want = np.matmul(a.astype(np.float64), b.astype(np.float64))
        for dtype, tolerance in (("fp32", 1e-5), ("fp16", 2e-3)):
            out = os.path.join(work, "c.npy")
            r = run(opts.an1, ["--server", target, "matmul", "--dtype", dtype,
                               "--a", os.path.join(work, "a.npy"), "--b", os.path.join(work, "b.npy"),
                               "--out", out])
            if r.returncode != 0:
                check(False, f"matmul {dtype}: " + r.stderr)
                continue
            got = np.load(out)
            ref = want
            if dtype == "fp16":
                ref = np.matmul(a.astype(np.float16).astype(np.float64),
                                b.astype(np.float16).astype(np.float64))
            err = rel_error(got, ref)
            check(got.shape == (3, 5, 17, 11) and err <= tolerance,
                  f"matmul (3,1,17,29)@(5,29,11) {dtype}: rel err {err:.2e} <= {tolerance}")

        # --transport shm: the same results through a shared memory region, nothing left behind.
        def leftovers():
            return [n for n in os.listdir("/dev/shm") if n.startswith("cli-")]
        before = set(leftovers())
        for name, extra in (("attention", ["--q", os.path.join(work, "q.npy"),
                                           "--k", os.path.join(work, "k.npy"),
                                           "--v", os.path.join(work, "v.npy")]),
                            ("matmul", ["--a", os.path.join(work, "a.npy"),
                                        "--b", os.path.join(work, "b.npy")])):
            outs = {}
            for transport in ("inline", "shm"):
                outs[transport] = os.path.join(work, f"{name}-{transport}.npy")
                r = run(opts.an1, ["--server", target, name, "--dtype", "fp32", "--transport",
                                   transport, *extra, "--out", outs[transport]])
                check(r.returncode == 0, f"{name} --transport {transport}: {r.stderr.strip()}")
            check(os.path.exists(outs["shm"]) and
                  np.array_equal(np.load(outs["inline"]), np.load(outs["shm"])),
                  f"{name}: shm and inline transports give identical outputs")
        r = run(opts.an1, ["--server", target, "attention", "--transport", "shm", "--backend", "an1"])
        check(r.returncode != 0 and "FAILED_PRECONDITION" in r.stderr, "shm request error exits 1")
        check(set(leftovers()) == before, "no shared memory object left in /dev/shm")

        r = run(opts.an1, ["--server", target, "attention", "--backend", "an1"])
        check(r.returncode != 0 and "FAILED_PRECONDITION" in r.stderr and "GPU" in r.stderr,
              "attention --backend an1 exits non-zero with the server's reason")
        r = run(opts.an1, ["--server", target, "attention", "--n-heads", "6", "--n-kv-heads", "4"])
        check(r.returncode != 0 and "INVALID_ARGUMENT" in r.stderr, "H % Hkv != 0 is refused")
        r = run(opts.an1, ["--server", target, "attention", "--q", os.path.join(work, "q.npy")])
        check(r.returncode == 2 and "--k" in r.stderr, "partial .npy inputs are a usage error")
        r = run(opts.an1, ["--server", target, "attention", "--dtype", "fp64"])
        check(r.returncode == 2, "unknown --dtype is refused by the CLI, exit 2")
        r = run(opts.an1, ["--server", "127.0.0.1:1", "--timeout", "5", "health"])
        check(r.returncode != 0 and "UNAVAILABLE" in r.stderr, "unreachable server: UNAVAILABLE")
        r = run(opts.an1, ["--server", target, "attention", "--batch-size", "1", "--n-heads", "2",
                           "--seq-len", "16", "--head-dim", "8"])
        check(r.returncode == 0, "the server still serves after the errors")
    finally:
        code = server.stop()
        check(code == 0, f"an1d exits 0 on SIGTERM (got {code})")
        check("draining" in server.log_text(), "an1d logs the drain")

    print(f"cli_npy_test: {len(FAILURES)} failure(s)")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
