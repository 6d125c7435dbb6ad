"""The energy metrics checked against each other under sustained load, on the GPU host.

A licensed an1d (test daemon) serves `an1 bench --concurrency 8 --duration 60` (an1 backend,
CUDA IPC tensors, so the GPU is never waiting for copies) while this script scrapes /metrics
every second. Over every 30-second window of the steady part it compares the average power
from the energy counter (increase / time, what rate(an1_gpu_energy_joules_total[30s]) computes)
with the mean of the power gauge an1_gpu_power_watts, and over the whole run the energy
attributed to requests (an1_request_energy_joules_total) with the counter's increase. Both must
agree within 10%.

    python3 tests/bench/energy_agreement.py BUNDLE_DIR [--seconds 60] [--clients 8]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from an1d_process import An1dProcess, licensed_env  # noqa: E402


def scrape(url):
    text = urllib.request.urlopen(url, timeout=5).read().decode()

    def total(name):
        return sum(float(v) for v in re.findall(r"^" + name + r"(?:\{[^}]*\})? (\S+)$", text, re.M))
    return {"text": text, "t": time.time(), "energy": total("an1_gpu_energy_joules_total"),
            "power": total("an1_gpu_power_watts"),
            "attributed": total("an1_request_energy_joules_total"),
            "available": total("an1_gpu_metrics_available")}


def busy_text(samples):
    """The text of a scrape taken while requests ran (the GPU series all present)."""
    return samples[len(samples) // 2]["text"] if samples else ""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--scrape-out", help="write the last /metrics scrape under load here")
    a = p.parse_args()
    run = lambda name: [f"{a.bundle}/run", name]  # noqa: E731
    work = tempfile.mkdtemp(prefix="an1_energy_")
    env = licensed_env(run("an1-license"), work)
    server = An1dProcess(run("an1d_with_test_keys"), work, env=env)
    samples = []
    try:
        if scrape(server.metrics_url)["available"] != 1:
            print("FAIL an1_gpu_metrics_available is not 1")
            return 1
        load = subprocess.Popen(
            run("an1") + ["--server", server.target, "bench", "--backend-an1", "--batch-size", "8",
                          "--n-heads", "32", "--seq-len", "2048", "--head-dim", "128",
                          "--transport", "cuda-ipc", "--concurrency", str(a.clients), "--warmup",
                          "3", "--duration", str(a.seconds), "--csv", ""],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        stop = threading.Event()

        def sampler():
            while not stop.is_set():
                samples.append(scrape(server.metrics_url))
                stop.wait(1.0)
        thread = threading.Thread(target=sampler)
        thread.start()
        bench_out = load.communicate()[0]
        stop.set()
        thread.join()
        print(bench_out)
    finally:
        server.stop()
    if a.scrape_out:
        with open(a.scrape_out, "w") as f:
            f.write(busy_text(samples))
    # The steady part: while requests were being answered, 5 s in from either end.
    busy = [s for s, nxt in zip(samples, samples[1:]) if nxt["attributed"] > s["attributed"]]
    steady = [s for s in busy if busy[0]["t"] + 5 <= s["t"] <= busy[-1]["t"] - 5]
    worst = 0.0
    windows = 0
    for i, s in enumerate(steady):
        j = next((j for j in range(i, len(steady)) if steady[j]["t"] - s["t"] >= 30), None)
        if j is None:
            break
        rate = (steady[j]["energy"] - s["energy"]) / (steady[j]["t"] - s["t"])
        gauge = sum(x["power"] for x in steady[i:j + 1]) / (j - i + 1)
        worst = max(worst, abs(rate - gauge) / rate)
        windows += 1
        if i % 5 == 0:
            print(f"window {steady[i]['t'] - steady[0]['t']:5.1f}-{steady[j]['t'] - steady[0]['t']:5.1f} s: "
                  f"energy counter {rate:6.1f} W, power gauge {gauge:6.1f} W ({(gauge - rate) / rate:+.1%})")
    first, last = busy[0], busy[-1]
    counter = last["energy"] - first["energy"]
    attributed = last["attributed"] - first["attributed"]
    print(f"{windows} windows of 30 s: largest difference between rate(energy) and the power gauge "
          f"{worst:.1%}")
    print(f"over {last['t'] - first['t']:.1f} s: counter +{counter:.1f} J, attributed to requests "
          f"+{attributed:.1f} J ({(attributed - counter) / counter:+.1%})")
    ok = windows > 0 and worst <= 0.10 and abs(attributed - counter) / counter <= 0.10
    print("energy agreement: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
