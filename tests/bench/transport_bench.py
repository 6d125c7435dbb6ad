"""Transports on the GPU host (not a test): the real an1d and the real an1 CLI, attention at
B=8, H=32, S=2048, D=128 fp16, through inline, shm and cuda-ipc; bytes copied, end-to-end and
server-side times per transport; the outputs of the three transports compared; then 8
concurrent cuda-ipc clients against back-to-back kernel time.

    python3 tests/bench/transport_bench.py BUNDLE_DIR
"""
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from an1d_process import An1dProcess  # noqa: E402

bundle = sys.argv[1]
work = tempfile.mkdtemp()
server = An1dProcess([f"{bundle}/run", "an1d"], work, ["--streams-per-gpu", "2"])
target = server.target
metrics_url = server.metrics_url
shape = ["--batch-size", "8", "--n-heads", "32", "--seq-len", "2048", "--head-dim", "128"]


def metrics():
    text = urllib.request.urlopen(metrics_url).read().decode()
    def total(name):
        return sum(float(v) for v in re.findall(r"^%s\{[^}]*\} (\S+)$" % name, text, re.M))
    return {k: total(k) for k in ("an1_request_duration_seconds_sum",
                                  "an1_request_duration_seconds_count",
                                  "an1_compute_duration_seconds_sum")}


def cli(*args):
    r = subprocess.run([f"{bundle}/run", "an1", "--server", target, *args],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
    return r


print(f"{'transport':10s} {'copied MB':>10s} {'e2e ms':>9s} {'server ms':>10s} {'kernel ms':>10s} "
      f"{'server - kernel us (mean)':>26s} {'(median)':>9s}")
kernel_ms = None
for transport in ("inline", "shm", "cuda-ipc"):
    cli("attention", *shape, "--transport", transport, "--repeat", "2")  # warm-up
    before = metrics()
    r = cli("attention", *shape, "--transport", transport, "--repeat", "20",
            "--out", os.path.join(work, f"o_{transport}.npy"))
    after = metrics()
    m = re.search(r"round trip ([\d.]+) ms, server compute ([\d.]+) ms.*beyond compute ([\d.]+) us, "
                  r"copied (\d+) bytes", r.stdout)
    n = after["an1_request_duration_seconds_count"] - before["an1_request_duration_seconds_count"]
    server_ms = (after["an1_request_duration_seconds_sum"] - before["an1_request_duration_seconds_sum"]) / n * 1e3
    compute_ms = (after["an1_compute_duration_seconds_sum"] - before["an1_compute_duration_seconds_sum"]) / n * 1e3
    print(f"{transport:10s} {int(m.group(4)) / 2**20:10.1f} {float(m.group(1)):9.3f} {server_ms:10.3f} "
          f"{float(m.group(2)):10.3f} {1e3 * (server_ms - compute_ms):26.1f} {float(m.group(3)):9.1f}")
    if transport == "cuda-ipc":
        kernel_ms = float(m.group(2))

outs = {t: np.load(os.path.join(work, f"o_{t}.npy")) for t in ("inline", "shm", "cuda-ipc")}
print("outputs identical across transports:",
      all(np.array_equal(outs["inline"], outs[t]) for t in ("shm", "cuda-ipc")))

clients, per_client = 8, 30
start_at = time.time() + 8  # every client has placed its inputs by then
procs = [subprocess.Popen([f"{bundle}/run", "an1", "--server", target, "attention", *shape,
                           "--transport", "cuda-ipc", "--repeat", str(per_client),
                           "--seed", str(i), "--start-at", f"{start_at:.3f}"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
         for i in range(clients)]
starts, ends, failed = [], [], 0
for p in procs:
    out, err = p.communicate()
    found = re.search(r"all \d+ calls took ([\d.]+) ms, ending at unix time ([\d.]+)", out)
    if p.returncode != 0 or not found:
        failed += 1
        print("client failed:", out[-500:], err[-500:])
        continue
    ends.append(float(found.group(2)))
    starts.append(float(found.group(2)) - float(found.group(1)) / 1e3)
# From the first client's first call to the last client's last call: the requests of all
# clients over the time they took together (gaps where fewer clients ran count against us).
window_ms = (max(ends) - min(starts)) * 1e3 if ends else float("nan")
ms_per_request = window_ms / (len(ends) * per_client) if ends else float("nan")
overlap_ms = (min(ends) - max(starts)) * 1e3 if ends else float("nan")
print(f"8 concurrent cuda-ipc clients x {per_client}: {clients - failed} clients ok, {failed} failed; "
      f"{ms_per_request:.3f} ms per request over {window_ms:.0f} ms (all 8 running together for "
      f"{overlap_ms:.0f} ms) vs {kernel_ms:.3f} ms back-to-back kernel time: "
      f"{ms_per_request / kernel_ms:.3f}x")
server.stop()
