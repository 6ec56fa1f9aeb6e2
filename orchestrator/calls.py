"""Calling one agent step: pick a replica, stream, retry only before the first event.

A failure before any event (the replica is down, draining, unreachable)
ejects that replica and retries on another, a bounded number of times.
After the first event a failure is never replayed (model calls are not
idempotent): it surfaces as `StepFailed`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from meshscope.v1 import agent_pb2
from meshscope.wire import ERROR_KIND_METADATA
from orchestrator.pool import Endpoint, EndpointPool, NoReplica

RETRYABLE_BEFORE_FIRST_EVENT = frozenset({grpc.StatusCode.UNAVAILABLE})
RETRY_ELSEWHERE_KINDS = frozenset({"ShuttingDown"})
"""Agent error kinds that another replica may not have (the replica is draining)."""


def _replica_fault(error: grpc.aio.AioRpcError) -> bool:
    """Whether this UNAVAILABLE is the replica's own (transport, draining) rather than shared trouble."""
    metadata = error.trailing_metadata() or ()
    kind = next((str(value) for key, value in metadata if key == ERROR_KIND_METADATA), None)
    return kind is None or kind in RETRY_ELSEWHERE_KINDS


class StepFailed(Exception):
    """A step failed with a gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class StepEvent:
    """One event of a step, with the replica that produced it."""

    endpoint: Endpoint
    event: agent_pb2.AgentEvent


async def stream_step(
    pool: EndpointPool,
    request: agent_pb2.InvokeRequest,
    *,
    deadline: float,
    attempts: int,
) -> AsyncIterator[StepEvent]:
    """Stream one agent turn from the best replica (see the module docstring)."""
    tried: set[str] = set()
    last: StepFailed | None = None
    for _ in range(attempts):
        try:
            endpoint = pool.pick(request.agent, exclude=tried)
        except NoReplica as exc:
            if last is not None:
                raise last from exc
            raise StepFailed(grpc.StatusCode.UNAVAILABLE, str(exc)) from exc
        tried.add(endpoint.replica_id)
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            raise StepFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "the run's deadline passed")
        started = False
        call = None
        pool.stream_started(endpoint)
        try:
            call = endpoint.stub.Invoke(request, timeout=timeout)
            async for event in call:
                started = True
                yield StepEvent(endpoint, event)
            return
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our own cancellation: the caller left, or a sibling step failed
            # grpc cancelled the call underneath us (its channel went away).
            raise StepFailed(
                grpc.StatusCode.UNAVAILABLE,
                f"agent {request.agent!r} on {endpoint.replica_id}: the connection was closed",
            ) from None
        except grpc.aio.AioRpcError as error:
            code = error.code()
            failure = StepFailed(
                code,
                f"agent {request.agent!r} on {endpoint.replica_id}: {error.details() or code.name}",
            )
            if started or code not in RETRYABLE_BEFORE_FIRST_EVENT or not _replica_fault(error):
                raise failure from error
            pool.eject(endpoint)
            last = failure
        finally:
            pool.stream_ended(endpoint)
            if call is not None:
                call.cancel()
    assert last is not None
    raise last
