"""The fixed cost of a served call on the GPU host (not a test), for issue 15's acceptance item:
the served paged decode step (an1 backend, B=64, 32/8 heads, D=128, fp16, Sk=4096, page 16,
q/k_cache/v_cache and the output through CUDA IPC, the index tensors inline or in a POSIX
shared-memory region: --index-transport) and a tiny call,
each over TCP and over the server's Unix socket (an1d --listen-unix), with the client sleeping on
its call or polling for the response (an1 --poll-us), taking turns; per round the medians of
--calls calls, as the an1 CLI prints them:

  round trip       the client's round trip (request building and response parsing included)
  compute          the server's compute time (the kernel, between CUDA events)
  beyond compute   round trip - compute (the acceptance item: at most 100 us)
  server beyond    the server's time beyond compute (queue, index uploads, hand-offs)
  client+transport round trip - the server's time (the client library, gRPC both ways)

    python3 tests/bench/served_overhead.py BUNDLE_DIR [--calls 100] [--rounds 3]
        [--gpu-wait yield,spin,block] [--poll-us 0,2000] [--index-transport inline,shm]
        [--skip-tiny]

With several --gpu-wait modes a daemon is started for each in turn (its log says the mode the
CUDA context got). Needs the bundle of scripts/gpu-bundle.sh (an1, an1d_with_test_keys,
an1-license); on a host without a GPU `--tiny-only` runs the tiny call alone against the CPU.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from an1d_process import An1dProcess, licensed_env  # noqa: E402

PAGED = ["paged-attention", "--backend", "an1", "--page-size", "16",
         "--kv-lens", ",".join(["4096"] * 64), "--q-lens", ",".join(["1"] * 64),
         "--n-heads", "32", "--n-kv-heads", "8", "--head-dim", "128", "--dtype", "fp16",
         "--transport", "cuda-ipc"]
TINY = ["attention", "--batch-size", "1", "--n-heads", "1", "--seq-len", "1",
        "--kv-seq-len", "16", "--head-dim", "64", "--dtype", "fp16"]
FIELDS = ("round trip", "compute", "beyond compute", "server beyond", "client+transport")


def parse(out):
    first = re.search(r"round trip ([\d.]+) ms, server compute ([\d.]+) ms", out)
    second = re.search(r"medians beyond compute: round trip ([\d.]+) us, server ([\d.]+) us, "
                       r"client and transport ([\d.]+) us", out)
    if not first or not second:
        return None
    return {"round trip": float(first.group(1)) * 1e3, "compute": float(first.group(2)) * 1e3,
            "beyond compute": float(second.group(1)), "server beyond": float(second.group(2)),
            "client+transport": float(second.group(3))}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gpu-wait", default="yield", help="comma-separated: yield,spin,block")
    parser.add_argument("--poll-us", default="0,2000",
                        help="comma-separated client polls (an1 --poll-us; 0: it sleeps)")
    parser.add_argument("--index-transport", default="inline,shm",
                        help="comma-separated: where the paged call's index tensors travel "
                             "(an1 paged-attention --index-transport)")
    parser.add_argument("--skip-tiny", action="store_true")
    parser.add_argument("--tiny-only", action="store_true", help="no GPU: the tiny call only")
    args = parser.parse_args()
    run = lambda name: [os.path.join(args.bundle, "run"), name]  # noqa: E731
    paged = [(f"paged idx {where}", PAGED + ["--index-transport", where])
             for where in args.index_transport.split(",")]
    calls = [("tiny", TINY)] if args.tiny_only else (
        paged + ([] if args.skip_tiny else [("tiny", TINY)]))
    print(f"{'wait':6s} {'call':16s} {'transport':14s} " +
          " ".join(f"{f + ' us':>18s}" for f in FIELDS) + "   (median over rounds of medians)")
    for wait in args.gpu_wait.split(","):
        work = tempfile.mkdtemp(prefix="an1-overhead-")
        socket = os.path.join(work, "an1d.sock")
        flags = ["--listen-unix", socket, "--gpu-wait", wait]
        if args.tiny_only:
            server = An1dProcess(run("an1d"), work, flags + ["--no-gpu"])
        else:
            server = An1dProcess(run("an1d_with_test_keys"), work, flags,
                                 env=licensed_env(run("an1-license"), work))
        targets = [(f"{name}{'' if poll == '0' else ' poll ' + poll}",
                    ["--server", address, "--poll-us", poll])
                   for name, address in (("tcp", server.target), ("unix", "unix:" + socket))
                   for poll in args.poll_us.split(",")]
        results = {}
        for name, command in calls:
            for _, target in targets:  # warm-up: connection, registrations, the kernel's first run
                subprocess.run(run("an1") + [*target, *command, "--repeat", "5"],
                               capture_output=True, text=True)
            for _ in range(args.rounds):
                for label, target in targets:  # taking turns, so drift hits both alike
                    r = subprocess.run(run("an1") + [*target, *command, "--repeat",
                                                     str(args.calls)],
                                       capture_output=True, text=True)
                    found = parse(r.stdout)
                    if r.returncode != 0 or found is None:
                        sys.exit(f"{name} over {label} failed:\n{r.stdout}{r.stderr}")
                    results.setdefault((name, label), []).append(found)
        for (name, label), rounds in results.items():
            print(f"{wait:6s} {name:16s} {label:14s} " + " ".join(
                f"{statistics.median(x[f] for x in rounds):18.1f}" for f in FIELDS))
        code = server.stop()
        log = server.log_text()
        modes = sorted(set(re.findall(r"executors wait for the GPU by '(\w+)'", log)))
        print(f"       (an1d exit {code}; the CUDA contexts wait by: {', '.join(modes) or 'n/a'})")


if __name__ == "__main__":
    main()
