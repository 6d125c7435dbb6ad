"""An1Error and ExecutionInfo: what every call raises and reports."""
import dataclasses
from typing import Optional

import grpc


class An1Error(Exception):
    """Every failure of an an1_cache call: the gRPC status code (`code`, a grpc.StatusCode) and
    the server's message (`message`). Refusals made on the client side, before anything is sent,
    carry the code the server would have answered (INVALID_ARGUMENT for a dtype or a mix of tensor
    kinds it cannot take, FAILED_PRECONDITION for a missing CUDA or torch)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @property
    def details(self) -> str:
        return self.message


@dataclasses.dataclass(frozen=True)
class ExecutionInfo:
    """How a call was executed (the response's ExecutionInfo, plus what the client measured)."""
    backend: str             # the backend that ran: "an1" or "baseline"
    requested: str           # the policy asked for: "auto", "an1" or "baseline"
    reason: str              # why `backend` differs from what was asked; "" otherwise
    kernel: str              # e.g. "an1.fwd.sm90", "baseline.cpu", "cublaslt.tuned"
    device: str              # "cpu" or "cuda:N" (the server's numbering)
    queue_seconds: float     # admitted -> started, on the server
    compute_seconds: float   # computing (on a GPU: CUDA events around the kernels)
    copy_seconds: float      # host <-> device copies on the server
    copied_bytes: int        # tensor bytes moved between host and device (0 with CUDA IPC)
    server_seconds: float    # arrival to reply on the server
    round_trip_seconds: float  # measured by this client, serialization included
    tokens: int              # attention: B * Sq; paged: total_q; matmul: output rows
    energy_joules: Optional[float]  # this request's share of the GPU energy; None if not measured
    transport: str           # how the inputs travelled: "inline", "shm" or "cuda-ipc"


_BACKEND_NAMES = {0: "auto", 1: "an1", 2: "baseline"}


def execution_info(info, round_trip_seconds, transport):
    return ExecutionInfo(
        backend=_BACKEND_NAMES.get(info.backend, str(info.backend)),
        requested=_BACKEND_NAMES.get(info.requested, str(info.requested)),
        reason=info.backend_reason, kernel=info.kernel, device=info.device,
        queue_seconds=info.queue_seconds, compute_seconds=info.compute_seconds,
        copy_seconds=info.copy_seconds, copied_bytes=int(info.copied_bytes),
        server_seconds=info.server_seconds, round_trip_seconds=round_trip_seconds,
        tokens=int(info.tokens),
        energy_joules=info.energy_joules if info.energy_measured else None,
        transport=transport)
