"""Bearer tokens and scopes (issue 18), end to end with a real an1d (--auth-tokens), the real CLI
and the Python client: UNAUTHENTICATED without a valid token, PERMISSION_DENIED without the scope,
health open, license details for admins only, and shared memory regions owned by the principal,
not by the `an1-client-id` a caller chooses. Also an1d --hash-token and refused token files.

    /usr/bin/python3 tests/auth_test.py --an1d build/bin/an1d_with_test_keys --an1 build/bin/an1 \
        --an1-license build/bin/an1-license [--python-dir build/python]
"""
import argparse
import hashlib
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from an1d_process import An1dProcess, licensed_env, report, start_refusal  # noqa: E402

TOKENS = {"alice": ("alice-secret-1", "infer,shm"), "bob": ("bob-secret-2", "infer"),
          "carol": ("carol-secret-3", "infer,shm"), "root": ("root-secret-4", "infer,admin")}
SMALL = ["attention", "--batch-size", "1", "--n-heads", "2", "--seq-len", "5", "--head-dim", "16",
         "--dtype", "fp32"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d", required=True)
    parser.add_argument("--an1", required=True)
    parser.add_argument("--an1-license", required=True)
    parser.add_argument("--python-dir")
    args = parser.parse_args()
    problems = []

    def cli(target, token, cli_args):
        env = dict(os.environ)
        env.pop("AN1_TOKEN", None)
        if token:
            env["AN1_TOKEN"] = token
        return subprocess.run([args.an1, "--server", target, "--timeout", "10", *cli_args],
                              capture_output=True, text=True, env=env)

    def expect(label, result, code=None):
        text = result.stdout + result.stderr
        ok = result.returncode == 0 if code is None else (result.returncode != 0 and code in text)
        if ok:
            print(f"ok: {label}")
        else:
            problems.append(f"{label}: exit {result.returncode}, wanted {code or 'success'}\n{text}")
        return text

    with tempfile.TemporaryDirectory() as work:
        hashed = subprocess.run([args.an1d, "--hash-token"], input="alice-secret-1\n",
                                capture_output=True, text=True).stdout.strip()
        if hashed != hashlib.sha256(b"alice-secret-1").hexdigest():
            problems.append(f"--hash-token printed {hashed!r}")
        tokens = os.path.join(work, "tokens")
        with open(tokens, "w") as f:
            f.write("# hashed tokens\n")
            for name, (token, scopes) in TOKENS.items():
                f.write(f"{hashlib.sha256(token.encode()).hexdigest()} {name} {scopes}\n")
        env = licensed_env([args.an1_license], work)
        daemon = An1dProcess([args.an1d], work, flags=["--no-gpu", "--auth-tokens", tokens], env=env)
        t = daemon.target
        expect("no token: refused", cli(t, None, SMALL), "UNAUTHENTICATED")
        expect("an unknown token: refused", cli(t, "guess", SMALL), "UNAUTHENTICATED")
        expect("health needs no token", cli(t, None, ["health"]))
        expect("bob (infer) runs attention", cli(t, "bob-secret-2", SMALL))
        expect("bob (no shm) cannot use shared memory",
               cli(t, "bob-secret-2", [*SMALL, "--transport", "shm"]), "lacks the 'shm' scope")
        expect("alice (shm) uses shared memory", cli(t, "alice-secret-1", [*SMALL, "--transport", "shm"]))
        bob_info = expect("bob reads server info", cli(t, "bob-secret-2", ["info"]))
        root_info = expect("root reads server info", cli(t, "root-secret-4", ["info"]))
        if "licensee: test" in bob_info or "licensee: test" not in root_info:
            problems.append("license details must show for admin (root) only:\n" + bob_info +
                            "\n" + root_info)
        else:
            print("ok: license details for admin only")
        if args.python_dir:
            sys.path.insert(0, args.python_dir)
            import an1_cache
            with an1_cache.Client(t, token="alice-secret-1", client_id="shared-id") as alice, \
                    an1_cache.Client(t, token="alice-secret-1", client_id="other-id") as alice2, \
                    an1_cache.Client(t, token="carol-secret-3", client_id="shared-id") as carol:
                with alice.register_system_shm(4096):
                    mine = len(alice2.list_regions())
                    theirs = len(carol.list_regions())
                if mine != 1 or theirs != 0:
                    problems.append(f"regions: alice's other client sees {mine} (want 1), carol "
                                    f"with alice's client id sees {theirs} (want 0)")
                else:
                    print("ok: regions belong to the principal, not to the client id")
        daemon.stop()

        for label, content in (("a plain-text token", "alice-secret-1 alice infer\n"),
                               ("an unknown scope", "0" * 64 + " alice launch\n"),
                               ("no token", "# nothing\n")):
            with open(tokens, "w") as f:
                f.write(content)
            failed = start_refusal(args.an1d, ["--auth-tokens", tokens], "token")
            if failed:
                problems.append(f"an1d with {label}: {failed}")
            else:
                print(f"ok: an1d refuses a token file with {label}")
    report(problems)


if __name__ == "__main__":
    main()
