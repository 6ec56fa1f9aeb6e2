"""Errors that carry their gRPC status and declared reason, so every edge reports both.

Each class declares its `reason` (a `common_pb2.ErrorReason` value): the servicer sends
it with the status (trailing metadata `meshscope-error-reason`) and the turn runner in
the error event, and callers (the orchestrator) decide on it, never on a class name.
"""

from __future__ import annotations

import copy
from typing import TypeAlias

import grpc

from meshscope.config import ConfigError as ConfigError  # the one error of bad configuration
from meshscope.v1 import common_pb2

Reason: TypeAlias = common_pb2.ErrorReason


class MeshError(Exception):
    """A failure with a gRPC status code, a declared reason and a message fit for a client.

    The base class itself is raised for a bug (an unexpected exception): INTERNAL.
    """

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: Reason = common_pb2.ERROR_REASON_INTERNAL
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def with_message(error: MeshError, message: str) -> MeshError:
    """A copy of `error` (same class, code, reason and retryability) that says `message` instead."""
    changed = copy.copy(error)
    changed.message = message
    changed.args = (message,)
    return changed


class InvalidInput(MeshError):
    """The request is malformed; the message names the offending field."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = common_pb2.ERROR_REASON_INVALID_INPUT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class AgentNotFound(MeshError):
    """The request names an agent this process does not host."""

    code = grpc.StatusCode.NOT_FOUND
    reason = common_pb2.ERROR_REASON_NOT_FOUND


class ShuttingDown(MeshError):
    """The server is draining and refuses new calls; the caller should pick another replica."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = common_pb2.ERROR_REASON_DRAINING
    retryable = True


class CutOff(MeshError):
    """The server's shutdown grace period ran out while the turn was running: it was ended.

    Not `ShuttingDown`: a refused call may go to another replica at once, a cut-off one may
    already have streamed events (which are never replayed).
    """

    code = grpc.StatusCode.UNAVAILABLE
    reason = common_pb2.ERROR_REASON_CUT_OFF
    retryable = True


class SessionNotFound(MeshError):
    """The request names a session the store does not have."""

    code = grpc.StatusCode.NOT_FOUND
    reason = common_pb2.ERROR_REASON_NOT_FOUND


class SessionBusy(MeshError):
    """Another turn of the same (session, agent) is running."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = common_pb2.ERROR_REASON_SESSION_BUSY


class EventTooLarge(MeshError):
    """An event the agent produced is larger than this server may send."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = common_pb2.ERROR_REASON_TOO_LARGE


class StoreUnavailable(MeshError):
    """A backing store (state, history, locks) cannot be reached."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = common_pb2.ERROR_REASON_STORE_UNAVAILABLE
    retryable = True


class StoreBusy(MeshError):
    """Every pooled connection to the session store stayed in use for the configured wait.

    A full pool is a wait, not an outage (DESIGN.md §7): this is raised only when the wait
    ran out. The replica is overloaded, not the store unreachable, so another replica,
    with its own pool, may serve the turn.
    """

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = common_pb2.ERROR_REASON_STORE_BUSY
    retryable = True


class CorruptState(MeshError):
    """A stored state cannot be decoded; the message names the session."""

    code = grpc.StatusCode.DATA_LOSS
    reason = common_pb2.ERROR_REASON_CORRUPT_STATE


class ModelFailure(MeshError):
    """The model call failed (provider error, bad response...)."""

    code = grpc.StatusCode.INTERNAL
    reason = common_pb2.ERROR_REASON_MODEL_FAILURE


class ContextOverflow(MeshError):
    """The conversation, with room for the answer, does not fit the model's context window.

    Raised by models that count their own tokens (`local`) before generating, so the turn
    ends with one clear error instead of a reply cut off by the window. Every replica runs
    the same model with the same window: not retryable; a new session is.
    """

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = common_pb2.ERROR_REASON_CONTEXT_OVERFLOW
