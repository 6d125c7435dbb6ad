"""Library log output goes through an1d's logger and its level (issue 18): a request whose
string field is not UTF-8 made protobuf write a line to the log even at --log-level off. The
request is sent as raw bytes (no generated stub would build it), and must be refused, and the
server must keep serving; at --log-level off nothing at all may reach an1d's output.

    /usr/bin/python3 tests/log_routing_test.py --an1d build/bin/an1d
"""
import argparse
import sys
import tempfile

import grpc

sys.path.insert(0, __import__("os").path.dirname(__file__))
from an1d_process import An1dProcess  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        daemon = An1dProcess([args.an1d], work, flags=["--log-level", "off", "--no-gpu"])
        channel = grpc.insecure_channel(daemon.target)
        raw = channel.unary_unary("/an1.v1.An1/RegisterSystemSharedMemory",
                                  request_serializer=None, response_deserializer=None)
        # Field 1 (name, a string) holding two bytes that are not UTF-8.
        failed = False
        try:
            raw(b"\x0a\x02\xff\xfe", metadata=[("an1-client-id", "log-test")], timeout=10)
        except grpc.RpcError as error:
            failed = True
            print(f"refused: {error.code().name}: {error.details()!r}")
        health = channel.unary_unary("/grpc.health.v1.Health/Check",
                                     request_serializer=None, response_deserializer=None)
        serving = health(b"", timeout=10) == b"\x08\x01"
        code = daemon.stop()
        output = daemon.log_text()
    problems = []
    if not failed:
        problems.append("the malformed request was answered OK")
    if not serving:
        problems.append("the server stopped serving")
    if code != 0:
        problems.append(f"an1d exited {code}")
    if output.strip():
        problems.append("an1d wrote at --log-level off:\n" + output)
    for problem in problems:
        print("FAIL:", problem)
    if problems:
        sys.exit(1)
    print("ok: refused, still serving, nothing written at --log-level off")


if __name__ == "__main__":
    main()
