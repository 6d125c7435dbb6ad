"""Tensors between the caller's types (NumPy arrays, torch CPU and CUDA tensors) and the wire.

torch is never imported here: a torch tensor can only reach us once the caller imported torch,
so `sys.modules` tells whether one is in hand (and `import an1_cache` stays fast without it).
"""
import sys

import grpc
import numpy as np

from ._proto.an1.v1 import an1_pb2 as pb
from ._types import An1Error

NUMPY, TORCH_CPU, TORCH_CUDA = "numpy", "torch-cpu", "torch-cuda"

_NUMPY_DTYPES = {np.dtype(np.float16): pb.DTYPE_FP16, np.dtype(np.float32): pb.DTYPE_FP32,
                 np.dtype(np.int32): pb.DTYPE_INT32}
_BF16_REFUSED = ("NumPy has no bfloat16 dtype here (Debian 12 packages no ml_dtypes): pass a "
                 "torch.bfloat16 tensor, or float16/float32 arrays")


def invalid(message):
    return An1Error(grpc.StatusCode.INVALID_ARGUMENT, message)


def _torch():
    return sys.modules.get("torch")


def is_torch(x):
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def kind_of(x, name):
    if isinstance(x, np.ndarray):
        return NUMPY
    if is_torch(x):
        return TORCH_CUDA if x.is_cuda else TORCH_CPU
    raise invalid(f"{name} is a {type(x).__name__}: pass a NumPy array or a torch tensor")


def common_kind(named):
    """The kind shared by the data tensors [(name, tensor)]: all NumPy, all torch CPU, or all
    torch CUDA on one device."""
    kinds = {name: kind_of(x, name) for name, x in named}
    if len(set(kinds.values())) != 1:
        raise invalid("the tensors must all be NumPy arrays, all torch CPU tensors or all torch "
                      "CUDA tensors; got " + ", ".join(f"{n}: {k}" for n, k in kinds.items()))
    kind = next(iter(kinds.values()))
    if kind == TORCH_CUDA:
        devices = {str(x.device) for _, x in named}
        if len(devices) != 1:
            raise invalid("the CUDA tensors must be on one device; got " + ", ".join(sorted(devices)))
    return kind


def _bf16_numpy(dtype):
    return dtype.name == "bfloat16" and dtype.itemsize == 2  # ml_dtypes.bfloat16, where installed


def wire_dtype(x, name, allow_int32=False):
    if isinstance(x, np.ndarray):
        dtype = x.dtype
        if _bf16_numpy(dtype):
            code = pb.DTYPE_BF16
        elif dtype.kind in "fi":
            code = _NUMPY_DTYPES.get(dtype.newbyteorder("<"))
        elif dtype.itemsize == 2:  # uint16 or raw 2-byte records: bfloat16 bits, perhaps
            raise invalid(f"{name} has dtype {dtype}: {_BF16_REFUSED}")
        else:
            code = None
    else:
        torch = _torch()
        code = {torch.float16: pb.DTYPE_FP16, torch.bfloat16: pb.DTYPE_BF16,
                torch.float32: pb.DTYPE_FP32, torch.int32: pb.DTYPE_INT32}.get(x.dtype)
    if code is None or (code == pb.DTYPE_INT32 and not allow_int32):
        raise invalid(f"{name} has dtype {x.dtype}; the server takes float16, bfloat16 and float32"
                      + (" (convert with .astype(np.float32))" if isinstance(x, np.ndarray) else ""))
    return code


def host_array(x):
    """A C-contiguous little-endian NumPy view (or copy) of a NumPy array or torch CPU tensor."""
    if isinstance(x, np.ndarray):
        if x.dtype.byteorder == ">":
            x = x.astype(x.dtype.newbyteorder("<"))
        return np.ascontiguousarray(x)
    torch = _torch()
    t = x.detach().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy()
    return t.numpy()


def address(array):
    return array.__array_interface__["data"][0]


def index_array(x, name):
    """An int32 index tensor on the host (PagedAttention's index tensors must be host memory):
    integer NumPy arrays, torch tensors (CUDA ones are copied to the host) or sequences."""
    if is_torch(x):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise invalid(f"{name} must hold integers (int32 on the wire); got {x.dtype}")
    if x.dtype != np.int32:
        if x.size and (x.min() < np.iinfo(np.int32).min or x.max() > np.iinfo(np.int32).max):
            raise invalid(f"{name} has values outside int32")
        x = x.astype(np.int32)
    return np.ascontiguousarray(x)


def numpy_output(tensor_msg, like_dtype):
    """The response's inline tensor as a writable NumPy array of `like_dtype` (a NumPy dtype)."""
    out = np.empty(tuple(tensor_msg.shape), like_dtype)
    raw = tensor_msg.inline_data
    if len(raw) != out.nbytes:
        raise An1Error(grpc.StatusCode.INTERNAL,
                       f"the server sent {len(raw)} bytes for a {out.dtype} {out.shape} output")
    out.reshape(-1).view(np.uint8)[:] = np.frombuffer(raw, np.uint8)
    return out


_WIRE_TO_NUMPY = {pb.DTYPE_FP16: np.float16, pb.DTYPE_FP32: np.float32, pb.DTYPE_INT32: np.int32}


def decode(tensor_msg, like):
    """The response's inline tensor in the type of `like` (NumPy -> NumPy, torch -> torch on the
    same device, dtype of `like`)."""
    if isinstance(like, np.ndarray):
        if tensor_msg.dtype == pb.DTYPE_BF16:
            return numpy_output(tensor_msg, like.dtype)  # only reached with ml_dtypes' bfloat16
        return numpy_output(tensor_msg, _WIRE_TO_NUMPY[tensor_msg.dtype])
    torch = _torch()
    if tensor_msg.dtype == pb.DTYPE_BF16:
        t = torch.from_numpy(numpy_output(tensor_msg, np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(numpy_output(tensor_msg, _WIRE_TO_NUMPY[tensor_msg.dtype]))
    return t if like.device.type == "cpu" else t.to(like.device)


def decode_lse(tensor_msg, like):
    """The fp32 LSE: NumPy for NumPy inputs, a float32 torch tensor (on q's device) otherwise."""
    out = numpy_output(tensor_msg, np.float32)
    if isinstance(like, np.ndarray):
        return out
    t = _torch().from_numpy(out)
    return t if like.device.type == "cpu" else t.to(like.device)


def matmul_shape(a, b):
    """(..., m, k) @ (..., k, n) -> broadcast(...) + (m, n), or None when the shapes cannot
    multiply (the server then says why)."""
    a_shape, b_shape = tuple(a.shape), tuple(b.shape)
    if len(a_shape) < 2 or len(b_shape) < 2 or a_shape[-1] != b_shape[-2]:
        return None
    try:
        batch = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ValueError:
        return None
    return tuple(batch) + (a_shape[-2], b_shape[-1])
