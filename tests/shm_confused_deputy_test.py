"""Shared memory a caller could not open itself is refused (issue 18: the server must not be a
confused deputy). An object root owns with mode 0600 holds a secret; a client running as
`nobody` asks a root an1d to register it by key (refused: the server opens nothing by name), then
to use it (no such region); the secret is neither read nor overwritten. The same client's own
shared memory, passed as a descriptor, works. Needs root (to create the object and drop to
nobody); skipped otherwise.

    /usr/bin/python3 tests/shm_confused_deputy_test.py --an1d build/bin/an1d \
        --python-dir build/python
"""
import argparse
import json
import os
import pwd
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from an1d_process import An1dProcess, report  # noqa: E402

SECRET = b"root's secret bytes, 0600" + bytes(range(256)) * 15


def as_nobody(target, key, python_dir):
    """Runs in a child that became nobody: the problems it saw."""
    sys.path.insert(0, python_dir)
    import grpc
    import numpy as np
    import an1_cache
    from an1_cache._proto.an1.v1 import an1_pb2 as pb
    from an1_cache._proto.an1.v1 import an1_pb2_grpc as pb_grpc
    problems = []
    try:
        open("/dev/shm" + key, "rb")
        problems.append("nobody could open the root-owned 0600 object itself: the test is void")
    except PermissionError:
        pass
    stub = pb_grpc.An1Stub(grpc.insecure_channel(target))
    session = stub.CreateSession(pb.CreateSessionRequest(), timeout=10).session_id
    metadata = (("an1-client-id", "nobody-deputy-test"), ("an1-session-id", session))
    try:
        stub.RegisterSystemSharedMemory(pb.RegisterSystemSharedMemoryRequest(
            name="stolen", key=key, byte_size=len(SECRET)), metadata=metadata, timeout=10)
        problems.append("registering root's object by key succeeded")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.PERMISSION_DENIED or "descriptor" not in e.details():
            problems.append(f"by key: want PERMISSION_DENIED about descriptors, got {e.code()} "
                            f"{e.details()!r}")
    ref = pb.Tensor(dtype=pb.DTYPE_FP32, shape=[4, 4],
                    region=pb.RegionRef(region="stolen", offset=0, byte_size=64))
    out = pb.OutputPlacement(region=pb.RegionRef(region="stolen", offset=0, byte_size=64))
    try:
        stub.Matmul(pb.MatmulRequest(a=ref, b=ref, output=out), metadata=metadata, timeout=10)
        problems.append("a matmul reading and writing root's object succeeded")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            problems.append(f"matmul on the refused region: want NOT_FOUND, got {e.code()}")
    # A descriptor nobody does hold works: its own shared memory, passed over the socket.
    with an1_cache.Client(target, timeout=10) as client:
        a = np.arange(16, dtype=np.float32).reshape(4, 4)
        with client.register_system_shm(a) as shared:
            got = client.matmul(shared, shared)
        if not np.allclose(got, a @ a):
            problems.append("nobody's own shared memory gave a wrong matmul")
    return problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d", required=True)
    parser.add_argument("--python-dir", required=True)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("shm_confused_deputy_test: skipped, needs root to create the object and drop to "
              "nobody")
        return 0
    nobody = pwd.getpwnam("nobody")
    key = f"/an1-deputy-{os.getpid()}"
    path = "/dev/shm" + key
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    os.fchmod(fd, 0o600)
    os.write(fd, SECRET)
    os.close(fd)
    problems = []
    with tempfile.TemporaryDirectory() as work:
        server = An1dProcess([args.an1d, "--no-gpu"], work)
        try:
            read_end, write_end = os.pipe()
            child = os.fork()
            if child == 0:  # no gRPC in the parent before the fork
                os.close(read_end)
                try:
                    os.setgroups([])
                    os.setgid(nobody.pw_gid)
                    os.setuid(nobody.pw_uid)
                    found = as_nobody(server.target, key, os.path.abspath(args.python_dir))
                except BaseException as e:  # noqa: BLE001 - reported to the parent
                    found = [f"the nobody client failed: {type(e).__name__}: {e}"]
                os.write(write_end, json.dumps(found).encode())
                os._exit(0)
            os.close(write_end)
            with os.fdopen(read_end) as r:
                output = r.read()
            os.waitpid(child, 0)
            problems += json.loads(output) if output else ["the nobody client said nothing"]
            with open(path, "rb") as f:
                if f.read() != SECRET:
                    problems.append("root's object was changed")
        finally:
            code = server.stop()
            if code != 0:
                problems.append(f"an1d exited with {code}:\n{server.log_text()}")
            os.unlink(path)
    if not problems:
        print("shm_confused_deputy_test: ok")
    report(problems)


if __name__ == "__main__":
    sys.exit(main())
