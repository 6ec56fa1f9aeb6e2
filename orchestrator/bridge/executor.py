"""The bridge's A2A agent executor: one A2A task is one orchestrator run.

`MeshExecutor.execute` is called by a2a-sdk's request handler for each message sent to a task;
it runs the target over the orchestrator's `Run` stream and turns the run's events into the
task's events, through the SDK's `TaskUpdater`:

  (before anything)   the Task itself, SUBMITTED, with the input in its history and the target in
                      its metadata (`meshscope.target`), so every later event has a task to apply to
  run_start           status WORKING (metadata: run id, pipeline kind)
  text/thinking delta an artifact update, one artifact per step and reply (`<step>/<reply id>`,
                      thinking in `<step>/<reply id>/thinking`): the first chunk creates it, the
                      rest append; metadata names the step, the agent and the replica
  reply_end           the reply's parts that did not stream as text (tool calls and results, data,
                      urls) appended to the step's artifact, so the artifact holds the whole reply
  run_end             status COMPLETED with the run's final message (metadata: steps, replicas,
                      duration, usage)
  error, or a status  status FAILED with the reason (metadata: gRPC code name, declared reason,
                      whether a retry may succeed)

Sessions: the A2A context id is the run's session id, so the follow-ups of one context are one
conversation; the A2A user (the API key's name) is the run's user id.

Cancellation: the SDK cancels the asyncio task running `execute` (CancelTask, or a cancel
recorded by another bridge replica), which cancels the gRPC call, which the orchestrator passes
on to the agent and its model call; `cancel` then records the CANCELED status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types import a2a_pb2
from google.protobuf import json_format, timestamp_pb2

from meshscope.codec import StreamContext, usage_fields
from meshscope.orchestrator.bridge.parts import PartError, to_a2a_message, to_a2a_part, to_mesh_message
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
    import uuid

    return a2a_pb2.Message(
        message_id=str(uuid.uuid4()),
        task_id=task_id,
        context_id=context_id,
        role=a2a_pb2.ROLE_AGENT,
        parts=[a2a_pb2.Part(text=text)],
    )


@dataclass
class _Artifact:
    artifact_id: str
    started: bool = False


@dataclass
class _Step:
    """What one step's stream has said so far (the lean wire leaves repeats unsaid)."""

    stream: StreamContext = field(default_factory=StreamContext)
    artifacts: dict[str, _Artifact] = field(default_factory=dict)


class _RunRelay:
    """Turns one run's events into one task's events (see the module docstring)."""

    def __init__(self, updater: TaskUpdater) -> None:
        self._updater = updater
        self._steps: dict[str, _Step] = {}
        self.finished = False

    async def on(self, event: orchestrator_pb2.RunEvent) -> None:
        kind = event.WhichOneof("kind")
        if kind == "agent_event":
            await self._agent_event(event)
        elif kind == "run_start":
            start = event.run_start
            await self._updater.update_status(
                a2a_pb2.TASK_STATE_WORKING,
                metadata={"meshscope.run_id": event.run_id, "meshscope.kind": start.kind},
            )
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

    async def fail(self, code: str, message: str, retryable: bool, reason: int) -> None:
        if self.finished:
            return
        self.finished = True
        reason_name = common_pb2.ErrorReason.Name(reason) if reason else ""
        await self._updater.update_status(
            a2a_pb2.TASK_STATE_FAILED,
            message=_agent_text(f"{code}: {message}", self._updater.task_id, self._updater.context_id),
            metadata={
                "meshscope.code": code,
                "meshscope.reason": reason_name,
                "meshscope.retryable": retryable,
            },
        )

    async def _agent_event(self, event: orchestrator_pb2.RunEvent) -> None:
        step = self._steps.get(event.step)
        if step is None:
            step = self._steps[event.step] = _Step()
        agent_event = event.agent_event
        kind = step.stream.follow(agent_event)
        if kind == "text_delta":
            await self._chunk(step, event, "", a2a_pb2.Part(text=agent_event.text_delta.delta))
        elif kind == "thinking_delta":
            await self._chunk(step, event, "/thinking", a2a_pb2.Part(text=agent_event.thinking_delta.delta))
        elif kind == "reply_end":
            rest = [
                to_a2a_part(p)
                for p in agent_event.reply_end.message.parts
                if p.WhichOneof("kind") not in _STREAMED
            ]
            if rest:
                await self._chunk(step, event, "", *rest)

    async def _chunk(
        self, step: _Step, event: orchestrator_pb2.RunEvent, suffix: str, *parts: a2a_pb2.Part
    ) -> None:
        key = f"{event.step}/{step.stream.reply_id}{suffix}"
        artifact = step.artifacts.get(key)
        if artifact is None:
            artifact = step.artifacts[key] = _Artifact(key)
        append = artifact.started
        artifact.started = True
        await self._updater.add_artifact(
            list(parts),
            artifact_id=artifact.artifact_id,
            name=event.step,
            metadata=None
            if append
            else {
                "meshscope.step": event.step,
                "meshscope.agent": step.stream.agent or event.agent,
                "meshscope.replica": event.replica,
                "meshscope.kind": "thinking" if suffix else "text",
            },
            append=append,
        )


class MeshExecutor(AgentExecutor):
    """Runs A2A tasks as orchestrator runs (see the module docstring)."""

    def __init__(self, orchestrator: OrchestratorClient) -> None:
        self._orchestrator = orchestrator

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task_id = context.task_id or ""
        context_id = context.context_id or ""
        updater = TaskUpdater(event_queue, task_id, context_id)
        target = str(context.call_context.state.get(TARGET_STATE, ""))
        task = context.current_task
        if task is None:
            # The Task first: every status and artifact update after it applies to it.
            created = a2a_pb2.Task(
                id=task_id,
                context_id=context_id,
                status=a2a_pb2.TaskStatus(state=a2a_pb2.TASK_STATE_SUBMITTED, timestamp=_now()),
            )
            if context.message is not None:
                created.history.append(context.message)
            created.metadata[TARGET_KEY] = target
            await event_queue.enqueue_event(created)
        elif TARGET_KEY in task.metadata.fields:
            target = task.metadata.fields[TARGET_KEY].string_value
        relay = _RunRelay(updater)
        if context.message is None:
            await relay.fail(
                "INVALID_ARGUMENT", "no message to run", False, common_pb2.ERROR_REASON_INVALID_INPUT
            )
            return
        try:
            message = to_mesh_message(context.message)
        except PartError as exc:
            await updater.update_status(
                a2a_pb2.TASK_STATE_REJECTED, message=_agent_text(str(exc), task_id, context_id)
            )
            return
        user = context.call_context.user.user_name if context.call_context.user.is_authenticated else ""
        request_metadata = (
            json_format.MessageToDict(context.message.metadata)
            if context.message.HasField("metadata")
            else None
        )
        try:
            async for event in self._orchestrator.run(
                target, message, session_id=context_id, user_id=user, metadata=request_metadata
            ):
                await relay.on(event)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            await relay.fail(
                code.name,
                exc.details() or code.name,
                code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED),
                declared_reason(exc.trailing_metadata()) or 0,
            )
            return
        if not relay.finished:
            await relay.fail("UNAVAILABLE", "the run's stream ended without a result", True, 0)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Record CANCELED; the SDK has already cancelled `execute`, and with it the run's gRPC call."""
        updater = TaskUpdater(event_queue, context.task_id or "", context.context_id or "")
        await updater.cancel()
