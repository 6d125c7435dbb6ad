"""Upload memory is bounded (issue 18): with --max-inflight-bytes 256 MiB, four concurrent 256 MiB
inline uploads took an1d to a 1.66 GiB peak, since the budget counts a request only once it is
parsed. gRPC's resource quota (ServerBuilder::SetResourceQuota, sized to the budget) now bounds
the memory of requests still arriving: the oversized uploads are refused with RESOURCE_EXHAUSTED,
the server's peak resident memory (VmHWM) stays under 1 GiB, and it serves afterwards, small
concurrent uploads included.

    /usr/bin/python3 tests/upload_quota_test.py --an1d build/bin/an1d --python-dir build/python
"""
import argparse
import os
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from an1d_process import An1dProcess, report  # noqa: E402

MIB = 1 << 20


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return -1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d", required=True)
    parser.add_argument("--python-dir", required=True)
    args = parser.parse_args()
    sys.path.insert(0, args.python_dir)
    import grpc
    from an1_cache._proto.an1.v1 import an1_pb2 as pb
    from an1_cache._proto.an1.v1 import an1_pb2_grpc as pb_grpc
    problems = []

    def matmul(target, megabytes):
        n = megabytes * MIB // 8  # a (1, n) and b (n, 1): `megabytes` of fp32 together
        return pb.MatmulRequest(
            a=pb.Tensor(dtype=pb.DTYPE_FP32, shape=[1, n], inline_data=bytes(n * 4)),
            b=pb.Tensor(dtype=pb.DTYPE_FP32, shape=[n, 1], inline_data=bytes(n * 4)))

    def concurrently(target, request, count):
        results = []

        def call():
            channel = grpc.insecure_channel(target, options=[
                ("grpc.max_send_message_length", 1 << 30),
                ("grpc.max_receive_message_length", 1 << 30)])
            try:
                pb_grpc.An1Stub(channel).Matmul(request, timeout=60)
                results.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                results.append(e.code())
            finally:
                channel.close()
        threads = [threading.Thread(target=call) for _ in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    with tempfile.TemporaryDirectory() as work:
        daemon = An1dProcess([args.an1d, "--no-gpu", "--max-inflight-bytes", str(256 * MIB)], work)
        big = concurrently(daemon.target, matmul(daemon.target, 256), 4)
        if any(code not in (grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED)
               for code in big) or grpc.StatusCode.RESOURCE_EXHAUSTED not in big:
            problems.append(f"four 256 MiB uploads: want RESOURCE_EXHAUSTED (or OK), got {big}")
        peak = peak_rss_mib(daemon.proc.pid)
        print(f"four concurrent 256 MiB uploads: {[c.name for c in big]}, peak RSS {peak} MiB")
        if not 0 < peak < 1024:
            problems.append(f"an1d's peak resident memory was {peak} MiB (limit here 1024)")
        small = concurrently(daemon.target, matmul(daemon.target, 16), 4)
        if small != [grpc.StatusCode.OK] * 4:
            problems.append(f"four 16 MiB uploads afterwards: {small}")
        daemon.stop_expecting_success(problems)
    report(problems)


if __name__ == "__main__":
    main()
