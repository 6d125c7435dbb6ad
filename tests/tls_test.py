"""TLS and mutual TLS on the gRPC port (issue 18), end to end: a CA, a server certificate and a
client certificate made here with OpenSSL (never committed), a real an1d over TLS, the real CLI
and the Python client. Plaintext clients, clients trusting another CA and, with mTLS, clients
without a certificate are refused; the right ones are served; an1d refuses half a TLS setup.

    /usr/bin/python3 tests/tls_test.py --an1d build/bin/an1d --an1 build/bin/an1 \
        [--python-dir build/python]
"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from an1d_process import An1dProcess, report, start_refusal  # noqa: E402


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(work, name):
    """A CA and, signed by it, a server certificate (localhost, 127.0.0.1) and a client one."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca = os.path.join(work, name)
    openssl("req", "-x509", *key, "-keyout", ca + "-ca.key", "-out", ca + "-ca.pem", "-days", "1",
            "-subj", f"/CN={name}-ca")
    for who, ext in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                "extendedKeyUsage=serverAuth\n"),
                     ("client", "extendedKeyUsage=clientAuth\n")):
        with open(f"{ca}-{who}.ext", "w") as f:
            f.write(ext)
        openssl("req", *key, "-keyout", f"{ca}-{who}.key", "-out", f"{ca}-{who}.csr",
                "-subj", f"/CN={name}-{who}")
        openssl("x509", "-req", "-in", f"{ca}-{who}.csr", "-CA", ca + "-ca.pem", "-CAkey",
                ca + "-ca.key", "-CAcreateserial", "-out", f"{ca}-{who}.pem", "-days", "1",
                "-extfile", f"{ca}-{who}.ext")
    return ca


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d", required=True)
    parser.add_argument("--an1", required=True)
    parser.add_argument("--python-dir", help="build/python: also check the Python client")
    args = parser.parse_args()
    problems = []

    def expect(label, ok, cli_args):
        result = subprocess.run([args.an1, *cli_args, "--timeout", "10"], capture_output=True,
                                text=True)
        if (result.returncode == 0) != ok:
            problems.append(f"{label}: exit {result.returncode}, wanted "
                            f"{'success' if ok else 'a refusal'}\n{result.stdout}{result.stderr}")
        else:
            print(f"ok: {label}")

    with tempfile.TemporaryDirectory() as work:
        pki = make_pki(work, "an1")
        other = make_pki(work, "other")
        server_tls = ["--tls-cert", pki + "-server.pem", "--tls-key", pki + "-server.key"]
        client_cert = ["--tls-cert", pki + "-client.pem", "--tls-key", pki + "-client.key"]

        daemon = An1dProcess([args.an1d], work, flags=["--no-gpu", *server_tls])
        target = ["--server", daemon.target]
        expect("TLS: a client trusting the CA", True, [*target, "--tls-ca", pki + "-ca.pem", "health"])
        expect("TLS: a plaintext client", False, [*target, "health"])
        expect("TLS: a client trusting another CA", False,
               [*target, "--tls-ca", other + "-ca.pem", "health"])
        expect("TLS: a client expecting another name", False,
               [*target, "--tls-ca", pki + "-ca.pem", "--tls-server-name", "elsewhere", "health"])
        expect("TLS: an attention call", True,
               [*target, "--tls-ca", pki + "-ca.pem", "attention", "--batch-size", "1",
                "--n-heads", "2", "--seq-len", "5", "--head-dim", "16", "--dtype", "fp32"])
        if args.python_dir:
            sys.path.insert(0, args.python_dir)
            import an1_cache
            with an1_cache.Client(daemon.target, tls_ca=pki + "-ca.pem", timeout=10) as client:
                if client.health() != "SERVING":
                    problems.append("Python client over TLS: not SERVING")
                else:
                    print("ok: TLS: the Python client")
        daemon.stop()

        daemon = An1dProcess([args.an1d], work,
                             flags=["--no-gpu", *server_tls, "--tls-client-ca", pki + "-ca.pem"])
        target = ["--server", daemon.target]
        expect("mTLS: a client with its certificate", True,
               [*target, "--tls-ca", pki + "-ca.pem", *client_cert, "health"])
        expect("mTLS: a client without a certificate", False,
               [*target, "--tls-ca", pki + "-ca.pem", "health"])
        expect("mTLS: a client certificate from another CA", False,
               [*target, "--tls-ca", pki + "-ca.pem", "--tls-cert", other + "-client.pem",
                "--tls-key", other + "-client.key", "health"])
        if args.python_dir:
            import an1_cache
            with an1_cache.Client(daemon.target, tls_ca=pki + "-ca.pem",
                                  tls_cert=pki + "-client.pem", tls_key=pki + "-client.key",
                                  timeout=10) as client:
                if client.health() != "SERVING":
                    problems.append("Python client over mTLS: not SERVING")
                else:
                    print("ok: mTLS: the Python client")
        daemon.stop()

        for label, flags in (("a certificate without its key", ["--tls-cert", pki + "-server.pem"]),
                             ("a client CA without a certificate",
                              ["--tls-client-ca", pki + "-ca.pem"]),
                             ("a key file that does not exist",
                              ["--tls-cert", pki + "-server.pem", "--tls-key", work + "/none"])):
            failed = start_refusal(args.an1d, flags, "TLS")
            if failed:
                problems.append(f"an1d with {label}: {failed}")
            else:
                print(f"ok: an1d refuses {label}")
    report(problems)


if __name__ == "__main__":
    main()
