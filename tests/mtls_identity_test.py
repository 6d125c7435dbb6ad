"""mTLS client identities as principals (issue 18), end to end: a CA and client certificates made
here with OpenSSL (never committed), an an1d with --tls-client-ca and --auth-client-certs mapping a
certificate's subject CN or subject alternative name to a principal and scopes, and the Python
client. A mapped certificate gets its scopes (and its principal owns its regions, across
connections); a certificate the CA signed but the file does not name is UNAUTHENTICATED; a
missing scope is PERMISSION_DENIED; health stays open; the flag without mutual TLS is refused.

    /usr/bin/python3 tests/mtls_identity_test.py --an1d build/bin/an1d --python-dir build/python
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from an1d_process import An1dProcess, report, start_refusal  # noqa: E402
from tls_test import make_pki, openssl  # noqa: E402


def client_cert(pki, who, subject, ext=""):
    """A client certificate `pki`-`who` signed by pki's CA."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    with open(f"{pki}-{who}.ext", "w") as f:
        f.write("extendedKeyUsage=clientAuth\n" + ext)
    openssl("req", *key, "-keyout", f"{pki}-{who}.key", "-out", f"{pki}-{who}.csr",
            "-subj", subject)
    openssl("x509", "-req", "-in", f"{pki}-{who}.csr", "-CA", pki + "-ca.pem", "-CAkey",
            pki + "-ca.key", "-CAcreateserial", "-out", f"{pki}-{who}.pem", "-days", "1",
            "-extfile", f"{pki}-{who}.ext")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d", required=True)
    parser.add_argument("--python-dir", required=True)
    args = parser.parse_args()
    sys.path.insert(0, args.python_dir)
    import numpy as np
    import an1_cache
    import grpc
    problems = []

    def expect_error(label, code, words, call):
        try:
            call()
            problems.append(f"{label}: succeeded, wanted {code}")
        except an1_cache.An1Error as e:
            if e.code != code or words not in e.message:
                problems.append(f"{label}: got {e.code} {e.message!r}, wanted {code} ({words})")
            else:
                print(f"ok: {label}")

    with tempfile.TemporaryDirectory() as work:
        pki = make_pki(work, "an1")  # its client certificate has CN an1-client
        client_cert(pki, "mallory", "/CN=mallory")
        client_cert(pki, "carol", "/CN=unlisted-cn", "subjectAltName=DNS:carol.example\n")
        identities = os.path.join(work, "client-certs")
        with open(identities, "w") as f:
            f.write("# NAME PRINCIPAL SCOPES\nan1-client alice infer,shm\n"
                    "carol.example carol infer\n")
        tls = ["--tls-cert", pki + "-server.pem", "--tls-key", pki + "-server.key",
               "--tls-client-ca", pki + "-ca.pem"]
        failed = start_refusal(args.an1d, [*tls[:4], "--auth-client-certs", identities],
                               "mutual TLS")
        if failed:
            problems.append(f"--auth-client-certs without --tls-client-ca: {failed}")
        daemon = An1dProcess([args.an1d], work,
                             flags=["--no-gpu", *tls, "--auth-client-certs", identities])

        def client(who):
            return an1_cache.Client(daemon.target, timeout=10, tls_ca=pki + "-ca.pem",
                                    tls_cert=f"{pki}-{who}.pem", tls_key=f"{pki}-{who}.key")

        a = np.arange(16, dtype=np.float32).reshape(4, 4)
        with client("client") as alice, client("client") as alice_again:
            if not np.allclose(alice.matmul(a, a), a @ a):
                problems.append("alice (CN an1-client): wrong matmul")
            with alice.register_system_shm(a) as shared:
                if not np.allclose(alice.matmul(shared, shared), a @ a):
                    problems.append("alice: wrong matmul from shared memory")
                names = [r["name"] for r in alice_again.list_regions()]
                if len(names) != 1:
                    problems.append(f"alice's principal owns her region on every connection: "
                                    f"{names}")
                else:
                    print("ok: the certificate's principal owns its regions")
        with client("mallory") as mallory:
            expect_error("a certificate the file does not name", grpc.StatusCode.UNAUTHENTICATED,
                         "maps to no principal", lambda: mallory.matmul(a, a))
            if mallory.health() != "SERVING":
                problems.append("health is open to every certificate the CA signed")
        with client("carol") as carol:
            if not np.allclose(carol.matmul(a, a), a @ a):
                problems.append("carol (SAN carol.example): wrong matmul")
            else:
                print("ok: a subject alternative name maps")
            expect_error("carol lacks the shm scope", grpc.StatusCode.PERMISSION_DENIED,
                         "'shm'", carol.list_regions)
        daemon.stop_expecting_success(problems)
    report(problems)


if __name__ == "__main__":
    main()
