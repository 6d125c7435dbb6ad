#!/usr/bin/python3
"""CUDA IPC end to end (label `gpu`): a real an1d on the GPU and, as a separate process, the an1
CLI, which allocates GPU memory, exports it with cudaIpcGetMemHandle and registers it; the server
reads q, k, v from it and writes the output into it in place. The result must equal the inline
transport's bit for bit, with no tensor bytes copied through the host on the server's side.
Exits 77 (ctest: skipped) where no GPU is usable.

    gpu_ipc_test.py --an1d PATH --an1 PATH      (or --bundle DIR on a GPU host)
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from an1d_process import An1dProcess  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d")
    parser.add_argument("--an1")
    parser.add_argument("--bundle", help="a gpu-bundle.sh folder instead of --an1d/--an1")
    opts = parser.parse_args()
    an1d = [f"{opts.bundle}/run", "an1d"] if opts.bundle else [opts.an1d]
    an1 = [f"{opts.bundle}/run", "an1"] if opts.bundle else [opts.an1]

    work = tempfile.mkdtemp(prefix="an1_ipc_test_")
    server = An1dProcess(an1d, work)
    try:
        target = server.target
        info = subprocess.run(an1 + ["--server", target, "info"], capture_output=True, text=True)
        if "mode: gpu" not in info.stdout:
            print("skipped: the server has no usable GPU\n" + info.stdout)
            return 77
        failures = 0
        for op, shape in (("attention", ["--batch-size", "2", "--n-heads", "4", "--n-kv-heads", "2",
                                         "--seq-len", "37", "--kv-seq-len", "53", "--head-dim", "64"]),
                          ("matmul", ["--a-shape", "3,1,17,29", "--b-shape", "5,29,11"])):
            outs = {}
            for transport in ("inline", "cuda-ipc"):
                outs[transport] = os.path.join(work, f"{op}-{transport}.npy")
                r = subprocess.run(an1 + ["--server", target, op, *shape, "--transport", transport,
                                          "--out", outs[transport]], capture_output=True, text=True)
                ok = r.returncode == 0 and (transport == "inline" or "(0 bytes)" in r.stdout)
                print(("ok   " if ok else "FAIL ") + f"{op} --transport {transport}")
                if not ok:
                    print(r.stdout, r.stderr)
                    failures += 1
            if all(os.path.exists(p) for p in outs.values()):
                same = np.array_equal(np.load(outs["inline"]), np.load(outs["cuda-ipc"]))
                print(("ok   " if same else "FAIL ") + f"{op}: cuda-ipc output equals inline")
                failures += not same
        print(f"gpu_ipc_test: {failures} failure(s)")
        return 1 if failures else 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
