#!/usr/bin/python3
"""The Python client (client/python, package an1_cache) against a real an1d on the CPU: NumPy and
torch-CPU inputs against a float64 reference (causal bottom-right, GQA/MQA, Sq != Sk, scale,
fp16/bf16/fp32), matmul broadcasting, errors and their codes, AN1_SERVER/AN1_BACKEND, system
shared memory round trips leaving nothing in /dev/shm, last_execution(), PagedAttention on a
ragged batch (inline, and appending into caches in shared memory).

Run by ctest (label `integration`):
    an1_cache_test.py --an1d PATH --python-dir BUILD/python [unittest options]
"""
import argparse
import os
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/: an1d_process, cli_paged_test
from an1d_process import An1dProcess  # noqa: E402
import cli_paged_test as paged  # noqa: E402

OPTS = None
SERVER = None
try:
    import torch
except ImportError as e:
    torch = None
    TORCH_MISSING = f"torch is not importable ({e}); apt-get install python3-torch"
an1_cache = None  # imported in setUpModule, from --python-dir


def setUpModule():
    global SERVER, an1_cache
    sys.path.insert(0, OPTS.python_dir)
    import an1_cache as module
    an1_cache = module
    SERVER = An1dProcess([OPTS.an1d], tempfile.mkdtemp(prefix="an1-py-"), ["--no-gpu"])
    os.environ["AN1_SERVER"] = SERVER.target
    os.environ.pop("AN1_BACKEND", None)


def tearDownModule():
    if SERVER is not None:
        code = SERVER.stop()
        if code != 0:
            raise AssertionError(f"an1d exited with {code}:\n" + SERVER.log_text())


def reference_attention(q, k, v, causal=True, scale=None):
    """float64 attention, causal aligned bottom-right; rows that see no key are zeros."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    heads, kv_heads, sq, sk, dim = q.shape[1], k.shape[1], q.shape[2], k.shape[2], q.shape[3]
    k = np.repeat(k, heads // kv_heads, axis=1)
    v = np.repeat(v, heads // kv_heads, axis=1)
    s = np.einsum("bhqd,bhkd->bhqk", q, k) * (scale if scale is not None else dim ** -0.5)
    if causal:
        visible = np.arange(sk)[None, :] <= np.arange(sq)[:, None] + sk - sq
        s = np.where(visible, s, -np.inf)
    m = s.max(-1, keepdims=True)
    p = np.exp(s - np.where(np.isfinite(m), m, 0))
    total = p.sum(-1, keepdims=True)
    return np.einsum("bhqk,bhkd->bhqd", np.divide(p, total, where=total > 0,
                                                  out=np.zeros_like(p)), v)


TOLERANCE = {np.float32: 1e-4, np.float16: 4e-3}


def psm_entries():
    return {n for n in os.listdir("/dev/shm") if n.startswith("psm_")}


class NumpyAttention(unittest.TestCase):
    # B, H, Hkv, Sq, Sk, D, causal, scale
    CASES = [(2, 4, 2, 37, 53, 64, True, None),    # GQA, Sq < Sk: bottom-right
             (1, 3, 3, 9, 4, 16, True, None),      # Sq > Sk: the first rows see no key
             (2, 8, 1, 1, 33, 32, True, None),     # MQA decode row
             (1, 6, 2, 17, 17, 48, False, 0.3),    # not causal, custom scale
             (3, 2, 2, 5, 70, 8, True, 0.05)]

    def test_against_float64(self):
        rng = np.random.default_rng(16)
        for dtype in (np.float32, np.float16):
            for b, h, hkv, sq, sk, d, causal, scale in self.CASES:
                with self.subTest(dtype=dtype.__name__, shape=(b, h, hkv, sq, sk, d),
                                  causal=causal, scale=scale):
                    q = rng.standard_normal((b, h, sq, d)).astype(dtype)
                    k = rng.standard_normal((b, hkv, sk, d)).astype(dtype)
                    v = rng.standard_normal((b, hkv, sk, d)).astype(dtype)
                    out = an1_cache.llm_attention(q, k, v, causal=causal, scale=scale)
                    self.assertIsInstance(out, np.ndarray)
                    self.assertEqual(out.dtype, dtype)
                    self.assertEqual(out.shape, q.shape)
                    self.assertTrue(out.flags.writeable)
                    ref = reference_attention(q, k, v, causal, scale)
                    self.assertLess(np.abs(out - ref).max(), TOLERANCE[dtype])
                    if causal and sq > sk:
                        self.assertTrue(np.all(out[:, :, :sq - sk] == 0))

    def test_defaults_are_causal_and_inverse_sqrt_d(self):
        rng = np.random.default_rng(1)
        q, k, v = (rng.standard_normal((1, 2, 6, 16)).astype(np.float32) for _ in range(3))
        out = an1_cache.llm_attention(q, k, v)
        self.assertLess(np.abs(out - reference_attention(q, k, v, True, 0.25)).max(), 1e-4)

    def test_lse_and_return_info(self):
        rng = np.random.default_rng(2)
        q, k, v = (rng.standard_normal((1, 2, 4, 16)).astype(np.float32) for _ in range(3))
        client = an1_cache.Client(timeout=30)
        out, lse, info = client.attention(q, k, v, return_lse=True, return_info=True)
        self.assertEqual(lse.shape, (1, 2, 4))
        self.assertEqual(lse.dtype, np.float32)
        s = np.einsum("bhqd,bhkd->bhqk", q.astype(np.float64), k) / 4.0
        s = np.where(np.tril(np.ones((4, 4), bool)), s, -np.inf)
        self.assertLess(np.abs(lse - np.log(np.exp(s).sum(-1))).max(), 1e-4)
        self.assertEqual(info.tokens, 4)


class Matmul(unittest.TestCase):
    def test_broadcasting(self):
        rng = np.random.default_rng(3)
        for dtype, a_shape, b_shape in [(np.float32, (3, 1, 17, 29), (5, 29, 11)),
                                        (np.float16, (4, 8), (8, 3)),
                                        (np.float32, (2, 1, 3, 4), (1, 6, 4, 5))]:
            with self.subTest(dtype=dtype.__name__, a=a_shape, b=b_shape):
                a = rng.standard_normal(a_shape).astype(dtype)
                b = rng.standard_normal(b_shape).astype(dtype)
                c, info = an1_cache.matmul(a, b, return_info=True)
                ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
                self.assertEqual(c.dtype, dtype)
                self.assertEqual(c.shape, ref.shape)
                self.assertLess(np.abs(c - ref).max(), 1e-4 if dtype == np.float32 else 3e-2)
                self.assertEqual(info.tokens, int(np.prod(ref.shape[:-1])))


@unittest.skipIf(torch is None, TORCH_MISSING if torch is None else "")
class TorchCpu(unittest.TestCase):
    def test_attention_dtypes(self):
        gen = torch.Generator().manual_seed(4)
        for dtype, tol in ((torch.float32, 1e-4), (torch.float16, 4e-3),
                           (torch.bfloat16, 3e-2)):
            with self.subTest(dtype=str(dtype)):
                q = torch.randn(2, 4, 11, 32, generator=gen).to(dtype)
                k = torch.randn(2, 2, 19, 32, generator=gen).to(dtype)
                v = torch.randn(2, 2, 19, 32, generator=gen).to(dtype)
                out = an1_cache.llm_attention(q, k, v)
                self.assertIsInstance(out, torch.Tensor)
                self.assertEqual(out.dtype, dtype)
                self.assertEqual(out.device.type, "cpu")
                self.assertEqual(tuple(out.shape), (2, 4, 11, 32))
                ref = reference_attention(q.float().numpy(), k.float().numpy(), v.float().numpy())
                self.assertLess(np.abs(out.float().numpy() - ref).max(), tol)

    def test_matmul_non_contiguous_bf16(self):
        a = torch.randn(3, 7, 5).to(torch.bfloat16)
        b = torch.randn(5, 6).to(torch.bfloat16).t().contiguous().t()  # non-contiguous (5, 6)
        self.assertFalse(b.is_contiguous())
        c = an1_cache.matmul(a, b)
        self.assertEqual(c.dtype, torch.bfloat16)
        ref = a.double().numpy() @ b.double().numpy()
        self.assertLess(np.abs(c.double().numpy() - ref).max(), 0.1)

    def test_shm_torch(self):
        client = an1_cache.Client()
        q = torch.randn(1, 2, 8, 16, dtype=torch.bfloat16)
        with client.register_system_shm(q) as qs:
            self.assertIsInstance(qs, torch.Tensor)
            self.assertTrue(torch.equal(qs, q))
            out, info = client.attention(qs, q, q, return_info=True)
        self.assertEqual(info.transport, "shm")
        self.assertTrue(torch.equal(out, an1_cache.llm_attention(q, q, q)))


class Errors(unittest.TestCase):
    def assertCode(self, code, call, contains=""):
        with self.assertRaises(an1_cache.An1Error) as caught:
            call()
        self.assertEqual(caught.exception.code, code, caught.exception.message)
        self.assertIn(contains, caught.exception.message)
        self.assertIn(code.name, str(caught.exception))
        return caught.exception

    def test_codes(self):
        import grpc
        q = np.zeros((1, 4, 3, 16), np.float32)
        kv = np.zeros((1, 2, 3, 16), np.float32)
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION,
                        lambda: an1_cache.llm_attention(q, kv, kv, backend="an1"), "license")
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT,
                        lambda: an1_cache.llm_attention(q[0], kv, kv))  # rank 3
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT,  # H % Hkv != 0
                        lambda: an1_cache.llm_attention(q, np.zeros((1, 3, 3, 16), np.float32),
                                                        np.zeros((1, 3, 3, 16), np.float32)))
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT,
                        lambda: an1_cache.matmul(np.zeros((2, 3), np.float32),
                                                 np.zeros((4, 5), np.float32)))
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT,
                        lambda: an1_cache.llm_attention(q.astype(np.float64), kv, kv), "float64")
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT,
                        lambda: an1_cache.llm_attention(q.view(np.uint16)[..., :16], kv, kv),
                        "bfloat16")
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT,
                        lambda: an1_cache.llm_attention(q, kv, kv, backend="fast"), "backend")
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT,
                        lambda: an1_cache.llm_attention(q, kv, kv.tolist()))
        if torch is not None:
            self.assertCode(grpc.StatusCode.INVALID_ARGUMENT,
                            lambda: an1_cache.llm_attention(q, torch.from_numpy(kv), kv), "all")
        unreachable = an1_cache.Client("127.0.0.1:1", timeout=2)
        self.assertCode(grpc.StatusCode.UNAVAILABLE, unreachable.health)

    def test_environment(self):
        q = np.zeros((1, 2, 3, 16), np.float32)
        try:
            os.environ["AN1_BACKEND"] = "an1"
            import grpc
            self.assertCode(grpc.StatusCode.FAILED_PRECONDITION,
                            lambda: an1_cache.llm_attention(q, q, q))
            os.environ["AN1_BACKEND"] = "baseline"
            an1_cache.llm_attention(q, q, q)
            self.assertEqual(an1_cache.last_execution().requested, "baseline")
            an1_cache.llm_attention(q, q, q, backend="auto")  # auto: AN1_BACKEND decides
            self.assertEqual(an1_cache.last_execution().requested, "baseline")
        finally:
            os.environ.pop("AN1_BACKEND", None)
        an1_cache.llm_attention(q, q, q)
        self.assertEqual(an1_cache.last_execution().requested, "auto")


class LastExecution(unittest.TestCase):
    def test_fields(self):
        q = np.ones((2, 2, 5, 16), np.float16)
        an1_cache.llm_attention(q, q, q)
        info = an1_cache.last_execution()
        self.assertIsInstance(info, an1_cache.ExecutionInfo)
        self.assertEqual(info.backend, "baseline")
        self.assertEqual(info.requested, "auto")
        self.assertIn("license", info.reason)
        self.assertEqual(info.kernel, "baseline.cpu")
        self.assertEqual(info.device, "cpu")
        self.assertEqual(info.tokens, 10)
        self.assertEqual(info.copied_bytes, 0)
        self.assertIsNone(info.energy_joules)
        self.assertEqual(info.transport, "inline")
        self.assertGreater(info.round_trip_seconds, 0)
        self.assertGreaterEqual(info.round_trip_seconds, info.server_seconds)
        self.assertGreater(info.compute_seconds, 0)

    def test_client_info_and_health(self):
        client = an1_cache.Client(timeout=10)
        self.assertEqual(client.health(), "SERVING")
        info = client.info()
        self.assertFalse(info["gpu_mode"])
        self.assertIn("license", info)


class SharedMemory(unittest.TestCase):
    def test_round_trip_leaves_nothing(self):
        before = psm_entries()
        rng = np.random.default_rng(5)
        q = rng.standard_normal((1, 4, 9, 32)).astype(np.float16)
        k = rng.standard_normal((1, 2, 12, 32)).astype(np.float16)
        inline = an1_cache.llm_attention(q, k, k)
        with an1_cache.Client() as client:
            with client.register_system_shm(q) as qs, client.register_system_shm(k) as ks, \
                    client.register_system_shm(np.zeros_like(q)) as out:
                self.assertEqual(psm_entries(), before)  # names removed once registered
                for _ in range(3):  # registered once, used three times
                    result = client.attention(qs, ks, ks, out=out)
                    self.assertIs(result, out)
                    self.assertEqual(client.last_execution.transport, "shm")
                    self.assertEqual(len(client.list_regions()), 3)
                self.assertTrue(np.array_equal(out, inline))
                # a view inside a region travels as a reference too
                half = client.attention(qs[:, :2], ks[:, :1], ks[:, :1], return_info=True)[1]
                self.assertEqual(half.transport, "shm")
            self.assertEqual(client.list_regions(), [])
        self.assertEqual(psm_entries(), before)

    def test_bytes_region_and_matmul(self):
        with an1_cache.Client() as client:
            with client.register_system_shm(4 * 6 * 4 + 6 * 2 * 4) as raw:
                a = raw[:96].view(np.float32).reshape(4, 6)
                b = raw[96:].view(np.float32).reshape(6, 2)
                a[...] = np.arange(24).reshape(4, 6)
                b[...] = 1
                c, info = client.matmul(a, b, return_info=True)
                self.assertEqual(info.transport, "shm")
                self.assertTrue(np.array_equal(c, np.arange(24).reshape(4, 6).sum(1,
                                               keepdims=True).repeat(2, 1)))


class PagedAttention(unittest.TestCase):
    def test_ragged(self):
        rng = np.random.default_rng(6)
        kv_lens, q_lens, page = [37, 1, 64, 0], [5, 1, 13, 0], 16
        case = paged.make_case(rng, kv_lens, q_lens, 6, 2, 32, page, False, "fp32")
        ref, ref_lse = paged.reference(case, page)
        out, lse, info = an1_cache.paged_attention(
            case["q"], case["cu_seqlens_q"], case["k_cache"], case["v_cache"],
            case["page_table"], case["kv_lens"].tolist(), return_lse=True, return_info=True)
        self.assertEqual(out.shape, case["q"].shape)
        self.assertLess(np.abs(out - ref).max(), 1e-4)
        self.assertLess(np.abs(lse - ref_lse).max(), 1e-4)
        self.assertEqual(info.tokens, sum(q_lens))

    def test_append_into_shared_caches(self):
        rng = np.random.default_rng(7)
        kv_lens, q_lens, page = [20, 9], [3, 1], 8
        case = paged.make_case(rng, kv_lens, q_lens, 4, 4, 16, page, True, "fp16")
        for name in ("q", "k_cache", "v_cache", "k_new", "v_new"):
            case[name] = case[name].astype(np.float16)
        ref, _ = paged.reference(case, page)
        with an1_cache.Client() as client, \
                client.register_system_shm(case["k_cache"]) as kc, \
                client.register_system_shm(case["v_cache"]) as vc:
            out = client.paged_attention(case["q"], case["cu_seqlens_q"], kc, vc,
                                         case["page_table"], case["kv_lens"],
                                         k_new=case["k_new"], v_new=case["v_new"])
            self.assertLess(np.abs(out - ref).max(), 4e-3)
            # the appended rows are now in the shared caches
            b, pos = 0, kv_lens[0] - 1
            slot = kc[case["page_table"][b, pos // page], pos % page]
            self.assertTrue(np.array_equal(slot, case["k_new"][q_lens[0] - 1]))


def main():
    global OPTS
    parser = argparse.ArgumentParser()
    parser.add_argument("--an1d", required=True)
    parser.add_argument("--python-dir", required=True, help="BUILD/python, holding an1_cache")
    OPTS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
