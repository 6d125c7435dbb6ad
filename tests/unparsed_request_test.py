"""A request that cannot be parsed (issue 18): gRPC answered a malformed protobuf with
UNIMPLEMENTED and an empty message, before the service saw it, and counted nothing. Now it is
INVALID_ARGUMENT saying why, counted in an1_requests_total{code="INVALID_ARGUMENT"} and
an1_requests_rejected_total{reason="unparsable"}; well-formed requests are untouched and the
server keeps serving.

    /usr/bin/python3 tests/unparsed_request_test.py --an1d build/bin/an1d
"""
import argparse
import os
import re
import sys
import tempfile
import urllib.request

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from an1d_process import An1dProcess, report  # noqa: E402

MALFORMED = {
    "Matmul": b"\x0a\xff",                        # field 1 (a) claims 255 bytes, has none
    "Attention": b"\x0a\x03\x08",                 # q: a message cut short
    "RegisterSystemSharedMemory": b"\x0a\x02\xff\xfe",  # name: not UTF-8
    "GetServerInfo": b"\x0f",                     # field 1 with wire type 7, which none has
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d", required=True)
    args = parser.parse_args()
    problems = []
    with tempfile.TemporaryDirectory() as work:
        daemon = An1dProcess([args.an1d, "--no-gpu"], work)
        channel = grpc.insecure_channel(daemon.target)
        for rpc, body in MALFORMED.items():
            raw = channel.unary_unary(f"/an1.v1.An1/{rpc}", request_serializer=None,
                                      response_deserializer=None)
            try:
                raw(body, timeout=10)
                problems.append(f"{rpc}: a malformed request was answered OK")
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.INVALID_ARGUMENT or \
                        "could not be parsed" not in (e.details() or ""):
                    problems.append(f"{rpc}: want INVALID_ARGUMENT saying it could not be "
                                    f"parsed, got {e.code().name} {e.details()!r}")
                else:
                    print(f"ok: {rpc}: {e.details()}")
        # Well-formed: an empty Matmul is refused by validation, with its own message.
        matmul = channel.unary_unary("/an1.v1.An1/Matmul", request_serializer=None,
                                     response_deserializer=None)
        try:
            matmul(b"", timeout=10)
            problems.append("an empty Matmul was answered OK")
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.INVALID_ARGUMENT or "could not be parsed" in e.details():
                problems.append(f"an empty Matmul: {e.code().name} {e.details()!r}")
        info = channel.unary_unary("/an1.v1.An1/GetServerInfo", request_serializer=None,
                                   response_deserializer=None)
        if not info(b"", timeout=10):
            problems.append("GetServerInfo answered nothing after the malformed requests")
        metrics = urllib.request.urlopen(daemon.metrics_url, timeout=10).read().decode()
        for rpc in MALFORMED:
            if not re.search(r'an1_requests_total\{[^}]*code="INVALID_ARGUMENT"[^}]*rpc="%s"'
                             % rpc, metrics) and \
                    not re.search(r'an1_requests_total\{[^}]*rpc="%s"[^}]*code="INVALID_ARGUMENT"'
                                  % rpc, metrics):
                problems.append(f"{rpc}: the malformed request is not in an1_requests_total")
        rejected = re.search(r'an1_requests_rejected_total\{reason="unparsable"\} (\d+)', metrics)
        if not rejected or int(rejected.group(1)) != len(MALFORMED):
            problems.append(f"an1_requests_rejected_total{{reason=\"unparsable\"}}: "
                            f"{rejected.group(1) if rejected else 'absent'}, want {len(MALFORMED)}")
        channel.close()
        daemon.stop_expecting_success(problems)
    report(problems)


if __name__ == "__main__":
    main()
