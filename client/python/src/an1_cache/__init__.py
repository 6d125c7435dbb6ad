"""an1_cache: the AN1 Engine's Python client, with the original library's API served by an1d.

    from an1_cache import llm_attention, matmul
    out = llm_attention(q, k, v)             # q (B, H, S, D), k/v (B, Hkv, Sk, D)
    c = matmul(a, b)                          # (..., m, k) @ (..., k, n), batch broadcast
    last_execution()                          # backend, reason, kernel, device, timings, energy

NumPy in, NumPy out (float16, float32; bfloat16 where NumPy has one, i.e. with ml_dtypes); torch
CPU in, torch CPU out (float16, bfloat16, float32); torch CUDA in, torch CUDA out on the same
device, by CUDA IPC with the output written in place. The server is AN1_SERVER (default
localhost:50051); backend "auto" follows AN1_BACKEND when it is set. Every failure raises
An1Error (`.code`, a grpc.StatusCode, and `.message`, the server's). `Client` has the rest:
timeouts, health, info, paged attention, shared memory.
"""
import os
import threading

from ._client import Client, DEFAULT_SERVER, last_execution
from ._types import An1Error, ExecutionInfo

__all__ = ["llm_attention", "matmul", "paged_attention", "last_execution", "Client", "An1Error",
           "ExecutionInfo", "default_client"]
__version__ = "0.1.0"

_clients = {}
_clients_lock = threading.Lock()


def default_client():
    """The module's shared Client for AN1_SERVER (read at each call; one Client per address)."""
    server = os.environ.get("AN1_SERVER") or DEFAULT_SERVER
    with _clients_lock:
        client = _clients.get(server)
        if client is None:
            client = _clients[server] = Client(server)
        return client


def llm_attention(q, k, v, *, backend="auto", causal=True, scale=None, return_info=False):
    """Attention as in the original library: q (B, H, S, D), k and v (B, Hkv, Sk, D) with
    H % Hkv == 0; causal (default) aligned bottom-right when S != Sk; scale 1/sqrt(D) unless
    given. Returns the output (B, H, S, D) in q's type; with return_info=True, (output, info)."""
    return default_client().attention(q, k, v, backend=backend, causal=causal, scale=scale,
                                      return_info=return_info)


def matmul(a, b, *, backend="auto", return_info=False):
    """(..., m, k) @ (..., k, n) with NumPy broadcasting of the batch dimensions."""
    return default_client().matmul(a, b, backend=backend, return_info=return_info)


def paged_attention(q, cu_seqlens_q, k_cache, v_cache, page_table, kv_lens, **kwargs):
    """The PagedAttention RPC with its arguments (see Client.paged_attention)."""
    return default_client().paged_attention(q, cu_seqlens_q, k_cache, v_cache, page_table,
                                            kv_lens, **kwargs)
