"""The bridge's A2A agent executor: one A2A task is one orchestrator run.

`MeshExecutor.execute` is called by a2a-sdk's request handler for each message sent to a task;
it runs the target over the orchestrator's `Run` stream and turns the run's events into the
task's events, through the SDK's `TaskUpdater`:

  run_start           the Task itself, WORKING, with the input in its history, the target in its
                      metadata (`meshscope.target`) and the run's id and kind: before any other
                      event, so every later one has a task to apply to (a follow-up to an existing
                      task gets a WORKING status update instead; a run that fails before it starts
                      gets the Task SUBMITTED, then FAILED)
  text/thinking delta an artifact update, one artifact per step and reply (`<step>/<reply id>`,
                      thinking in `<step>/<reply id>/thinking`): the first chunk creates it, the
                      rest append; metadata names the step, the agent and the replica. Deltas
                      that come faster than MESHSCOPE_BRIDGE_FLUSH_MS are sent as one chunk
                      (`_RunRelay`)
  reply_end           the reply's parts that did not stream as text (tool calls and results, data,
                      urls) appended to the step's artifact, so the artifact holds the whole reply
  run_end             status COMPLETED with the run's final message (metadata: steps, replicas,
                      duration, usage)
  error, or a status  status FAILED with the reason (metadata: gRPC code name, declared reason,
                      whether a retry may succeed, whether any agent event had streamed: a
                      failure before that was already retried on the other replicas)

Sessions: the A2A context id is the run's session id, so the follow-ups of one context are one
conversation; the A2A user (the API key's name) is the run's user id.

Cancellation: the SDK cancels the asyncio task running `execute` (CancelTask, or a cancel
recorded by another bridge replica), which cancels the gRPC call, which the orchestrator passes
on to the agent and its model call; `cancel` then records the CANCELED status.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types import a2a_pb2
from google.protobuf import timestamp_pb2

from meshscope.codec import StreamContext, usage_fields
from meshscope.orchestrator.bridge.parts import PartError, to_a2a_message, to_a2a_part, to_mesh_message
from meshscope.orchestrator.bridge.recovery import BRIDGE_KEY
from meshscope.orchestrator.client import OrchestratorClient
from meshscope.v1 import common_pb2, orchestrator_pb2
from meshscope.wire import declared_reason

__all__ = ["TARGET_KEY", "TARGET_STATE", "MeshExecutor"]

log = logging.getLogger(__name__)

TARGET_STATE = "meshscope.target"
"""Where the route puts the target (agent or pipeline) in the call context's state."""
TARGET_KEY = "meshscope.target"
"""The task metadata key recording the target a task runs (its follow-ups run the same one)."""

_STREAMED = frozenset({"text", "thinking"})


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return stamp


def _agent_text(text: str, task_id: str, context_id: str) -> a2a_pb2.Message:
    return a2a_pb2.Message(
        message_id=str(uuid.uuid4()),
        task_id=task_id,
        context_id=context_id,
        role=a2a_pb2.ROLE_AGENT,
        parts=[a2a_pb2.Part(text=text)],
    )


@dataclass
class _Artifact:
    """One artifact of the task: a step's reply (or its thinking), chunk by chunk."""

    artifact_id: str
    name: str
    metadata: dict[str, Any]
    started: bool = False
    pending: list[str] = field(default_factory=list)
    """Text deltas received and not yet sent (see `_RunRelay`)."""
    flushed_at: float = 0.0


class _RunRelay:
    """Turns one run's events into one task's events (see the module docstring).

    Text deltas are coalesced per artifact when `flush_s` > 0: an artifact's first delta is sent
    at once (the time to the first text is what a reader feels), later ones join a pending chunk
    that is sent when a delta arrives `flush_s` or more after the artifact's last chunk, and
    whenever anything other than a text delta happens in the run (a block or reply ends, a tool
    is called, the run ends or fails), so the order of a step's content is kept and nothing
    waits past the end of its reply. Every artifact update is a task write in the store and an
    SSE event for each subscriber (~2.6 ms of the bridge's CPU each, docs/benchmarks.md), which a
    model streaming faster than a reader reads need not cost. `flush_s` = 0 sends each delta.
    """

    def __init__(
        self,
        updater: TaskUpdater,
        flush_s: float,
        queue: EventQueue,
        created: a2a_pb2.Task | None,
        instance: str = "",
    ) -> None:
        self._updater = updater
        self._instance = instance
        self._flush_s = flush_s
        self._queue = queue
        self._created = created
        self._streams: dict[str, StreamContext] = {}
        """Each step's stream context (the lean wire leaves repeats unsaid, per step)."""
        self._artifacts: dict[str, _Artifact] = {}
        self.finished = False
        self.streamed = False
        """Whether any agent event of the run arrived (a failure after it cannot have been retried
        on another replica by the orchestrator: the caller may hold part of a reply)."""
        self.stopping = False
        """Set by `MeshExecutor.stop_all` before it cancels the run."""

    async def on(self, event: orchestrator_pb2.RunEvent) -> None:
        kind = event.WhichOneof("kind")
        if kind == "agent_event":
            await self._agent_event(event)
            return
        await self.flush()
        if kind == "run_start":
            start = event.run_start
            run = {"meshscope.run_id": event.run_id, "meshscope.kind": start.kind, BRIDGE_KEY: self._instance}
            if self._created is not None:  # a new task: it is created WORKING, one event fewer
                self._created.status.state = a2a_pb2.TASK_STATE_WORKING
                self._created.metadata.update(run)
                await self.begin()
            else:
                await self._updater.update_status(a2a_pb2.TASK_STATE_WORKING, metadata=run)
        elif kind == "run_end":
            end = event.run_end
            message = to_a2a_message(
                end.output, task_id=self._updater.task_id, context_id=self._updater.context_id
            )
            self.finished = True
            await self._updater.update_status(
                a2a_pb2.TASK_STATE_COMPLETED,
                message=message,
                metadata={
                    "meshscope.run_id": event.run_id,
                    "meshscope.steps": end.steps,
                    "meshscope.replicas": list(end.replicas),
                    "meshscope.duration_ms": end.duration_ms,
                    "meshscope.usage": usage_fields(end.usage),
                },
            )
        elif kind == "error":
            error = event.error
            await self.fail(error.code, error.message, error.retryable, error.reason)

    async def begin(self) -> None:
        """Enqueue the new task, once, before its first update: every later event applies to it.

        It waits for the run's start so that it is created WORKING (with the run's id and kind)
        rather than SUBMITTED and then updated: each task event is a write to the task store.
        A run that fails before it starts gets the task SUBMITTED, then FAILED.
        """
        if self._created is not None:
            created, self._created = self._created, None
            await self._queue.enqueue_event(created)

    async def fail(self, code: str, message: str, retryable: bool, reason: int) -> None:
        if self.finished:
            return
        await self.begin()
        await self.flush()
        self.finished = True
        reason_name = common_pb2.ErrorReason.Name(reason) if reason else ""
        await self._updater.update_status(
            a2a_pb2.TASK_STATE_FAILED,
            message=_agent_text(f"{code}: {message}", self._updater.task_id, self._updater.context_id),
            metadata={
                "meshscope.code": code,
                "meshscope.reason": reason_name,
                "meshscope.retryable": retryable,
                "meshscope.streamed": self.streamed,
            },
        )

    async def flush(self) -> None:
        """Send every pending chunk (in the order their artifacts first got one)."""
        for artifact in self._artifacts.values():
            if artifact.pending:
                await self._send_pending(artifact)

    async def _agent_event(self, event: orchestrator_pb2.RunEvent) -> None:
        self.streamed = True
        stream = self._streams.get(event.step)
        if stream is None:
            stream = self._streams[event.step] = StreamContext()
        agent_event = event.agent_event
        kind = stream.follow(agent_event)
        if kind == "text_delta":
            await self._delta(self._artifact(stream, event, ""), agent_event.text_delta.delta)
            return
        if kind == "thinking_delta":
            await self._delta(self._artifact(stream, event, "/thinking"), agent_event.thinking_delta.delta)
            return
        await self.flush()
        if kind == "reply_end":
            rest = [
                to_a2a_part(p)
                for p in agent_event.reply_end.message.parts
                if p.WhichOneof("kind") not in _STREAMED
            ]
            if rest:
                await self._send(self._artifact(stream, event, ""), rest)

    def _artifact(self, stream: StreamContext, event: orchestrator_pb2.RunEvent, suffix: str) -> _Artifact:
        key = f"{event.step}/{stream.reply_id}{suffix}"
        artifact = self._artifacts.get(key)
        if artifact is None:
            artifact = self._artifacts[key] = _Artifact(
                key,
                event.step,
                {
                    "meshscope.step": event.step,
                    "meshscope.agent": stream.agent or event.agent,
                    "meshscope.replica": event.replica,
                    "meshscope.kind": "thinking" if suffix else "text",
                },
            )
        return artifact

    async def _delta(self, artifact: _Artifact, text: str) -> None:
        artifact.pending.append(text)
        if not artifact.started or time.monotonic() - artifact.flushed_at >= self._flush_s:
            await self._send_pending(artifact)

    async def _send_pending(self, artifact: _Artifact) -> None:
        if artifact.pending:
            text = "".join(artifact.pending)
            artifact.pending.clear()
            await self._send(artifact, [a2a_pb2.Part(text=text)])

    async def _send(self, artifact: _Artifact, parts: list[a2a_pb2.Part]) -> None:
        await self.begin()  # no-op: a run streams only after it starts
        append = artifact.started
        artifact.started = True
        artifact.flushed_at = time.monotonic()
        await self._updater.add_artifact(
            parts,
            artifact_id=artifact.artifact_id,
            name=artifact.name,
            metadata=None if append else artifact.metadata,
            append=append,
        )


class MeshExecutor(AgentExecutor):
    """Runs A2A tasks as orchestrator runs (see the module docstring)."""

    def __init__(self, orchestrator: OrchestratorClient, *, flush_s: float = 0.0, instance: str = "") -> None:
        """`flush_s`: how long text deltas may be coalesced per artifact (see `_RunRelay`); `instance`:
        this bridge process, recorded in each task it runs (`meshscope.bridge`, see `recovery`)."""
        self._orchestrator = orchestrator
        self._flush_s = flush_s
        self._instance = instance
        self._running: dict[asyncio.Task[Any], _RunRelay] = {}

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task_id = context.task_id or ""
        context_id = context.context_id or ""
        updater = TaskUpdater(event_queue, task_id, context_id)
        target = str(context.call_context.state.get(TARGET_STATE, ""))
        task = context.current_task
        created: a2a_pb2.Task | None = None
        if task is None:
            # Enqueued by the relay before any status or artifact update (see `_RunRelay.begin`).
            created = a2a_pb2.Task(
                id=task_id,
                context_id=context_id,
                status=a2a_pb2.TaskStatus(state=a2a_pb2.TASK_STATE_SUBMITTED, timestamp=_now()),
            )
            if context.message is not None:
                created.history.append(context.message)
            created.metadata[TARGET_KEY] = target
            created.metadata[BRIDGE_KEY] = self._instance
        elif TARGET_KEY in task.metadata.fields:
            target = task.metadata.fields[TARGET_KEY].string_value
        relay = _RunRelay(updater, self._flush_s, event_queue, created, self._instance)
        if context.message is None:
            await relay.fail(
                "INVALID_ARGUMENT", "no message to run", False, common_pb2.ERROR_REASON_INVALID_INPUT
            )
            return
        try:
            message = to_mesh_message(context.message)
        except PartError as exc:
            await relay.begin()
            await updater.update_status(
                a2a_pb2.TASK_STATE_REJECTED, message=_agent_text(str(exc), task_id, context_id)
            )
            return
        user = context.call_context.user.user_name if context.call_context.user.is_authenticated else ""
        request_metadata = context.message.metadata if context.message.HasField("metadata") else None
        this = asyncio.current_task()
        assert this is not None
        self._running[this] = relay
        try:
            # A run the orchestrator refuses before it begins is retried by the bridge's client's
            # gRPC retry policy (`OrchestratorClient(retry_refused=True)`, bridge/entry.py).
            async for event in self._orchestrator.run(
                target, message, session_id=context_id, user_id=user, metadata=request_metadata
            ):
                await relay.on(event)
        except asyncio.CancelledError:
            if not relay.stopping:
                raise  # a2a-sdk's cancel (CancelTask): it records CANCELED through `cancel`
            # Our own stop (`stop_all`): the run is cancelled; say so in the task, then end.
            this.uncancel()
            await relay.fail(
                "UNAVAILABLE", "the bridge stopped while the run was in progress; send it again", True,
                common_pb2.ERROR_REASON_DRAINING,
            )  # fmt: skip
            return
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            await relay.fail(
                code.name,
                exc.details() or code.name,
                code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED),
                declared_reason(exc.trailing_metadata()) or 0,
            )
            return
        finally:
            self._running.pop(this, None)
        if not relay.finished:
            await relay.fail("UNAVAILABLE", "the run's stream ended without a result", True, 0)

    @property
    def running(self) -> int:
        """Runs this process is executing now."""
        return len(self._running)

    async def stop_all(self, timeout_s: float) -> None:
        """Stop every run still executing here: its gRPC call is cancelled (and with it the agent's
        turn) and its task ends FAILED, retryable, with reason DRAINING, written to the store and
        sent to its subscribers; waits at most `timeout_s` for them to be recorded."""
        running = list(self._running.items())
        for task, relay in running:
            relay.stopping = True
            task.cancel()
        if running:
            await asyncio.wait([task for task, _ in running], timeout=timeout_s)

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait at most `timeout_s` for the runs executing here to end; whether they all did."""
        running = list(self._running)
        if running:
            await asyncio.wait(running, timeout=timeout_s)
        return not self._running

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Record CANCELED; the SDK has already cancelled `execute`, and with it the run's gRPC call."""
        updater = TaskUpdater(event_queue, context.task_id or "", context.context_id or "")
        await updater.cancel()
