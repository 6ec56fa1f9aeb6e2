"""Calling one agent step: pick a replica, stream, retry only before the first event.

What a failure before the first event does is decided on the reason the agent declared
with its status (`ErrorReason`, trailing metadata `meshscope-error-reason`), by one
table, `DECISIONS`; never on the message or an exception's class name. A replica that
is going away (DRAINING, CUT_OFF) is ejected and the step retried on another, a
bounded number of times; a busy one (STORE_BUSY: its own session-store connections all
stayed in use) is passed over without ejecting anyone; any other reason fails the step
with the agent's status, since another replica would not do better (a shared store's
outage, bad input, a model failure). A status with no reason is gRPC's own, decided by
its code (`TRANSPORT_DECISIONS`): UNAVAILABLE (unreachable, reset) ejects and retries
elsewhere; CANCELLED before any event, by someone other than the caller (the agent
server's gRPC drops new calls when its backlog is full), is retried after a short
jittered pause without ejecting anyone: the replica is busy, not broken. After the first
event a failure is never replayed (model calls are not idempotent): it surfaces as
`StepFailed`, with the reason the orchestrator then declares.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError

from meshscope.discovery.backoff import Backoff
from meshscope.orchestrator.failures import Failed, Reason
from meshscope.orchestrator.pool import Endpoint, EndpointPool, NoReplica
from meshscope.v1 import agent_pb2, common_pb2, relay_pb2
from meshscope.wire import declared_reason

REFUSED_PAUSE_S, REFUSED_PAUSE_CAP_S = 0.05, 1.0
"""Pause before retrying a call the transport cancelled: jittered, doubling, in seconds."""
MAX_REFUSED_RETRIES = 8
"""Retries of calls the transport cancelled, on top of `attempts`: with the pauses above,
up to ~4.5 s for a server's backlog of new calls to drain (it takes ~2 s for 1,500)."""

AGENT_UNAVAILABLE = common_pb2.ERROR_REASON_AGENT_UNAVAILABLE


class Decision(enum.Enum):
    """What `stream_step` does with a call that failed before its first event."""

    FAIL = "fail"
    """The failure is the step's: another replica would not do better (a shared store is
    down, the input is bad, the model failed...). The step fails with the agent's status."""
    RETRY_ELSEWHERE = "retry elsewhere"
    """The replica is busy, not broken: try another replica; nobody is ejected."""
    EJECT_AND_RETRY = "eject and retry elsewhere"
    """The replica is going away or unreachable: eject it from the pool, try another."""
    PAUSE_AND_RETRY = "pause and retry"
    """The transport dropped the call before the agent took it (a full backlog): after a
    short jittered pause, any replica (this one too); nobody is ejected, no attempt used."""


DECISIONS: Mapping[Reason, Decision] = {
    common_pb2.ERROR_REASON_UNSPECIFIED: Decision.FAIL,  # declared, but not one this side knows
    common_pb2.ERROR_REASON_DRAINING: Decision.EJECT_AND_RETRY,
    common_pb2.ERROR_REASON_CUT_OFF: Decision.EJECT_AND_RETRY,
    common_pb2.ERROR_REASON_STORE_UNAVAILABLE: Decision.FAIL,  # the store is shared: so is the outage
    common_pb2.ERROR_REASON_STORE_BUSY: Decision.RETRY_ELSEWHERE,  # another replica has its own pool
    common_pb2.ERROR_REASON_SESSION_BUSY: Decision.FAIL,  # the lock is in the shared store
    common_pb2.ERROR_REASON_MODEL_FAILURE: Decision.FAIL,  # every replica calls the same provider
    common_pb2.ERROR_REASON_TOO_LARGE: Decision.FAIL,
    common_pb2.ERROR_REASON_INVALID_INPUT: Decision.FAIL,
    common_pb2.ERROR_REASON_NOT_FOUND: Decision.FAIL,
    common_pb2.ERROR_REASON_CORRUPT_STATE: Decision.FAIL,
    common_pb2.ERROR_REASON_AGENT_UNAVAILABLE: Decision.FAIL,
    common_pb2.ERROR_REASON_DEADLINE: Decision.FAIL,
    common_pb2.ERROR_REASON_ROUTING_FAILED: Decision.FAIL,
    common_pb2.ERROR_REASON_INTERNAL: Decision.FAIL,
    common_pb2.ERROR_REASON_UNAUTHENTICATED: Decision.FAIL,  # every replica checks the same mesh token
    common_pb2.ERROR_REASON_CONTEXT_OVERFLOW: Decision.FAIL,  # every replica has the same window
}
"""What to do with a call an agent failed before its first event, by the reason it declared
(every `ErrorReason` has its row; a reason unknown to this side is FAIL). After the first
event the decision is always FAIL: a step is never replayed. A step that fails on the
agent's status relays it with the agent's reason; one that ran out of replicas to retry on
fails with the last one's status, declared AGENT_UNAVAILABLE (or STORE_BUSY: all were busy)."""

TRANSPORT_DECISIONS: Mapping[grpc.StatusCode, Decision] = {
    grpc.StatusCode.UNAVAILABLE: Decision.EJECT_AND_RETRY,  # refused, reset, unreachable
    grpc.StatusCode.CANCELLED: Decision.PAUSE_AND_RETRY,  # the server's backlog was full
}
"""What to do with a status that declares no reason (gRPC's own, not the agent's), by code;
any other such status is FAIL."""

TRANSPORT_REASONS: Mapping[grpc.StatusCode, Reason] = {
    grpc.StatusCode.UNAVAILABLE: common_pb2.ERROR_REASON_AGENT_UNAVAILABLE,
    grpc.StatusCode.CANCELLED: common_pb2.ERROR_REASON_AGENT_UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: common_pb2.ERROR_REASON_TOO_LARGE,  # a message over a limit
    grpc.StatusCode.DEADLINE_EXCEEDED: common_pb2.ERROR_REASON_DEADLINE,  # the run's deadline, as sent
}
"""The reason the orchestrator declares for a step that failed with a status the agent gave no
reason for (gRPC's own); any other such status is INTERNAL (a peer broke the protocol)."""


_parse_head = relay_pb2.AgentEventHead.FromString


def head(raw: bytes) -> relay_pb2.AgentEventHead:
    """The fields of the encoded AgentEvent `raw` the orchestrator reads (its other fields are
    skipped). Raises `StepFailed` (INTERNAL) when `raw` is not an AgentEvent, as decoding the
    whole event would have (gRPC's deserializer failing is INTERNAL too)."""
    try:
        return _parse_head(raw)
    except DecodeError as exc:
        raise StepFailed(
            grpc.StatusCode.INTERNAL,
            f"an agent sent an event that does not decode: {exc}",
            common_pb2.ERROR_REASON_INTERNAL,
        ) from exc


def decide(code: grpc.StatusCode, reason: Reason | None, *, started: bool) -> Decision:
    """What to do with a call that failed with `code` and declared `reason` (None: no reason)."""
    if started:
        return Decision.FAIL
    if reason is None:
        return TRANSPORT_DECISIONS.get(code, Decision.FAIL)
    return DECISIONS.get(reason, Decision.FAIL)


def relayed_reason(code: grpc.StatusCode, reason: Reason | None) -> Reason:
    """The reason the orchestrator declares when it passes on an agent's status: the agent's
    own, or for a status gRPC gave (no reason) the one `TRANSPORT_REASONS` names."""
    if reason is not None:
        return reason
    return TRANSPORT_REASONS.get(code, common_pb2.ERROR_REASON_INTERNAL)


def reason_of(error: grpc.aio.AioRpcError) -> Reason | None:
    """The reason the service declared with this status; None when gRPC itself failed the call."""
    return declared_reason(error.trailing_metadata())


def replica_fault(error: grpc.aio.AioRpcError) -> bool:
    """Whether this failure is the replica's own (unreachable, dropped the call, draining), so
    another replica may answer, rather than an answer (a shared store's outage, bad input...)."""
    return decide(error.code(), reason_of(error), started=False) in (
        Decision.EJECT_AND_RETRY,
        Decision.PAUSE_AND_RETRY,
    )


class StepFailed(Failed):
    """A step failed with a gRPC status and a declared reason (relayed from the agent, or the
    orchestrator's own)."""


@dataclass(frozen=True, slots=True)
class StepEvent:
    """One event of a step, with the replica that produced it: the bytes the agent sent (an
    encoded `AgentEvent`, relayed as they are) and the few fields the orchestrator reads."""

    endpoint: Endpoint
    raw: bytes
    head: relay_pb2.AgentEventHead


async def stream_step(
    pool: EndpointPool,
    request: agent_pb2.InvokeRequest,
    *,
    deadline: float,
    attempts: int,
) -> AsyncGenerator[StepEvent, None]:
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
            raise StepFailed(grpc.StatusCode.UNAVAILABLE, str(exc), AGENT_UNAVAILABLE) from exc
        started = False
        holding = False
        call = None
        pool.stream_started(endpoint)
        try:
            await endpoint.pending.acquire()
            holding = True
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                raise StepFailed(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    "the run's deadline passed",
                    common_pb2.ERROR_REASON_DEADLINE,
                )
            call = endpoint.relay(request, timeout=timeout)
            async for raw in call:
                if not started:
                    started = True
                    holding = False
                    endpoint.pending.release()
                yield StepEvent(endpoint, raw, head(raw))
            return
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our own cancellation: the caller left, or a sibling step failed
            # grpc cancelled the call underneath us: its channel was closed.
            failure = StepFailed(
                grpc.StatusCode.UNAVAILABLE,
                f"agent {request.agent!r} on {endpoint.replica_id}: the connection was closed",
                AGENT_UNAVAILABLE,
            )
            if started:
                raise failure from None
            tried.add(endpoint.replica_id)
            last = failure
        except grpc.aio.AioRpcError as error:
            code = error.code()
            reason = reason_of(error)
            decision = decide(code, reason, started=started)
            if decision is Decision.PAUSE_AND_RETRY:
                # Not ours (our own cancel raises CancelledError) and not the agent's (it
                # never sends CANCELLED): the server's gRPC dropped the call before the
                # agent saw it, as it does when its backlog of new calls is full. A full
                # queue is not an outage: no ejection; a short pause, then any replica.
                last = StepFailed(
                    grpc.StatusCode.UNAVAILABLE,
                    f"agent {request.agent!r} on {endpoint.replica_id}: the call was cancelled by the "
                    "transport before the agent took it (the server is overloaded)",
                    AGENT_UNAVAILABLE,
                )
                refused += 1
                if refused <= MAX_REFUSED_RETRIES:
                    calls -= 1  # does not use up an attempt
                    delay = pause.next_delay()
                continue
            detail = error.details() or code.name
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED and reason is None:
                # gRPC's own refusal of a message over a limit on this hop, not the agent's.
                detail += (
                    " (a message between the orchestrator and its agents exceeded a limit: give both "
                    "the same MESHSCOPE_GRPC_MAX_MESSAGE_BYTES)"
                )
            failure = StepFailed(
                code,
                f"agent {request.agent!r} on {endpoint.replica_id}: {detail}",
                relayed_reason(code, reason),
            )
            if decision is Decision.FAIL:
                raise failure from error
            tried.add(endpoint.replica_id)
            if decision is Decision.EJECT_AND_RETRY:
                pool.eject(endpoint)
                # Should every replica go this way, the step failed for want of a replica
                # (this orchestrator is not draining, its agents are): say so.
                failure.reason = AGENT_UNAVAILABLE
            last = failure
        finally:
            if holding:
                endpoint.pending.release()
            pool.stream_ended(endpoint)
            if call is not None:
                call.cancel()
    assert last is not None
    raise last
