"""Errors that carry their gRPC status, so every edge reports a precise code."""

from __future__ import annotations

import copy

import grpc


class MeshError(Exception):
    """A failure with a gRPC status code and a message fit for a client."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def with_message(error: MeshError, message: str) -> MeshError:
    """A copy of `error` (same class, code and retryability) that says `message` instead."""
    changed = copy.copy(error)
    changed.message = message
    changed.args = (message,)
    return changed


class InvalidInput(MeshError):
    """The request is malformed; the message names the offending field."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class AgentNotFound(MeshError):
    """The request names an agent this process does not host."""

    code = grpc.StatusCode.NOT_FOUND


class ShuttingDown(MeshError):
    """The server is draining; the caller should pick another replica."""

    code = grpc.StatusCode.UNAVAILABLE
    retryable = True


class SessionNotFound(MeshError):
    """The request names a session the store does not have."""

    code = grpc.StatusCode.NOT_FOUND


class SessionBusy(MeshError):
    """Another turn of the same (session, agent) is running."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class EventTooLarge(MeshError):
    """An event the agent produced is larger than this server may send."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class StoreUnavailable(MeshError):
    """A backing store (state, history, locks) cannot be reached."""

    code = grpc.StatusCode.UNAVAILABLE
    retryable = True


class StoreBusy(MeshError):
    """Every pooled connection to the session store stayed in use for the configured wait.

    A full pool is a wait, not an outage (DESIGN.md §7): this is raised only when the wait
    ran out. The replica is overloaded, not the store unreachable, so another replica,
    with its own pool, may serve the turn.
    """

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    retryable = True


class CorruptState(MeshError):
    """A stored state cannot be decoded; the message names the session."""

    code = grpc.StatusCode.DATA_LOSS


class ModelFailure(MeshError):
    """The model call failed (provider error, bad response...)."""

    code = grpc.StatusCode.INTERNAL


class ConfigError(Exception):
    """Bad flags, environment or configuration: the process must not start.

    The message is one line; the CLI prints it and exits with status 2.
    """
