#!/usr/bin/python3
"""The gRPC service on a Unix socket (an1d --listen-unix) end to end on the CPU: the real an1d
serving TCP and the socket at once, the real `an1` CLI and the Python client (an1_cache) calling
through `unix:PATH`; the answers equal the TCP ones byte for byte (attention, paged attention
inline and with caches in shared memory), bad input is refused alike, `an1 info` names the
socket, the socket file has mode 0666 and is gone after the drain, a second an1d on the same path
refuses to start.

Run by ctest (label `integration`):
    unix_socket_test.py --an1d PATH --an1 PATH [--python-dir BUILD/python]
"""
import argparse
import os
import re
import stat
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from an1d_process import An1dProcess, checker, report, start_refusal  # noqa: E402

problems = []


check = checker(problems)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d", required=True)
    parser.add_argument("--an1", required=True)
    parser.add_argument("--python-dir")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="an1-unix-")
    path = os.path.join(work, "an1d.sock")
    server = An1dProcess([args.an1d], work, ["--no-gpu", "--listen-unix", path])
    unix = "unix:" + path
    mode = stat.S_IMODE(os.lstat(path).st_mode)
    check(stat.S_ISSOCK(os.lstat(path).st_mode) and mode == 0o666,
          f"the socket file is a socket of mode 0666 ({oct(mode)})")

    def cli(target, *command):
        return subprocess.run([args.an1, "--server", target, *command], capture_output=True,
                              text=True, timeout=120)

    info = cli(unix, "info")
    check(info.returncode == 0 and f"unix socket: {unix}" in info.stdout,
          "an1 info over the socket names it:\n" + info.stdout + info.stderr)
    check(cli(unix, "health").stdout.strip() == "SERVING", "an1 health over the socket")

    # The same call over TCP and over the socket: identical outputs.
    calls = {
        "attention": ["attention", "--batch-size", "2", "--n-heads", "4", "--n-kv-heads", "2",
                      "--seq-len", "5", "--kv-seq-len", "9", "--head-dim", "16", "--dtype",
                      "fp16"],
        "paged inline": ["paged-attention", "--page-size", "4", "--kv-lens", "9,1,16",
                         "--q-lens", "1,1,3", "--n-heads", "4", "--n-kv-heads", "2",
                         "--head-dim", "16", "--dtype", "fp16"],
        "paged append, caches in shared memory": [
            "paged-attention", "--page-size", "4", "--kv-lens", "9,17", "--q-lens", "2,1",
            "--n-heads", "2", "--head-dim", "16", "--dtype", "fp32", "--append"],
    }
    for name, command in calls.items():
        outs = {}
        for label, target in (("tcp", server.target), ("unix", unix)):
            out = os.path.join(work, f"{label}-{name.replace(' ', '_')}.npy")
            r = cli(target, *command, "--repeat", "3", "--out", out)
            check(r.returncode == 0, f"{name} over {label}: exit {r.returncode} {r.stderr}")
            outs[label] = np.load(out) if r.returncode == 0 else None
            if label == "unix" and r.returncode == 0:
                check(re.search(r"medians of 3 calls: round trip [\d.]+ ms", r.stdout) is not None,
                      f"{name} over unix: medians printed")
        check(outs["tcp"] is not None and outs["unix"] is not None and
              np.array_equal(outs["tcp"], outs["unix"]), f"{name}: the same output over both")

    bad = cli(unix, "attention", "--batch-size", "1", "--n-heads", "3", "--n-kv-heads", "2")
    check(bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr,
          "bad input over the socket: INVALID_ARGUMENT, exit 1: " + bad.stderr.strip())

    if args.python_dir:
        sys.path.insert(0, args.python_dir)
        import an1_cache
        rng = np.random.default_rng(3)
        q = rng.standard_normal((1, 4, 3, 16)).astype(np.float16)
        k = rng.standard_normal((1, 2, 8, 16)).astype(np.float16)
        v = rng.standard_normal((1, 2, 8, 16)).astype(np.float16)
        over_unix = an1_cache.Client(unix)
        over_tcp = an1_cache.Client(server.target)
        check(over_unix.health() == "SERVING", "Python client: health over the socket")
        check(over_unix.info().get("grpc_unix_socket") == path,
              "Python client: info names the socket")
        out_unix, info = over_unix.attention(q, k, v, return_info=True)
        out_tcp = over_tcp.attention(q, k, v)
        check(np.array_equal(out_unix, out_tcp), "Python client: the same output over both")
        check(info.round_trip_seconds > 0 and info.backend == "baseline",
              f"Python client: execution info over the socket ({info})")
        # (Shared memory over the socket is the CLI's append case above: a Python shm region
        # would show a psm_ name in /dev/shm that an1_cache_test, running beside, counts.)
        try:
            over_unix.attention(q, k[:, :, :, :8], v)
            check(False, "Python client: bad shapes over the socket are refused")
        except an1_cache.An1Error as e:
            check(e.code.name == "INVALID_ARGUMENT",
                  f"Python client: bad shapes over the socket are INVALID_ARGUMENT ({e.code})")
        over_unix.close()
        over_tcp.close()

    refusal = start_refusal(args.an1d, ["--listen-unix", path], "another server")
    check(refusal is None, f"a second an1d on the same socket refuses to start: {refusal}")
    check(cli(unix, "health").stdout.strip() == "SERVING", "the first still serves on it")

    server.stop_expecting_success(problems)
    check(not os.path.exists(path), "the socket file is removed after the drain")
    report(problems)


if __name__ == "__main__":
    main()
