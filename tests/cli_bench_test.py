#!/usr/bin/python3
"""`an1 bench` and `an1 power` end to end against a real (CPU) an1d: the CSV keeps the old
llm_bench columns first and in order, a sweep gives one row per sequence length, --concurrency
answers every request it sends (checked against the server's own request counter), the plot is
drawn, progress shows on stderr one line as each case starts and one as it ends, the
--energy-seconds phase is skipped (and said so once) on a server without a GPU energy counter, and
`an1 power` says why it cannot measure there.

    cli_bench_test.py --an1d PATH --an1 PATH
"""
import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from an1d_process import An1dProcess  # noqa: E402

OLD_COLUMNS = ["baseline_latency_ms", "baseline_tflops", "an1_latency_ms", "an1_tflops", "speedup",
               "batch_size", "seq_len", "n_heads", "head_dim", "dtype"]
failures = 0


def check(ok, what):
    global failures
    print(("ok   " if ok else "FAIL ") + what)
    failures += not ok


def requests_ok(metrics_url):
    text = urllib.request.urlopen(metrics_url).read().decode()
    m = re.search(r'^an1_requests_total\{backend="baseline",code="OK",rpc="Attention"\} (\S+)$',
                  text, re.M)
    return float(m.group(1)) if m else 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d", required=True)
    parser.add_argument("--an1", required=True)
    opts = parser.parse_args()
    work = tempfile.mkdtemp(prefix="an1_bench_test_")
    server = An1dProcess([opts.an1d], work, flags=["--no-gpu"])
    try:
        an1 = [opts.an1, "--server", server.target]
        shape = ["--batch-size", "2", "--n-heads", "4", "--n-kv-heads", "2", "--head-dim", "16"]
        csv_path = os.path.join(work, "bench_logs", "llm_bench_results.csv")
        png = os.path.join(work, "bench.png")
        r = subprocess.run(an1 + ["bench", *shape, "--seq-len", "16,33", "--iters", "4",
                                  "--warmup", "1", "--energy-seconds", "0.2", "--csv", csv_path, "--plot", png],
                           capture_output=True, text=True)
        print(r.stdout + r.stderr)
        # On a CPU server an1 is unavailable: it is skipped (said so) when not asked for by name.
        check("skipped: FAILED_PRECONDITION" in r.stdout, "bench skips an1 and says why")
        # Progress: 2 sequence lengths x 2 backends, a line as each case starts and as it ends.
        starts = re.findall(r"^case (\d)/4: (baseline|an1), seq_len (\d+), causal: .*\.\.\.$",
                            r.stderr, re.M)
        ends = re.findall(
            r"^case (\d)/4: (baseline|an1), seq_len (\d+): (done|skipped) in \d+ ms"
            r"(?:, kernel (\S+))?$", r.stderr, re.M)
        want = [("1", "baseline", "16"), ("2", "an1", "16"), ("3", "baseline", "33"),
                ("4", "an1", "33")]
        check(starts == want, f"a progress line as each of the 4 cases starts: {starts}")
        check([e[:3] for e in ends] == want and [e[3] for e in ends] ==
              ["done", "skipped", "done", "skipped"], f"and one as each ends: {ends}")
        check([e[4] for e in ends] == ["baseline.cpu", "", "baseline.cpu", ""],
              f"a finished case names the kernel that ran it: {ends}")
        check(all("case" not in line for line in r.stdout.splitlines()),
              "progress goes to stderr, not into the table on stdout")
        with open(csv_path) as f:
            rows = list(csv.reader(f))
        check(rows[0][:len(OLD_COLUMNS)] == OLD_COLUMNS, "CSV starts with the llm_bench columns")
        for column in ("causal", "transport", "concurrency", "baseline_tflops_dense",
                       "baseline_p99_ms", "baseline_e2e_ms", "baseline_server_ms",
                       "baseline_tokens_per_s", "baseline_j_per_token", "an1_j_per_token",
                       "baseline_errors"):
            check(column in rows[0], f"CSV has {column}")
        check(all(len(row) == len(rows[0]) for row in rows), "every row has the header's columns")
        data = [dict(zip(rows[0], row)) for row in rows[1:]]
        check([d["seq_len"] for d in data] == ["16", "33"], "one row per swept sequence length")
        check(all(float(d["baseline_latency_ms"]) > 0 and d["an1_latency_ms"] == "" for d in data),
              "baseline figures filled, an1 empty")
        check(all(d["baseline_requests"] == "4" and d["baseline_errors"] == "0" for d in data),
              "4 timed requests per row, no errors")
        if shutil.which("gnuplot"):
            check(r.returncode == 0 and os.path.getsize(png) > 1000, "the plot is drawn")
        else:
            check(r.returncode == 1 and "gnuplot" in r.stderr, "no gnuplot: said so, exit 1")
        check(os.path.exists(png + ".gp") and os.path.exists(png + ".dat"),
              "the plot's data and script are kept")

        before = requests_ok(server.metrics_url)
        r = subprocess.run(an1 + ["bench", *shape, "--seq-len", "24", "--iters", "6", "--warmup",
                                  "1", "--concurrency", "4", "--backend-baseline", "--energy-seconds", "0", "--transport",
                                  "shm", "--csv", csv_path], capture_output=True, text=True)
        print(r.stdout + r.stderr)
        m = re.search(r"4 clients: (\d+) sent, (\d+) answered", r.stdout)
        check(r.returncode == 0 and m is not None and m.group(1) == m.group(2) == "24",
              "--concurrency 4 sends 24 timed requests and all are answered")
        after = requests_ok(server.metrics_url)
        check(after - before == 24 + 4, "the server counted the 24 timed and 4 warm-up requests")

        r = subprocess.run(an1 + ["bench", *shape, "--seq-len", "8", "--iters", "2",
                                  "--backend-an1", "--csv", ""], capture_output=True, text=True)
        check(r.returncode == 1 and "FAILED_PRECONDITION" in r.stderr,
              "bench --backend-an1 on a CPU server fails with the server's reason")
        other = os.path.join(work, "other.csv")
        with open(other, "w") as f:
            f.write(",".join(OLD_COLUMNS) + "\n1,2,3,4,5,6,7,8,9,fp16\n")
        r = subprocess.run(an1 + ["bench", *shape, "--seq-len", "8", "--iters", "1",
                                  "--energy-seconds", "0", "--csv", other],
                           capture_output=True, text=True)
        check(r.returncode == 1 and "other columns" in r.stderr and
              open(other).read().count("\n") == 2, "bench does not append to a CSV of other columns")
        r = subprocess.run(an1 + ["bench", *shape, "--plot", "it's.png"], capture_output=True,
                           text=True)
        check(r.returncode == 2 and "--plot" in r.stderr, "a plot path with a quote is refused")
        # No GPU energy counter on this CPU server: the --energy-seconds phase (2 s per case,
        # 4 s for these 2 cases) is skipped and said so once, and uJ/token stays "-".
        start = time.monotonic()
        r = subprocess.run(an1 + ["bench", *shape, "--seq-len", "8,16", "--iters", "2",
                                  "--warmup", "1", "--backend-baseline", "--energy-seconds", "2",
                                  "--csv", ""], capture_output=True, text=True)
        seconds = time.monotonic() - start
        print(r.stdout + r.stderr)
        rows = [line for line in r.stdout.splitlines() if line.startswith("baseline")]
        check(r.returncode == 0 and len(rows) == 2 and all(row.split()[9] == "-" for row in rows),
              "2-case bench with --energy-seconds 2 on a CPU server: 2 rows, no uJ/token")
        check(seconds < 2.0, f"and it takes {seconds:.2f} s, well under the 4 s of energy phase "
                             "it would have spent")
        check(r.stderr.count("no GPU energy counter") == 1 and "--energy-seconds" in r.stderr,
              "the skipped energy phase is said once: " + r.stderr.splitlines()[0])
        r = subprocess.run(an1 + ["bench", *shape, "--seq-len", "8", "--iters", "1",
                                  "--backend-baseline", "--energy-seconds", "0", "--csv", ""],
                           capture_output=True, text=True)
        check(r.returncode == 0 and "no GPU energy counter" not in r.stderr,
              "--energy-seconds 0: nothing to skip, nothing said")

        r = subprocess.run(an1 + ["power", *shape, "--seq-len", "8", "--duration", "1"],
                           capture_output=True, text=True)
        check(r.returncode == 1 and "no GPU energy counter" in r.stderr,
              "power says why it cannot measure without a GPU: " + r.stderr.strip())
    finally:
        code = server.stop()
        check(code == 0, "an1d exits 0 on SIGTERM")
    print(f"cli_bench_test: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
