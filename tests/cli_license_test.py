#!/usr/bin/python3
"""Licensing end to end with the real tools: the vendor tool makes a key pair and tokens, an1d
(a test build trusting that key) verifies them at startup, and `an1 info`, /metrics and
`an1 attention --backend an1` show the outcome. The token never appears in a log or an output.

Run by ctest: cli_license_test.py --an1d PATH --an1 PATH --an1-license PATH
"""
import argparse
import os
import re
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from an1d_process import An1dProcess, checker  # noqa: E402

FAILURES = []
OUTPUTS = []  # every output and log, searched for the tokens at the end


check = checker(FAILURES)


def run(args, env=None, record=True):
    """Runs a command; `record` keeps its output for the token search (not the vendor tool's)."""
    r = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    if record:
        OUTPUTS.append(r.stdout + r.stderr)
    return r


class Server(An1dProcess):
    """an1d on the CPU with debug logging; its log joins the outputs searched for tokens."""

    def __init__(self, an1d, work, env, flags=()):
        super().__init__([an1d], work, ["--no-gpu", "--log-level", "debug", *flags], env)
        self.metrics = self.metrics_url

    def stop(self):
        code = super().stop()
        OUTPUTS.append(self.log_text())
        return code


def metric(text, name):
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d", required=True)
    parser.add_argument("--an1", required=True)
    parser.add_argument("--an1-license", required=True)
    opts = parser.parse_args()
    work = tempfile.mkdtemp(prefix="an1_license_test_")
    key = os.path.join(work, "vendor.key")

    r = run([opts.an1_license, "keygen", "--kid", "test-2026", "--out", key], record=False)
    check(r.returncode == 0, "keygen succeeds")
    check(stat.S_IMODE(os.stat(key).st_mode) == 0o600, "private key file has mode 0600")
    check(run([opts.an1_license, "keygen", "--kid", "x", "--out", key], record=False).returncode != 0,
          "keygen refuses to overwrite a key")
    public = re.search(r"public key: (\S+)", r.stdout).group(1)
    check("PRIVATE" not in r.stdout, "keygen prints no private key")

    def issue(*extra):
        r = run([opts.an1_license, "issue", "--key", key, "--kid", "test-2026", "--id", "LIC-7",
                 "--licensee", "Example Corp", *extra], record=False)
        check(r.returncode == 0, "issue %s" % " ".join(extra))
        return r.stdout.strip()

    valid = issue("--days", "30")
    expired = issue("--not-before", "2020-01-01", "--expires", "2020-12-31")
    future = issue("--not-before", "2099-01-01", "--expires", "2099-12-31")
    tampered = valid[:40] + ("A" if valid[40] != "A" else "B") + valid[41:]
    tokens = [valid, expired, future, tampered]

    r = run([opts.an1_license, "inspect", "--public-keys", public, "--token", valid], record=False)
    check(r.returncode == 0 and "status: valid" in r.stdout and "licensee: Example Corp" in r.stdout,
          "inspect shows a valid token's fields")
    sig = valid.rsplit(".", 1)[1]
    check(sig not in r.stdout, "inspect does not print the signature")
    r = run([opts.an1_license, "inspect", "--public-keys", public, "--token", tampered],
            record=False)
    check(r.returncode != 0 and "signature does not verify" in r.stdout, "inspect flags tampering")

    base_env = dict(os.environ, AN1_TEST_TRUSTED_LICENSE_KEYS=public)
    base_env.pop("AN1_LICENSE_KEY", None)

    # A valid license: an1 is refused only for the lack of a GPU.
    server = Server(opts.an1d, work, dict(base_env, AN1_LICENSE_KEY=valid))
    r = run([opts.an1, "--server", server.target, "info"])
    check("license: valid" in r.stdout and "Example Corp" in r.stdout and "LIC-7" in r.stdout
          and "an1" in r.stdout and "expires" in r.stdout, "info shows licensee, id, expiry, features")
    text = urllib.request.urlopen(server.metrics).read().decode()
    check(metric(text, "an1_license_valid") == 1, "an1_license_valid 1")
    check((metric(text, "an1_license_expiry_timestamp_seconds") or 0) > time.time(),
          "an1_license_expiry_timestamp_seconds in the future")
    r = run([opts.an1, "--server", server.target, "attention", "--backend", "an1"])
    check(r.returncode != 0 and "FAILED_PRECONDITION" in r.stderr and "no usable GPU" in r.stderr
          and "license" not in r.stderr, "valid license: an1 refused only for the missing GPU")
    log_ok = "license valid" in open(server.log_path).read()
    check(server.stop() == 0 and log_ok, "an1d logs the valid license and stops cleanly")

    # Invalid licenses: serve on the baseline, reason everywhere.
    cases = [("tampered", dict(base_env, AN1_LICENSE_KEY=tampered), "signature does not verify"),
             ("expired", dict(base_env, AN1_LICENSE_KEY=expired), "license expired at 2020-12-31"),
             ("not yet valid", dict(base_env, AN1_LICENSE_KEY=future), "not valid before 2099"),
             ("no token", base_env, "no license key configured")]
    for name, env, reason in cases:
        server = Server(opts.an1d, work, env)
        r = run([opts.an1, "--server", server.target, "health"])
        check(r.returncode == 0 and "SERVING" in r.stdout, name + ": health SERVING")
        r = run([opts.an1, "--server", server.target, "info"])
        check("license: invalid: " in r.stdout and reason in r.stdout, name + ": reason in info")
        text = urllib.request.urlopen(server.metrics).read().decode()
        check(metric(text, "an1_license_valid") == 0, name + ": an1_license_valid 0")
        r = run([opts.an1, "--server", server.target, "attention", "--backend", "an1"])
        check(r.returncode != 0 and "FAILED_PRECONDITION" in r.stderr and reason in r.stderr,
              name + ": --backend an1 is FAILED_PRECONDITION naming the reason")
        r = run([opts.an1, "--server", server.target, "attention", "--seq-len", "16"])
        check(r.returncode == 0 and "backend: baseline" in r.stdout and reason in r.stdout,
              name + ": auto serves the baseline, saying why")
        check(server.stop() == 0, name + ": clean stop")

    # --license-file wins over AN1_LICENSE_KEY.
    path = os.path.join(work, "license.txt")
    with open(path, "w") as f:
        f.write(valid + "\n")
    server = Server(opts.an1d, work, dict(base_env, AN1_LICENSE_KEY=expired),
                    ["--license-file", path])
    r = run([opts.an1, "--server", server.target, "info"])
    check("license: valid" in r.stdout, "--license-file takes precedence over the environment")
    server.stop()
    server = Server(opts.an1d, work, base_env, ["--license-file", os.path.join(work, "missing")])
    r = run([opts.an1, "--server", server.target, "info"])
    check("cannot read the license file" in r.stdout, "an unreadable license file is explained")
    server.stop()

    everything = "\n".join(OUTPUTS)
    for token in tokens:
        for piece in (token, token.split(".")[3][:40], token.rsplit(".", 1)[1][:40]):
            if piece in everything:
                check(False, "a token piece appears in a log or an output")
                break
    check(True, "no token appears in any log or client output (%d captured)" % len(OUTPUTS))
    print("cli_license_test: %d failure(s)" % len(FAILURES))
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
