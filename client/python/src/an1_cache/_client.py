"""Client: one gRPC channel to an1d, every RPC, and the shared-buffer helpers."""
import contextlib
import os
import secrets
import socket
import threading
import time
from multiprocessing import shared_memory

import grpc
import numpy as np
from google.protobuf import json_format

from . import _tensors as T
from ._cuda import CudaRegions
from ._proto.an1.v1 import an1_pb2 as pb
from ._proto.an1.v1 import an1_pb2_grpc as pb_grpc
from ._types import An1Error, execution_info

DEFAULT_SERVER = "localhost:50051"
_BACKENDS = {"auto": pb.BACKEND_AUTO, "an1": pb.BACKEND_AN1, "baseline": pb.BACKEND_BASELINE}
_last = threading.local()


def last_execution():
    """The ExecutionInfo of the last successful call made by this thread (any Client), or None."""
    return getattr(_last, "info", None)


def backend_policy(backend):
    """"auto" (the default) defers to AN1_BACKEND when it is set; "an1" and "baseline" win."""
    if backend is None or backend == "auto":
        backend = os.environ.get("AN1_BACKEND", "auto") or "auto"
    if backend not in _BACKENDS:
        raise T.invalid(f"unknown backend {backend!r}: use 'auto', 'an1' or 'baseline'")
    return _BACKENDS[backend]


class _SystemRegion:
    def __init__(self, name, shm, size):
        self.name, self.shm, self.size = name, shm, size
        self.base = T.address(np.frombuffer(shm.buf, np.uint8, size))
        self.users = 1


def _message_to_dict(message):
    """The message as a dict with proto field names and every field, defaults included. The
    keyword for "defaults included" changed in protobuf 5.26 (Debian 12 has 3.21, GPU hosts 7.x)."""
    try:
        return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
    except TypeError:
        return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                         including_default_value_fields=True)


class Client:
    """A connection to an an1d server.

    server:  host:port (default: AN1_SERVER, else localhost:50051)
    timeout: seconds allowed per call (None: no deadline)
    client_id: the `an1-client-id` sent with every call; shared-memory regions belong to it
             within this client's session (made with CreateSession before the first region
             call, sent as `an1-session-id`; default id: 32 random hex digits)
    tls_ca: path of a PEM CA bundle: connect over TLS (an1d --tls-cert), trusting this CA
    tls_cert, tls_key: paths of this client's PEM certificate and key, for mutual TLS
             (an1d --tls-client-ca)
    tls_server_name: the name the server's certificate must carry (default: the host)
    token: bearer token for a server with --auth-tokens (default: env AN1_TOKEN); use TLS
    shm_socket: the server's Unix socket for shared memory descriptors (default: env
             AN1_SHM_SOCKET, else the path GetServerInfo advertises)

    Thread-safe: threads may share a Client. Close it (or use `with Client(...) as c:`) to
    unregister its regions and close the channel.
    """

    def __init__(self, server=None, *, timeout=None, client_id=None,
                 max_message_bytes=1 << 30, tls_ca=None, tls_cert=None, tls_key=None,
                 tls_server_name=None, token=None, shm_socket=None):
        self.server = server or os.environ.get("AN1_SERVER") or DEFAULT_SERVER
        self.timeout = timeout
        self.client_id = client_id or "an1-py-" + secrets.token_hex(16)
        self._metadata = (("an1-client-id", self.client_id),)
        token = token or os.environ.get("AN1_TOKEN")
        if token:
            self._metadata += (("authorization", "Bearer " + token),)
        options = [("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.max_receive_message_length", max_message_bytes)]
        if tls_ca or tls_cert or tls_key or tls_server_name:
            if bool(tls_cert) != bool(tls_key):
                raise ValueError("tls_cert and tls_key go together")

            def read(path):
                if not path:
                    return None
                with open(path, "rb") as f:
                    return f.read()
            credentials = grpc.ssl_channel_credentials(
                root_certificates=read(tls_ca), private_key=read(tls_key),
                certificate_chain=read(tls_cert))
            if tls_server_name:
                options.append(("grpc.ssl_target_name_override", tls_server_name))
            self._channel = grpc.secure_channel(self.server, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(self.server, options=options)
        self._stub = pb_grpc.An1Stub(self._channel)
        self._lock = threading.Lock()
        self._shm = []  # live _SystemRegion, looked up by address
        self._cuda = CudaRegions(self)
        self._info = None
        self._shm_socket = self._shm_socket_configured = shm_socket or os.environ.get(
            "AN1_SHM_SOCKET")
        self.last_execution = None

    # -- plumbing -------------------------------------------------------------------------
    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise An1Error(e.code(), e.details() or "") from None

    @staticmethod
    def _new_region_name(kind):
        return f"py-{kind}-{secrets.token_hex(8)}"

    def _ensure_session(self):
        """Creates this client's session (its regions belong to it) unless it has one."""
        with self._lock:
            if any(key == "an1-session-id" for key, _ in self._metadata):
                return
        session = self._call(self._stub.CreateSession, pb.CreateSessionRequest()).session_id
        with self._lock:
            if not any(key == "an1-session-id" for key, _ in self._metadata):
                self._metadata += (("an1-session-id", session),)

    def _forget_session(self):
        with self._lock:
            self._metadata = tuple(kv for kv in self._metadata if kv[0] != "an1-session-id")

    def _in_session(self, register):
        """Runs `register` in this client's session; when the server no longer knows the session
        (it expired after its idle time) or its socket is gone (it restarted), once more in a new
        session."""
        self._ensure_session()
        try:
            return register()
        except An1Error as e:
            socket_gone = e.code == grpc.StatusCode.UNAVAILABLE and \
                "cannot pass the shared memory descriptor on" in e.details
            session_gone = e.code == grpc.StatusCode.UNAUTHENTICATED and \
                "unknown or expired session" in e.details
            if not (socket_gone or session_gone):
                raise
        # A restarted server has a new socket (ask it again) and none of the old sessions.
        self._shm_socket = self._shm_socket_configured
        self._forget_session()
        self._ensure_session()
        return register()

    def _register_cuda(self, name, handle, device, size):
        self._in_session(lambda: self._call(
            self._stub.RegisterCudaSharedMemory, pb.RegisterCudaSharedMemoryRequest(
                name=name, raw_handle=handle, device_id=device, byte_size=size)))

    def _unregister(self, name):
        self._ensure_session()
        self._call(self._stub.UnregisterSharedMemory, pb.UnregisterSharedMemoryRequest(name=name))

    def close(self):
        """Unregisters this client's regions (CUDA ones; shm ones end with their `with`) and
        closes the channel."""
        self._cuda.clear()
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- server ---------------------------------------------------------------------------
    def health(self):
        """The grpc.health.v1 status of the whole server: "SERVING", "NOT_SERVING", ..."""
        from ._proto.grpc.health.v1 import health_pb2, health_pb2_grpc
        stub = health_pb2_grpc.HealthStub(self._channel)
        response = self._call(stub.Check, health_pb2.HealthCheckRequest())
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def info(self):
        """GetServerInfo as a dict (the proto's field names: version, gpu_mode, devices,
        backends, license, limits, ...)."""
        response = self._call(self._stub.GetServerInfo, pb.GetServerInfoRequest())
        return _message_to_dict(response)

    def list_regions(self):
        """This client's registered regions: [{"name", "kind", "byte_size"}]."""
        self._ensure_session()
        response = self._call(self._stub.ListSharedMemory, pb.ListSharedMemoryRequest())
        return [{"name": r.name, "kind": r.kind, "byte_size": r.byte_size}
                for r in response.regions]

    # -- tensors --------------------------------------------------------------------------
    def _region_of(self, array):
        """(region name, offset) when `array`'s bytes lie in one of our registered shm regions."""
        start, size = T.address(array), array.nbytes
        with self._lock:
            for region in self._shm:
                if region.base <= start and start + size <= region.base + region.size:
                    return region.name, start - region.base
        return None

    def _put(self, x, message, name, kind, allow_int32=False):
        """Fills the wire tensor `message` from x; returns its transport."""
        message.dtype = T.wire_dtype(x, name, allow_int32)
        message.shape.extend(int(s) for s in x.shape)
        if kind == T.TORCH_CUDA:
            x = x.contiguous()
            region, offset, nbytes = self._cuda.ref(x)
            message.region.region, message.region.offset = region, offset
            message.region.byte_size = nbytes
            return "cuda-ipc"
        array = T.host_array(x)
        where = self._region_of(array) if array.nbytes else None
        if where is not None:
            message.region.region, message.region.offset = where
            message.region.byte_size = array.nbytes
            return "shm"
        message.inline_data = array.tobytes()
        return "inline"

    def _run(self, kind, device, body):
        """Runs body() for a call; CUDA calls run with the tensors' device current and its
        stream synchronized, so the server reads finished inputs."""
        if kind != T.TORCH_CUDA:
            return body()
        torch = T._torch()
        with torch.cuda.device(device):
            return body()

    def _finish(self, method, request, transports, out_target, like, return_lse, return_info,
                kind):
        if kind == T.TORCH_CUDA:
            T._torch().cuda.current_stream().synchronize()
        start = time.perf_counter()
        response = self._call(method, request)
        round_trip = time.perf_counter() - start
        transport = ("cuda-ipc" if "cuda-ipc" in transports else
                     "shm" if "shm" in transports else "inline")
        info = execution_info(response.info, round_trip, transport)
        self.last_execution = _last.info = info
        if out_target is not None and request_has_output_region(request):
            output = out_target
        else:
            output = T.decode(response.output, like)
            if out_target is not None:
                _copy_into(out_target, output)
                output = out_target
        result = [output]
        if return_lse:
            result.append(T.decode_lse(response.lse, like))
        if return_info:
            result.append(info)
        return result[0] if len(result) == 1 else tuple(result)

    def _output(self, out, shape, like, kind, message):
        """Where the output goes. torch CUDA: a fresh CUDA tensor (or `out`) registered and
        written in place. Host: `out` in a registered shm region is written in place; another
        `out` gets a copy; none: a new array from the inline bytes. Returns the target or None."""
        if kind == T.TORCH_CUDA:
            torch = T._torch()
            if out is None:
                if shape is None:
                    return None  # the server will refuse the shapes; nothing to place
                out = torch.empty(shape, dtype=like.dtype, device=like.device)
            if not out.is_cuda or not out.is_contiguous():
                raise T.invalid("out must be a contiguous CUDA tensor for CUDA inputs")
            region, offset, nbytes = self._cuda.ref(out)
            message.region.region, message.region.offset = region, offset
            message.region.byte_size = nbytes
            return out
        if out is None:
            return None
        array = out if isinstance(out, np.ndarray) else (
            out.numpy() if out.dtype != T._torch().bfloat16
            else out.view(T._torch().int16).numpy())
        if not array.flags.c_contiguous:
            return out
        where = self._region_of(array) if array.nbytes else None
        if where is not None:
            message.region.region, message.region.offset = where
            message.region.byte_size = array.nbytes
        return out

    def attention(self, q, k, v, *, backend="auto", causal=True, scale=None, return_lse=False,
                  return_info=False, out=None):
        """Scaled dot-product attention: q (B, H, Sq, D), k and v (B, Hkv, Sk, D), H % Hkv == 0;
        causal aligned bottom-right; scale default 1/sqrt(D). Returns the output (B, H, Sq, D)
        in q's type, dtype and device; with return_lse also the fp32 LSE (B, H, Sq); with
        return_info also the ExecutionInfo."""
        kind = T.common_kind([("q", q), ("k", k), ("v", v)])
        request = pb.AttentionRequest(backend=backend_policy(backend), causal=bool(causal))
        if scale is not None:
            request.scale = float(scale)
        if return_lse:
            request.return_lse = True

        def body():
            transports = [self._put(x, getattr(request, n), n, kind)
                          for n, x in (("q", q), ("k", k), ("v", v))]
            shape = tuple(q.shape) if len(q.shape) == 4 else None
            target = self._output(out, shape, q, kind, request.output)
            return self._finish(self._stub.Attention, request, transports, target, q,
                                return_lse, return_info, kind)
        return self._run(kind, getattr(q, "device", None), body)

    def matmul(self, a, b, *, backend="auto", allow_tf32=False, return_info=False, out=None):
        """(..., m, k) @ (..., k, n) with NumPy broadcasting of the batch dimensions; the output
        in a's type, dtype and device."""
        kind = T.common_kind([("a", a), ("b", b)])
        request = pb.MatmulRequest(backend=backend_policy(backend), allow_tf32=bool(allow_tf32))

        def body():
            transports = [self._put(a, request.a, "a", kind), self._put(b, request.b, "b", kind)]
            target = self._output(out, T.matmul_shape(a, b), a, kind, request.output)
            return self._finish(self._stub.Matmul, request, transports, target, a, False,
                                return_info, kind)
        return self._run(kind, getattr(a, "device", None), body)

    def paged_attention(self, q, cu_seqlens_q, k_cache, v_cache, page_table, kv_lens, *,
                        k_new=None, v_new=None, backend="auto", causal=True, scale=None,
                        window_left=-1, window_right=-1, softcap=0.0, return_lse=False,
                        return_info=False, out=None):
        """PagedAttention (proto/an1/v1/an1.proto, README "API"): q (total_q, H, D) packed by
        sequence; cu_seqlens_q (B+1), page_table (B, max_pages_per_seq) and kv_lens (B) int32
        (host memory: CUDA ones are copied to the host); k_cache, v_cache (num_pages, page_size,
        Hkv, D); k_new, v_new (total_q, Hkv, D) are appended into the caches first, which must
        then be in a region (register_system_shm, or CUDA tensors). Returns (total_q, H, D)."""
        data = [("q", q), ("k_cache", k_cache), ("v_cache", v_cache)]
        if k_new is not None:
            data.append(("k_new", k_new))
        if v_new is not None:
            data.append(("v_new", v_new))
        kind = T.common_kind(data)
        request = pb.PagedAttentionRequest(
            backend=backend_policy(backend), causal=bool(causal), window_left=int(window_left),
            window_right=int(window_right), softcap=float(softcap))
        if scale is not None:
            request.scale = float(scale)
        if return_lse:
            request.return_lse = True

        def body():
            transports = [self._put(x, getattr(request, n), n, kind) for n, x in data]
            for n, x in (("cu_seqlens_q", cu_seqlens_q), ("page_table", page_table),
                         ("kv_lens", kv_lens)):
                self._put(T.index_array(x, n), getattr(request, n), n, T.NUMPY, allow_int32=True)
            shape = tuple(q.shape) if len(q.shape) == 3 else None
            target = self._output(out, shape, q, kind, request.output)
            return self._finish(self._stub.PagedAttention, request, transports, target, q,
                                return_lse, return_info, kind)
        return self._run(kind, getattr(q, "device", None), body)

    # -- shared buffers -------------------------------------------------------------------
    def _shm_socket_path(self):
        if not self._shm_socket:
            path = self._call(self._stub.GetServerInfo, pb.GetServerInfoRequest()).shm_socket
            if not path:
                raise An1Error(grpc.StatusCode.FAILED_PRECONDITION,
                               "shared memory is disabled on this server; send tensors inline")
            self._shm_socket = path
        return self._shm_socket

    def register_system_fd(self, name, fd, byte_size, offset=0):
        """Registers region `name` from `fd`, a shared memory object (or memfd) this process
        opened: the descriptor goes to the server over its Unix socket (SCM_RIGHTS), so the
        server reaches only what this process can; a read-only descriptor gives a region that
        outputs cannot be written into. `fd` stays open."""
        self._in_session(lambda: self._register_fd_once(name, fd, byte_size, offset))

    def _register_fd_once(self, name, fd, byte_size, offset):
        path = self._shm_socket_path()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                s.settimeout(10)
                s.connect(path)
                session = dict(self._metadata)["an1-session-id"]
                socket.send_fds(s, [f"{name}\n{session}".encode()], [fd])
                reply = s.recv(512).decode(errors="replace")
        except OSError as e:
            raise An1Error(grpc.StatusCode.UNAVAILABLE,
                           f"cannot pass the shared memory descriptor on {path}: {e}") from None
        if not reply.startswith("OK "):
            expired = "unknown or expired session" in reply
            raise An1Error(grpc.StatusCode.UNAUTHENTICATED if expired else grpc.StatusCode.UNAVAILABLE,
                           "the server refused the shared memory descriptor: " +
                           reply.removeprefix("ERR "))
        self._call(self._stub.RegisterSystemSharedMemory, pb.RegisterSystemSharedMemoryRequest(
            name=name, descriptor_ticket=reply[3:], offset=offset, byte_size=byte_size))

    @contextlib.contextmanager
    def register_system_shm(self, data):
        """POSIX shared memory registered with the server, as a context manager.

        `data`: a NumPy array or torch CPU tensor (copied in; yields a shm-backed array or tensor
        of the same shape and dtype), or a byte count (yields a zeroed uint8 array). Tensors
        that lie in it, views and slices included, then travel as region references, and an
        `out=` in it receives the output in place: no tensor bytes in the messages. The object's
        name is removed from /dev/shm as soon as the server holds its descriptor (passed over
        the server's Unix socket: register_system_fd); on exit the region is
        unregistered and the mapping closed.
        """
        torch = T._torch()
        if isinstance(data, (int, np.integer)):
            nbytes, source = int(data), None
        else:
            T.kind_of(data, "data")
            if T.is_torch(data) and data.is_cuda:
                raise T.invalid("register_system_shm takes host memory; CUDA tensors travel "
                                "by CUDA IPC on their own (or use register_cuda)")
            source = T.host_array(data)
            nbytes = source.nbytes
            existing = self._region_of(source) if nbytes else None
            if existing is not None:  # already shared: no second registration
                yield data
                return
        if nbytes <= 0:
            raise T.invalid("a shared memory region needs at least one byte")
        shm = shared_memory.SharedMemory(create=True, size=nbytes)
        name = self._new_region_name("shm")
        try:
            self.register_system_fd(name, shm._fd, nbytes)
        except BaseException:
            shm.unlink()
            _close_shm(shm)
            raise
        shm.unlink()  # the server holds a descriptor: nothing is left in /dev/shm
        region = _SystemRegion(name, shm, nbytes)
        with self._lock:
            self._shm.append(region)
        views = [np.frombuffer(shm.buf, np.uint8, nbytes)]
        try:
            if source is None:
                yield views[0]
            else:
                views.append(views[0].view(source.dtype).reshape(source.shape))
                views[-1][...] = source
                if T.is_torch(data):
                    shared = torch.from_numpy(views[-1])
                    yield shared.view(data.dtype) if data.dtype == torch.bfloat16 else shared
                else:
                    yield views[-1]
        finally:
            views.clear()
            with self._lock:
                self._shm.remove(region)
            try:
                self._unregister(name)
            except An1Error:
                pass  # the server is gone or already forgot it: nothing to undo there
            _close_shm(shm)

    @contextlib.contextmanager
    def register_cuda(self, tensor):
        """Registers a torch CUDA tensor's allocation for CUDA IPC ahead of the calls (they
        register on first use anyway, cached per allocation); on exit it is unregistered."""
        if not (T.is_torch(tensor) and tensor.is_cuda):
            raise T.invalid("register_cuda takes a torch CUDA tensor")
        torch = T._torch()
        with torch.cuda.device(tensor.device):
            region, _, _ = self._cuda.ref(tensor.contiguous())
        try:
            yield tensor
        finally:
            self._cuda.forget(region)


def _close_shm(shm):
    try:
        shm.close()
    except BufferError:
        # The caller's arrays still view the mapping: it is unmapped with the last of them. Drop
        # SharedMemory's hold on it (else its __del__ complains at exit) and close the descriptor.
        shm._buf, shm._mmap = None, None
        if getattr(shm, "_fd", -1) >= 0:
            os.close(shm._fd)
            shm._fd = -1


def request_has_output_region(request):
    return request.HasField("output") and request.output.HasField("region")


def _copy_into(out, value):
    if isinstance(out, np.ndarray):
        np.copyto(out, value)
    else:
        out.copy_(value)
