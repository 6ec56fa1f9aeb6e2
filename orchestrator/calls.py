"""Calling one agent step: pick a replica, stream, retry only before the first event.

A failure before any event (the replica is down, draining, unreachable)
ejects that replica and retries on another, a bounded number of times.
A call cancelled before any event by someone other than the caller (the
agent server's gRPC drops new calls when its backlog is full) is retried
too, after a short jittered pause, without ejecting anyone: the replica is
busy, not broken; so is a replica whose session-store connections all stayed
busy (StoreBusy), tried again on another replica. After the first event a failure is never replayed (model
calls are not idempotent): it surfaces as `StepFailed`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from discovery.backoff import Backoff
from meshscope.v1 import agent_pb2
from meshscope.wire import ERROR_KIND_METADATA
from orchestrator.pool import Endpoint, EndpointPool, NoReplica

RETRYABLE_BEFORE_FIRST_EVENT = frozenset({grpc.StatusCode.UNAVAILABLE})
REFUSED_PAUSE_S, REFUSED_PAUSE_CAP_S = 0.05, 1.0
"""Pause before retrying a call the transport cancelled: jittered, doubling, in seconds."""
MAX_REFUSED_RETRIES = 8
"""Retries of calls the transport cancelled, on top of `attempts`: with the pauses above,
up to ~4.5 s for a server's backlog of new calls to drain (it takes ~2 s for 1,500)."""
RETRY_ELSEWHERE_KINDS = frozenset({"ShuttingDown"})
"""Agent error kinds that another replica may not have (the replica is draining)."""
BUSY_KINDS = frozenset({"StoreBusy"})
"""Agent error kinds (RESOURCE_EXHAUSTED) that say the replica is busy, not broken: its own
pool of session-store connections stayed full. Another replica, with its own pool, may serve
the step; the busy one is not ejected."""


def _kind(error: grpc.aio.AioRpcError) -> str | None:
    """The agent's declared error kind, when the agent (not the transport) failed the call."""
    metadata = error.trailing_metadata() or ()
    return next((str(value) for key, value in metadata if key == ERROR_KIND_METADATA), None)


def _replica_fault(error: grpc.aio.AioRpcError) -> bool:
    """Whether this UNAVAILABLE is the replica's own (transport, draining) rather than shared trouble."""
    kind = _kind(error)
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
    """Stream one agent turn from the best replica (see the module docstring).

    `deadline` is a time.monotonic() value; `attempts` bounds the replicas tried,
    and calls the transport cancelled are retried up to `MAX_REFUSED_RETRIES` more
    times. Raises `StepFailed`; a call the caller cancels raises CancelledError.
    """
    tried: set[str] = set()
    last: StepFailed | None = None
    pause = Backoff(base_s=REFUSED_PAUSE_S, cap_s=REFUSED_PAUSE_CAP_S)
    delay = 0.0
    calls = refused = 0
    while calls < attempts:
        calls += 1
        if delay:
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = 0.0
        try:
            endpoint = pool.pick(request.agent, exclude=tried)
        except NoReplica as exc:
            if last is not None:
                raise last from exc
            raise StepFailed(grpc.StatusCode.UNAVAILABLE, str(exc)) from exc
        started = False
        holding = False
        call = None
        pool.stream_started(endpoint)
        try:
            await endpoint.pending.acquire()
            holding = True
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                raise StepFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "the run's deadline passed")
            call = endpoint.stub.Invoke(request, timeout=timeout)
            async for event in call:
                if not started:
                    started = True
                    holding = False
                    endpoint.pending.release()
                yield StepEvent(endpoint, event)
            return
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our own cancellation: the caller left, or a sibling step failed
            # grpc cancelled the call underneath us: its channel was closed.
            failure = StepFailed(
                grpc.StatusCode.UNAVAILABLE,
                f"agent {request.agent!r} on {endpoint.replica_id}: the connection was closed",
            )
            if started:
                raise failure from None
            tried.add(endpoint.replica_id)
            last = failure
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if not started and code == grpc.StatusCode.CANCELLED and _replica_fault(error):
                # Not ours (our own cancel raises CancelledError) and not the agent's (it
                # never sends CANCELLED): the server's gRPC dropped the call before the
                # agent saw it, as it does when its backlog of new calls is full. A full
                # queue is not an outage: no ejection; a short pause, then any replica.
                last = StepFailed(
                    grpc.StatusCode.UNAVAILABLE,
                    f"agent {request.agent!r} on {endpoint.replica_id}: the call was cancelled by the "
                    "transport before the agent took it (the server is overloaded)",
                )
                refused += 1
                if refused <= MAX_REFUSED_RETRIES:
                    calls -= 1  # does not use up an attempt
                    delay = pause.next_delay()
                continue
            detail = error.details() or code.name
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _kind(error) is None:
                # gRPC's own refusal of a message over a limit on this hop, not the agent's.
                detail += (
                    " (a message between the orchestrator and its agents exceeded a limit: give both "
                    "the same MESHSCOPE_GRPC_MAX_MESSAGE_BYTES)"
                )
            failure = StepFailed(code, f"agent {request.agent!r} on {endpoint.replica_id}: {detail}")
            if not started and code == grpc.StatusCode.RESOURCE_EXHAUSTED and _kind(error) in BUSY_KINDS:
                tried.add(endpoint.replica_id)  # busy: try another replica, eject nobody
                last = failure
                continue
            if started or code not in RETRYABLE_BEFORE_FIRST_EVENT or not _replica_fault(error):
                raise failure from error
            tried.add(endpoint.replica_id)
            pool.eject(endpoint)
            last = failure
        finally:
            if holding:
                endpoint.pending.release()
            pool.stream_ended(endpoint)
            if call is not None:
                call.cancel()
    assert last is not None
    raise last
