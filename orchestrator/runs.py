"""Running a target (an agent or a pipeline) and streaming every step's events.

Steps push their events into one queue as they happen, so the streams of
parallel workers interleave on the way to the caller, each labelled with
its step, agent and replica. Each agent keeps its own state within the run's
session (agents key state by user, session and agent), so a conversation
with a pipeline continues per agent, and the session's history is one
cross-agent transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

import grpc

from meshscope.codec import add_usage, as_input
from meshscope.orchestrator.calls import StepFailed, stream_step
from meshscope.orchestrator.failures import Failed, Reason
from meshscope.orchestrator.pipelines import MeshFile, Pipeline
from meshscope.orchestrator.pool import EndpointPool
from meshscope.v1 import agent_pb2, common_pb2, orchestrator_pb2
from meshscope.wire import DEFAULT_MAX_MESSAGE_BYTES, text_of, user_message

log = logging.getLogger("meshscope.orchestrator")
_WORD = re.compile(r"[A-Za-z](?:[A-Za-z0-9_.\-]*[A-Za-z0-9])?")
"""A name in a router's reply: inner dots and dashes belong to it, a closing full stop does not."""
NUMBERING_BYTES = 64
"""Upper bound of what `Runner.stream` adds to every event: its sequence (a varint) and run id (32 hex)."""
QUEUE_DEPTH = 256
"""Events a run buffers for a slow caller before its steps wait (backpressure)."""
CUT_OFF = common_pb2.ERROR_REASON_CUT_OFF


class RunFailed(Failed):
    """The run failed; the stream already carries its `error` event (with the same code,
    message and reason)."""


@dataclass
class Run:
    """One run in progress."""

    request: orchestrator_pb2.RunRequest
    deadline: float
    """time.monotonic() by which the whole run must end."""
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    queue: asyncio.Queue[orchestrator_pb2.RunEvent | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_DEPTH)
    )
    steps: int = 0
    replicas: list[str] = field(default_factory=list)
    usage: common_pb2.Usage = field(default_factory=common_pb2.Usage)


class Runner:
    """Executes runs against the pool, following the mesh file's pipelines."""

    def __init__(
        self,
        pool: EndpointPool,
        mesh: MeshFile,
        *,
        attempts: int = 3,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.pool = pool
        self.mesh = mesh
        self.attempts = attempts
        self.max_message_bytes = max_message_bytes
        """The largest message this orchestrator may send (its server's and channels' limit): a step's
        input, a relayed event in its envelope and the run's end must fit, or the run fails with
        RESOURCE_EXHAUSTED saying which, rather than a bare transport status."""
        # The mesh never changes after start: resolve each pipeline's agents once, not per run.
        self._pipeline_agents = {name: self._resolve(name) for name in mesh.pipelines}
        self._producers: set[asyncio.Task[None]] = set()
        self._started: set[asyncio.Task[None]] = set()
        self._interrupted: str | None = None
        """Why runs are being cut off (set by `interrupt`)."""
        self._open = 0
        self.idle = asyncio.Event()
        """Set while no run is open."""
        self.idle.set()

    def _track(self, delta: int) -> None:
        self._open += delta
        if self._open:
            self.idle.clear()
        else:
            self.idle.set()

    def interrupt(self, message: str) -> int:
        """Fail every run still executing with UNAVAILABLE `message` (CUT_OFF); how many there were.

        For the end of a shutdown's grace period: gRPC would cancel the calls and
        their callers would see the stream stop with no reason given. Each run's
        steps are cancelled, and its stream ends with an error event and the status.
        """
        self._interrupted = message
        for producer in self._producers:
            # Only once started: a task cancelled before its first step never runs its
            # `finally`, and its run would wait for the end of its queue forever. One not
            # started yet sees `_interrupted` as it starts.
            if producer in self._started:
                producer.cancel()
        return len(self._producers)

    def kind_of(self, target: str) -> str:
        pipeline = self.mesh.pipelines.get(target)
        return pipeline.kind if pipeline else "agent"

    def agents_of(self, target: str) -> list[str]:
        """Every agent a target may call (nested pipelines included)."""
        return list(self._pipeline_agents.get(target, (target,)))

    def _resolve(self, pipeline_name: str) -> tuple[str, ...]:
        found: dict[str, None] = {}
        for name in self.mesh.pipelines[pipeline_name].referenced():
            found.update(dict.fromkeys(self._resolve(name) if name in self.mesh.pipelines else (name,)))
        return tuple(found)

    async def _step(self, run: Run, step: str, agent: str, message: common_pb2.Message) -> common_pb2.Message:
        session = run.request.session_id
        request = agent_pb2.InvokeRequest(
            agent=agent,
            input=message,
            # The agent keys state by (user, session, agent): each agent keeps its own
            # conversation in the session, and the session's transcript is shared.
            session_id=session,
            user_id=run.request.user_id,
        )
        if run.request.HasField("metadata"):
            request.metadata.CopyFrom(run.request.metadata)
        # Inputs grow with user data (a previous step's reply, a team's joined results).
        size = request.ByteSize()
        if size > self.max_message_bytes:
            raise StepFailed(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"step {step!r}: the input for agent {agent!r} is {size} bytes, over the "
                f"{self.max_message_bytes}-byte message limit",
                common_pb2.ERROR_REASON_TOO_LARGE,
            )
        run.steps += 1
        root: str | None = None
        final: common_pb2.Message | None = None
        async for item in stream_step(self.pool, request, deadline=run.deadline, attempts=self.attempts):
            event = item.event
            if root is None and event.HasField("reply_start"):
                root = event.reply_id
                if item.endpoint.replica_id not in run.replicas:
                    run.replicas.append(item.endpoint.replica_id)
            if event.HasField("reply_end") and event.reply_id == root:
                final = event.reply_end.message
                add_usage(run.usage, final.usage)
            relayed = orchestrator_pb2.RunEvent(
                step=step, agent=event.agent or agent, replica=item.endpoint.replica_id, agent_event=event
            )
            # The agent keeps each event within its own limit; the envelope added here may push
            # one past ours (~0.15 us a check).
            if relayed.ByteSize() + NUMBERING_BYTES > self.max_message_bytes:
                raise StepFailed(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"step {step!r}: agent {agent!r} sent an event of {event.ByteSize()} bytes, too large "
                    f"to relay within the {self.max_message_bytes}-byte message limit",
                    common_pb2.ERROR_REASON_TOO_LARGE,
                )
            await run.queue.put(relayed)
        if final is None:
            raise StepFailed(
                grpc.StatusCode.INTERNAL,
                f"agent {agent!r} ended without a reply",
                common_pb2.ERROR_REASON_INTERNAL,
            )
        return final

    async def _parallel(
        self, run: Run, calls: Sequence[tuple[str, str, common_pb2.Message]]
    ) -> list[common_pb2.Message]:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._step(run, step, agent, msg)) for step, agent, msg in calls]
        return [task.result() for task in tasks]

    async def execute(
        self, run: Run, target: str, message: common_pb2.Message, prefix: str = ""
    ) -> common_pb2.Message:
        """Run a target on a message; returns the final message."""
        pipeline = self.mesh.pipelines.get(target)
        if pipeline is None:
            return await self._step(run, f"{prefix}{target}", target, message)
        if pipeline.kind == "sequential":
            return await self._sequential(run, pipeline, message, prefix)
        if pipeline.kind == "team":
            return await self._team(run, pipeline, message, prefix)
        if pipeline.kind == "fanout":
            return await self._fanout(run, pipeline, message, prefix)
        return await self._route(run, pipeline, message, prefix)

    async def _sequential(
        self, run: Run, p: Pipeline, message: common_pb2.Message, prefix: str
    ) -> common_pb2.Message:
        current = message
        for index, step in enumerate(p.steps):
            nested = f"{prefix}{step}/" if step in self.mesh.pipelines else prefix
            reply = await self.execute(run, step, current, nested)
            current = reply if index == len(p.steps) - 1 else as_input(reply)
        return current

    async def _team(
        self, run: Run, p: Pipeline, message: common_pb2.Message, prefix: str
    ) -> common_pb2.Message:
        request_text = text_of(message)
        plan = await self._step(run, f"{prefix}plan", p.manager, message)
        brief = f"Task from {p.manager}: {text_of(plan)}\n\nOriginal request: {request_text}"
        results = await self._parallel(
            run, [(f"{prefix}worker:{w}", w, user_message(brief, p.manager)) for w in p.workers]
        )
        report = "\n\n".join(f"[{w}] {text_of(r)}" for w, r in zip(p.workers, results, strict=True))
        return await self._step(
            run, f"{prefix}synthesis", p.manager, user_message(f"Results from the team:\n\n{report}", "team")
        )

    async def _fanout(
        self, run: Run, p: Pipeline, message: common_pb2.Message, prefix: str
    ) -> common_pb2.Message:
        results = await self._parallel(run, [(f"{prefix}{a}", a, message) for a in p.agents])
        combined = "\n\n".join(f"[{a}] {text_of(r)}" for a, r in zip(p.agents, results, strict=True))
        if p.aggregator:
            return await self._step(
                run,
                f"{prefix}aggregate",
                p.aggregator,
                user_message(f"Summarise these answers:\n\n{combined}", p.name),
            )
        return common_pb2.Message(
            id=uuid.uuid4().hex,
            role=common_pb2.ROLE_ASSISTANT,
            name=p.name,
            parts=[common_pb2.Part(text=combined)],
        )

    async def _route(
        self, run: Run, p: Pipeline, message: common_pb2.Message, prefix: str
    ) -> common_pb2.Message:
        decision = await self._step(run, f"{prefix}route", p.router, message)
        choice = self.choice_in(text_of(decision), p)
        allowed = ", ".join(p.choices)
        if choice is None:
            raise StepFailed(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"router {p.router!r} named no agent; allowed: {allowed}",
                common_pb2.ERROR_REASON_ROUTING_FAILED,
            )
        if choice not in p.choices:
            raise StepFailed(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"router {p.router!r} chose {choice!r}, which is not among the allowed agents: {allowed}",
                common_pb2.ERROR_REASON_ROUTING_FAILED,
            )
        return await self._step(run, f"{prefix}{choice}", choice, message)

    def choice_in(self, text: str, p: Pipeline) -> str | None:
        """The agent the router's reply names: a declared choice when it names one,
        otherwise the first other mesh agent it names (reported as not allowed)."""
        words = [str(w).lower() for w in _WORD.findall(text)]
        # Compared case-blind, answered as declared: "Send it to coder" picks `Coder`.
        choices = {name.lower(): name for name in p.choices}
        for word in words:
            if word in choices:
                return choices[word]
        others = {name.lower(): name for name in {*self.mesh.agents, *self.pool.agents()} - {p.router}}
        return next((others[w] for w in words if w in others), None)

    async def stream(self, run: Run) -> AsyncGenerator[orchestrator_pb2.RunEvent, None]:
        """Run start, every step's events as they happen, run end; `RunFailed` on failure."""
        self._track(+1)  # open runs, for the shutdown's decision to cut runs off
        try:
            request = run.request
            started = time.monotonic()
            sequence = 0

            def numbered(event: orchestrator_pb2.RunEvent) -> orchestrator_pb2.RunEvent:
                nonlocal sequence
                sequence += 1
                event.sequence = sequence
                event.run_id = run.run_id
                return event

            yield numbered(
                orchestrator_pb2.RunEvent(
                    run_start=orchestrator_pb2.RunStart(
                        target=request.target,
                        kind=self.kind_of(request.target),
                        session_id=request.session_id,
                    )
                )
            )
            outcome: dict[str, common_pb2.Message] = {}

            async def produce() -> None:
                me = asyncio.current_task()
                try:
                    if me is not None:
                        self._started.add(me)
                    if self._interrupted is not None:  # opened just as the shutdown cut runs off
                        raise StepFailed(grpc.StatusCode.UNAVAILABLE, self._interrupted, CUT_OFF)
                    timeout = max(0.0, run.deadline - time.monotonic())
                    async with asyncio.timeout(timeout):
                        outcome["output"] = await self.execute(run, request.target, request.input)
                except asyncio.CancelledError:
                    if self._interrupted is None:
                        raise
                    # Reported on the stream like any failed step.
                    raise StepFailed(grpc.StatusCode.UNAVAILABLE, self._interrupted, CUT_OFF) from None
                finally:
                    if me is not None:
                        self._started.discard(me)
                    await run.queue.put(None)

            producer = asyncio.create_task(produce())
            self._producers.add(producer)
            producer.add_done_callback(self._producers.discard)
            try:
                while (event := await run.queue.get()) is not None:
                    yield numbered(event)
                await producer
                end = orchestrator_pb2.RunEvent(
                    run_end=orchestrator_pb2.RunEnd(
                        steps=run.steps,
                        replicas=run.replicas,
                        usage=run.usage,
                        duration_ms=(time.monotonic() - started) * 1000,
                        output=outcome["output"],
                    )
                )
                if end.ByteSize() + NUMBERING_BYTES > self.max_message_bytes:
                    # A fan-out's joined replies, or a last reply near the limit.
                    raise Failed(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"the run finished, but its output ({outcome['output'].ByteSize()} bytes) does not "
                        f"fit its run_end event within the {self.max_message_bytes}-byte message limit",
                        common_pb2.ERROR_REASON_TOO_LARGE,
                    )
            except Exception as exc:
                code, message, reason = _status_of(exc)
                if code == grpc.StatusCode.INTERNAL:
                    if _first_failure(exc) is None:  # not a step's failure: a bug of ours
                        log.exception("run %s of %r failed unexpectedly", run.run_id, request.target)
                    else:  # an agent's own INTERNAL (a model failure): its story, in one line
                        log.warning("run %s of %r failed: %s", run.run_id, request.target, message)
                yield numbered(
                    orchestrator_pb2.RunEvent(
                        error=agent_pb2.ErrorEvent(
                            code=code.name,
                            message=message,
                            retryable=code == grpc.StatusCode.UNAVAILABLE,
                            reason=reason,
                        )
                    )
                )
                raise RunFailed(code, message, reason) from exc
            finally:
                if not producer.done():
                    producer.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await producer
            yield numbered(end)
        finally:
            self._track(-1)


def _status_of(exc: BaseException) -> tuple[grpc.StatusCode, str, Reason]:
    """The status and reason a failed run ends with (never a traceback)."""
    failure = _first_failure(exc)
    if failure is not None:
        return failure.code, failure.message, failure.reason
    if isinstance(exc, TimeoutError):
        return (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "the run's deadline passed",
            common_pb2.ERROR_REASON_DEADLINE,
        )
    return (
        grpc.StatusCode.INTERNAL,
        f"run failed: {type(exc).__name__}: {exc}",
        common_pb2.ERROR_REASON_INTERNAL,
    )


def _first_failure(exc: BaseException) -> Failed | None:
    if isinstance(exc, Failed):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_failure(inner)
            if found is not None:
                return found
    return None
