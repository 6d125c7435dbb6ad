"""A real an1d process on ephemeral loopback ports, for the Python end-to-end tests and
benchmarks: started with --ready-file, stopped with SIGTERM."""
import os
import re
import signal
import subprocess
import sys
import time


class An1dProcess:
    """Starts `command` (an1d, or a bundle's `run an1d`) and waits until it serves.

    Exits the calling script with an1d's log when it does not start within `timeout` seconds.
    """

    def __init__(self, command, work, flags=(), env=None, timeout=60):
        self.ready = os.path.join(work, "ready")
        if os.path.exists(self.ready):
            os.remove(self.ready)
        self.log_path = os.path.join(work, "an1d.log")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            list(command) + ["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                             "--ready-file", self.ready, *flags],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + timeout
        while not os.path.exists(self.ready) or "metrics_port" not in open(self.ready).read():
            if self.proc.poll() is not None or time.time() > deadline:
                self.proc.kill()
                sys.exit("an1d did not start:\n" + self.log_text())
            time.sleep(0.05)
        ports = dict(line.split("=") for line in open(self.ready).read().split())
        self.target = "127.0.0.1:" + ports["grpc_port"]
        self.metrics_url = "http://127.0.0.1:%s/metrics" % ports["metrics_port"]

    def log_text(self):
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self, timeout=30):
        """SIGTERM, then the exit status (None if it had to be killed)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = None
        self._log.close()
        return code

    def stop_expecting_success(self, problems):
        """stop(), adding to `problems` an exit other than 0, with the log."""
        code = self.stop()
        if code != 0:
            problems.append(f"an1d exited with {code}:\n{self.log_text()}")


def start_refusal(an1d, flags, word):
    """None when an1d started with `flags` exits non-zero at once saying `word`; else what it
    did (for the test's failure message)."""
    result = subprocess.run([an1d, "--no-gpu", "--listen", "127.0.0.1:0", "--metrics-listen", "",
                             *flags], capture_output=True, text=True, timeout=60)
    if result.returncode != 0 and word in result.stdout + result.stderr:
        return None
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


def checker(problems):
    """A check(condition, what) for a test script: prints `ok   what` or `FAIL what` and keeps
    each failed `what` in the list `problems`."""
    def check(condition, what):
        print(("ok   " if condition else "FAIL ") + what, flush=True)
        if not condition:
            problems.append(what)
    return check


def report(problems):
    """Prints the problems and exits 1 if there are any, else 0."""
    for problem in problems:
        print("FAIL:", problem)
    sys.exit(1 if problems else 0)


def licensed_env(an1_license, work):
    """The environment for the test daemon (an1d_with_test_keys) with a valid license: a key
    made here with `an1_license` (a command list), trusted through AN1_TEST_TRUSTED_LICENSE_KEYS,
    and a one-day token for it in AN1_LICENSE_KEY."""
    key = os.path.join(work, "vendor.key")
    out = subprocess.run(an1_license + ["keygen", "--kid", "test", "--out", key],
                         capture_output=True, text=True, check=True).stdout
    public = re.search(r"public key: (\S+)", out).group(1)
    token = subprocess.run(an1_license + ["issue", "--key", key, "--kid", "test", "--id", "TEST",
                                          "--licensee", "test", "--days", "1"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return dict(os.environ, AN1_TEST_TRUSTED_LICENSE_KEYS=public, AN1_LICENSE_KEY=token)
