"""torch CUDA tensors over CUDA IPC: the server reads the inputs and writes the output in place
on the GPU, no tensor byte through the host.

Each tensor's CUDA allocation (the caching allocator's segment holding it) is exported once with
cuIpcGetMemHandle and registered with the server (RegisterCudaSharedMemory); a tensor is then a
(region, offset, bytes) reference into it. Registrations are cached per allocation (its base, size
and IPC handle), so a loop over the same tensors, or over fresh tensors the caching allocator
places in segments it already holds, registers nothing after the first call.

The driver API (libcuda.so.1, present wherever torch can use a GPU) is called through ctypes:
cuMemGetAddressRange gives the allocation's base and real size (what the server checks), and
cuIpcGetMemHandle its handle. Where the driver cannot export an allocation (PyTorch's
expandable_segments, made with the virtual memory API), torch's own exporter
(UntypedStorage._share_cuda_) is tried; failing both, FAILED_PRECONDITION says why.

Not exercised in CPU CI: tests/python/gpu_torch_cuda_test.py runs it on a GPU host.
"""
import ctypes
import threading

import grpc

from ._types import An1Error

_IPC_HANDLE_BYTES = 64


class _Driver:
    def __init__(self):
        self.lib = ctypes.CDLL("libcuda.so.1")
        self.lib.cuMemGetAddressRange_v2.argtypes = [
            ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_size_t), ctypes.c_uint64]
        self.lib.cuIpcGetMemHandle.argtypes = [ctypes.c_char_p, ctypes.c_uint64]
        self.lib.cuDeviceGet.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self.lib.cuDeviceGetUuid.argtypes = [ctypes.c_char_p, ctypes.c_int]

    def check(self, result, what):
        if result != 0:
            name = ctypes.c_char_p()
            self.lib.cuGetErrorName(result, ctypes.byref(name))
            raise OSError(f"{what} failed: {(name.value or b'?').decode()} ({result})")

    def allocation(self, pointer):
        base, size = ctypes.c_uint64(), ctypes.c_size_t()
        self.check(self.lib.cuMemGetAddressRange_v2(ctypes.byref(base), ctypes.byref(size),
                                                    pointer), "cuMemGetAddressRange")
        return base.value, size.value

    def ipc_handle(self, base):
        handle = ctypes.create_string_buffer(_IPC_HANDLE_BYTES)
        self.check(self.lib.cuIpcGetMemHandle(handle, base), "cuIpcGetMemHandle")
        return handle.raw

    def uuid(self, ordinal):
        device = ctypes.c_int()
        self.check(self.lib.cuDeviceGet(ctypes.byref(device), ordinal), "cuDeviceGet")
        raw = ctypes.create_string_buffer(16)
        self.check(self.lib.cuDeviceGetUuid(raw, device), "cuDeviceGetUuid")
        h = raw.raw.hex()
        return f"GPU-{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _failed(message):
    return An1Error(grpc.StatusCode.FAILED_PRECONDITION, message)


class CudaRegions:
    """The CUDA IPC regions of one Client, keyed by allocation."""

    def __init__(self, client):
        self._client = client
        self._lock = threading.Lock()
        self._regions = {}  # (device, base, size, handle) -> region name
        self._driver = None
        self._server_device = {}  # client ordinal -> server device id

    def _drv(self):
        if self._driver is None:
            try:
                self._driver = _Driver()
            except OSError as e:
                self._driver = e
        return None if isinstance(self._driver, OSError) else self._driver

    def server_device(self, ordinal):
        """The server's number for this process's CUDA device `ordinal`: matched by UUID against
        GetServerInfo (the two processes may see different CUDA_VISIBLE_DEVICES); the same number
        where UUIDs cannot be compared."""
        if ordinal in self._server_device:
            return self._server_device[ordinal]
        devices = self._client.info().get("devices", [])
        found = ordinal
        drv = self._drv()
        if drv is not None and devices:
            try:
                uuid = drv.uuid(ordinal)
            except OSError:
                uuid = None
            if uuid is not None:
                match = [d.get("index", 0) for d in devices if d.get("uuid") == uuid]
                if not match:
                    raise _failed(f"this process's cuda:{ordinal} ({uuid}) is not one of the "
                                  "server's GPUs: CUDA IPC needs the server on the same host and GPU")
                found = int(match[0])
        self._server_device[ordinal] = found
        return found

    def _export(self, tensor):
        """(base, size, handle, offset of the tensor's first byte from base)."""
        pointer = tensor.data_ptr()
        drv = self._drv()
        errors = []
        if drv is not None:
            try:
                base, size = drv.allocation(pointer)
                return base, size, drv.ipc_handle(base), pointer - base
            except OSError as e:
                errors.append(str(e))
        else:
            errors.append(f"libcuda.so.1: {self._driver}")
        try:  # torch's exporter: the handle of the storage's segment and the storage's offset
            storage = (tensor.untyped_storage() if hasattr(tensor, "untyped_storage")
                       else tensor.storage()._untyped())
            shared = storage._share_cuda_()
            handle, storage_bytes, storage_offset = bytes(shared[1]), shared[2], shared[3]
            offset = storage_offset + (pointer - storage.data_ptr())
            return None, storage_offset + storage_bytes, handle, offset
        except Exception as e:  # noqa: BLE001 - any failure of a private API ends up here
            errors.append(f"torch _share_cuda_: {e}")
        raise _failed("cannot export this CUDA tensor for CUDA IPC (" + "; ".join(errors) +
                      "); with PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True, turn that off")

    def ref(self, tensor):
        """(server device id, RegionRef fields) for a contiguous CUDA tensor."""
        ordinal = tensor.device.index if tensor.device.index is not None else 0
        base, size, handle, offset = self._export(tensor)
        if len(handle) != _IPC_HANDLE_BYTES:
            raise _failed(f"the CUDA IPC handle has {len(handle)} bytes, not 64")
        nbytes = tensor.numel() * tensor.element_size()
        key = (ordinal, base, size, handle)
        with self._lock:
            name = self._regions.get(key)
            if name is None:
                device = self.server_device(ordinal)
                name = self._client._new_region_name("cuda")
                self._client._register_cuda(name, handle, device, size)
                self._regions[key] = name
        return name, offset, nbytes

    def forget(self, name):
        """Unregisters one region of the cache."""
        with self._lock:
            keys = [key for key, value in self._regions.items() if value == name]
            for key in keys:
                del self._regions[key]
        if keys:
            try:
                self._client._unregister(name)
            except An1Error:
                pass

    def clear(self):
        """Unregisters every CUDA region of this client's cache (e.g. after
        torch.cuda.empty_cache(), which hands segments back to the driver)."""
        with self._lock:
            names, self._regions = list(self._regions.values()), {}
        for name in names:
            try:
                self._client._unregister(name)
            except An1Error:
                pass
