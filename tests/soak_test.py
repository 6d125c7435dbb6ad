"""A soak of the real server (issue 18): N client threads for a fixed time, each sending a mix of
valid and invalid requests, inline and through POSIX shared memory (the Python client, the real
an1d on the CPU). Every request sent must be answered (a result, or the refusal its invalidity
calls for), and the server's resident memory and open descriptors must stay flat between the end
of the warm-up and the end of the run.

    /usr/bin/python3 tests/soak_test.py --an1d build/bin/an1d --python-dir build/python \
        [--clients 8] [--seconds 120]

On the GPU host: the same with a bundle's an1d (`--an1d "BUNDLE/run an1d"`) and --seconds 600.
"""
import argparse
import os
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from an1d_process import An1dProcess, report  # noqa: E402


def resident_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d", required=True, help="an1d (a command: words split on spaces)")
    parser.add_argument("--python-dir", required=True)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--warmup", type=float, default=10)
    args = parser.parse_args()
    sys.path.insert(0, args.python_dir)
    import an1_cache
    import grpc

    problems = []
    counts = {"sent": 0, "answered": 0, "ok": 0, "refused": 0}
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as work:
        daemon = An1dProcess(args.an1d.split(), work, flags=["--no-gpu", "--log-level", "warn"])
        pid = daemon.proc.pid
        start = time.time()
        stop_at = start + args.warmup + args.seconds

        def client_loop(index):
            rng = np.random.default_rng(index)
            q = rng.standard_normal((1, 4, 33, 32), dtype=np.float32)
            k = rng.standard_normal((1, 2, 65, 32), dtype=np.float32)
            v = rng.standard_normal((1, 2, 65, 32), dtype=np.float32)
            a = rng.standard_normal((3, 17, 29), dtype=np.float32)
            b = rng.standard_normal((29, 11), dtype=np.float32)
            with an1_cache.Client(daemon.target, timeout=30) as client:
                n = 0
                while time.time() < stop_at:
                    kind = n % 5
                    n += 1
                    with lock:
                        counts["sent"] += 1
                    try:
                        if kind == 0:
                            client.attention(q, k, v)
                        elif kind == 1:
                            client.matmul(a, b)
                        elif kind == 2:  # invalid: head_dim of k differs from q's
                            client.attention(q, k[..., :16].copy(), v)
                        elif kind == 3:  # invalid: inner dimensions disagree
                            client.matmul(a, a)
                        else:  # inputs and output through shared memory
                            with client.register_system_shm(q) as q_shm, \
                                    client.register_system_shm(k) as k_shm:
                                client.attention(q_shm, k_shm, v)
                        outcome = "ok" if kind in (0, 1, 4) else None
                        if outcome is None:
                            raise AssertionError("an invalid request was answered OK")
                    except an1_cache.An1Error as error:
                        if kind in (2, 3) and error.code == grpc.StatusCode.INVALID_ARGUMENT:
                            outcome = "refused"
                        else:
                            with lock:
                                problems.append(f"client {index} request kind {kind}: {error}")
                            continue
                    except AssertionError as error:
                        with lock:
                            problems.append(f"client {index} request kind {kind}: {error}")
                        continue
                    with lock:
                        counts["answered"] += 1
                        counts[outcome] += 1

        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        time.sleep(args.warmup)
        rss0, fds0 = resident_kib(pid), open_descriptors(pid)
        for t in threads:
            t.join()
        rss1, fds1 = resident_kib(pid), open_descriptors(pid)
        code = daemon.stop()
    print(f"{counts['sent']} sent, {counts['answered']} answered ({counts['ok']} results, "
          f"{counts['refused']} refusals) by {args.clients} clients in {args.seconds:.0f} s; "
          f"RSS {rss0} -> {rss1} KiB, descriptors {fds0} -> {fds1}")
    if counts["sent"] != counts["answered"]:
        problems.append(f"sent {counts['sent']}, answered {counts['answered']}")
    if rss1 > rss0 * 1.25 + 16 * 1024:
        problems.append(f"resident memory grew from {rss0} to {rss1} KiB")
    if fds1 > fds0 + 4:
        problems.append(f"open descriptors grew from {fds0} to {fds1}")
    if code != 0:
        problems.append(f"an1d exited {code}")
    report(problems[:20])


if __name__ == "__main__":
    main()
