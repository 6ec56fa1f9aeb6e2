"""Running a target (an agent or a pipeline) and streaming every step's events.

A run's steps execute in its caller's task, as a chain of async generators: a single
agent's or a sequence's events go straight from the agent's stream to the caller, each
labelled with its step, agent and replica, with no task or queue between them. Only
parallel steps (a fan-out's agents, a team's workers) run in tasks of their own, merged
through one bounded queue (`orchestrator.merge`). The run's deadline and the shutdown's
cut-off stop the chain from outside (`orchestrator.stops`). Each agent keeps its own
state within the run's session (agents key state by user, session and agent), so a
conversation with a pipeline continues per agent, and the session's history is one
cross-agent transcript.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field

import grpc
from opentelemetry.trace import Span

from meshscope import telemetry
from meshscope.codec import add_usage, as_input
from meshscope.orchestrator.calls import StepEvent, StepFailed, stream_step
from meshscope.orchestrator.failures import Failed, Reason
from meshscope.orchestrator.merge import merged
from meshscope.orchestrator.pipelines import MeshFile, Pipeline
from meshscope.orchestrator.pool import EndpointPool
from meshscope.orchestrator.stops import RunStop, cut_off
from meshscope.orchestrator.tracing import run_span, step_span, traced
from meshscope.telemetry.instruments import RUN_DURATION, RUN_ERRORS, RUNS_ACTIVE, TIME_TO_FIRST_EVENT
from meshscope.v1 import agent_pb2, common_pb2, orchestrator_pb2, relay_pb2
from meshscope.wire import DEFAULT_MAX_MESSAGE_BYTES, routing_question, text_of, user_message

log = logging.getLogger("meshscope.orchestrator")
_WORD = re.compile(r"[A-Za-z](?:[A-Za-z0-9_.\-]*[A-Za-z0-9])?")
"""A name in a router's reply: inner dots and dashes belong to it, a closing full stop does not."""
NUMBERING_BYTES = 64
"""Upper bound of what `Runner.stream` adds to every event: its sequence (a varint) and run id (32 hex)."""
QUEUE_DEPTH = 256
"""Events parallel steps buffer for a slow caller before they wait (backpressure)."""

OutEvent = orchestrator_pb2.RunEvent | relay_pb2.RelayedRunEvent
"""One event of a run as the orchestrator sends it: its own events are RunEvents, an agent's are
relayed in a RelayedRunEvent, which is a RunEvent on the wire (relay.proto)."""
Events = AsyncGenerator[OutEvent, None]
"""A step's or a pipeline's events, relayed as they happen."""


def encoded(event: OutEvent) -> bytes:
    """A run's event as the RunEvent it is on the wire (the Run method's response serializer:
    the generated one, RunEvent.SerializeToString, is RunEvent's alone)."""
    return event.SerializeToString()


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
    steps: int = 0
    replicas: list[str] = field(default_factory=list)
    usage: common_pb2.Usage = field(default_factory=common_pb2.Usage)
    sequence: int = 0
    """The sequence number of the last event sent to the caller."""

    def numbered(self, event: OutEvent) -> OutEvent:
        """`event` with the run's id and its sequence number (1, 2, ... in the order sent)."""
        self.sequence += 1
        event.sequence = self.sequence
        event.run_id = self.run_id
        return event


@dataclass(slots=True)
class Outcome:
    """Where a step or a pipeline leaves its final message once its events are relayed
    (an async generator returns nothing)."""

    message: common_pb2.Message | None = None

    def final(self) -> common_pb2.Message:
        """The final message (a step that ends without one fails instead, so it is always there)."""
        assert self.message is not None, "a step ended without a final message"
        return self.message


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
        self._stops: set[RunStop] = set()
        """The stops of the runs whose steps are executing (what `interrupt` cuts off)."""
        self._interrupted: str | None = None
        """Why runs are being cut off (set by `interrupt`)."""
        self._open = 0
        self.idle = asyncio.Event()
        """Set while no run is open."""
        self.idle.set()

    @contextmanager
    def _opened(self) -> Iterator[None]:
        """Count a run as open while it streams, for the shutdown's decision to cut runs off."""
        self._open += 1
        self.idle.clear()
        try:
            yield
        finally:
            self._open -= 1
            if not self._open:
                self.idle.set()

    def interrupt(self, message: str) -> int:
        """Fail every run still executing with UNAVAILABLE `message` (CUT_OFF); how many there were.

        For the end of a shutdown's grace period: gRPC would cancel the calls and
        their callers would see the stream stop with no reason given. Each run's
        steps are cancelled, and its stream ends with an error event and the status.
        A run whose steps have not started yet fails as they start.
        """
        self._interrupted = message
        for stop in self._stops:
            stop.stop(cut_off(message))
        return len(self._stops)

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

    # ------------------------------------------------------------ one run, start to end

    async def stream(self, run: Run) -> Events:
        """Run start, every step's events as they happen, run end; `RunFailed` on failure
        (after the `error` event saying why). Each event serializes to a RunEvent (`encoded`);
        relayed ones are `RelayedRunEvent`s, whose agent event is still encoded."""
        with self._opened(), _measured(run.request.target) as measure:
            started = time.monotonic()
            yield run.numbered(self._start_event(run))
            outcome = Outcome()
            steps = self._steps(run, outcome)
            if telemetry.enabled():
                kind = self.kind_of(run.request.target)
                steps = traced(steps, run_span(run.request.target, kind, run.run_id, run.request.session_id))
            try:
                async with aclosing(steps) as events:
                    async for event in events:
                        measure.event()
                        yield run.numbered(event)
                end = self._end_event(run, outcome.final(), started)
            except Exception as exc:
                failure = self._failure(run, exc)
                measure.failed(failure)
                yield run.numbered(_error_event(failure))
                raise failure from exc
            measure.status = "OK"
            yield run.numbered(end)

    def _start_event(self, run: Run) -> orchestrator_pb2.RunEvent:
        request = run.request
        start = orchestrator_pb2.RunStart(
            target=request.target, kind=self.kind_of(request.target), session_id=request.session_id
        )
        return orchestrator_pb2.RunEvent(run_start=start)

    async def _steps(self, run: Run, outcome: Outcome) -> Events:
        """The target's events, straight from the agents' streams, until the run stops (its
        deadline, or `interrupt`): then it fails with the stop's failure."""
        stop = RunStop(run.deadline)
        self._stops.add(stop)
        if self._interrupted is not None:  # opened just as the shutdown cut runs off
            stop.stop(cut_off(self._interrupted))
        steps = self.execute(run, run.request.target, run.request.input, outcome)
        stop.watch(steps)
        try:
            try:
                if stop.failure is None:
                    async for event in steps:
                        yield event
                        if stop.failure is not None:  # stopped while the caller held the event
                            break
                    else:
                        return
            except (
                asyncio.CancelledError
            ):  # the steps were waiting: the cancellation is ours, or the caller's
                if not stop.taken_back():
                    raise  # the caller left
            assert stop.failure is not None
            raise stop.failure
        finally:
            self._stops.discard(stop)
            stop.close()
            await steps.aclose()  # cancels the agent calls of steps that did not end

    def _end_event(self, run: Run, output: common_pb2.Message, started: float) -> orchestrator_pb2.RunEvent:
        end = orchestrator_pb2.RunEvent(
            run_end=orchestrator_pb2.RunEnd(
                steps=run.steps,
                replicas=run.replicas,
                usage=run.usage,
                duration_ms=(time.monotonic() - started) * 1000,
                output=output,
            )
        )
        if end.ByteSize() + NUMBERING_BYTES > self.max_message_bytes:
            # A fan-out's joined replies, or a last reply near the limit.
            raise Failed(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the run finished, but its output ({output.ByteSize()} bytes) does not fit its "
                f"run_end event within the {self.max_message_bytes}-byte message limit",
                common_pb2.ERROR_REASON_TOO_LARGE,
            )
        return end

    def _failure(self, run: Run, exc: Exception) -> RunFailed:
        """The run's failure for `exc`, logged when it is worth a line (INTERNAL)."""
        code, message, reason = _status_of(exc)
        if code == grpc.StatusCode.INTERNAL:
            if isinstance(exc, Failed):  # an agent's own INTERNAL (a model failure): its story, in one line
                log.warning("run %s of %r failed: %s", run.run_id, run.request.target, message)
            else:  # not a step's failure: a bug of ours
                log.error("run %s of %r failed unexpectedly", run.run_id, run.request.target, exc_info=exc)
        return RunFailed(code, message, reason)

    # ------------------------------------------------------------ targets and pipelines

    def execute(
        self, run: Run, target: str, message: common_pb2.Message, into: Outcome, prefix: str = ""
    ) -> Events:
        """The events of a target run on `message`; its final message lands in `into`."""
        pipeline = self.mesh.pipelines.get(target)
        if pipeline is None:
            return self._step(run, f"{prefix}{target}", target, message, into)
        if pipeline.kind == "sequential":
            return self._sequential(run, pipeline, message, prefix, into)
        if pipeline.kind == "team":
            return self._team(run, pipeline, message, prefix, into)
        if pipeline.kind == "fanout":
            return self._fanout(run, pipeline, message, prefix, into)
        return self._route(run, pipeline, message, prefix, into)

    async def _sequential(
        self, run: Run, p: Pipeline, message: common_pb2.Message, prefix: str, into: Outcome
    ) -> Events:
        current = message
        for index, step in enumerate(p.steps):
            nested = f"{prefix}{step}/" if step in self.mesh.pipelines else prefix
            reply = Outcome()
            async with aclosing(self.execute(run, step, current, reply, nested)) as events:
                async for event in events:
                    yield event
            current = reply.final() if index == len(p.steps) - 1 else as_input(reply.final())
        into.message = current

    async def _team(
        self, run: Run, p: Pipeline, message: common_pb2.Message, prefix: str, into: Outcome
    ) -> Events:
        plan = Outcome()
        async with aclosing(self._step(run, f"{prefix}plan", p.manager, message, plan)) as events:
            async for event in events:
                yield event
        brief = f"Task from {p.manager}: {text_of(plan.final())}\n\nOriginal request: {text_of(message)}"
        calls = [(f"{prefix}worker:{w}", w, user_message(brief, p.manager)) for w in p.workers]
        results = [Outcome() for _ in calls]
        async with aclosing(self._parallel(run, calls, results)) as events:
            async for event in events:
                yield event
        report = "\n\n".join(f"[{w}] {text_of(r.final())}" for w, r in zip(p.workers, results, strict=True))
        synthesis = user_message(f"Results from the team:\n\n{report}", "team")
        async with aclosing(self._step(run, f"{prefix}synthesis", p.manager, synthesis, into)) as events:
            async for event in events:
                yield event

    async def _fanout(
        self, run: Run, p: Pipeline, message: common_pb2.Message, prefix: str, into: Outcome
    ) -> Events:
        results = [Outcome() for _ in p.agents]
        calls = [(f"{prefix}{a}", a, message) for a in p.agents]
        async with aclosing(self._parallel(run, calls, results)) as events:
            async for event in events:
                yield event
        combined = "\n\n".join(f"[{a}] {text_of(r.final())}" for a, r in zip(p.agents, results, strict=True))
        if p.aggregator:
            summary = user_message(f"Summarise these answers:\n\n{combined}", p.name)
            async with aclosing(self._step(run, f"{prefix}aggregate", p.aggregator, summary, into)) as events:
                async for event in events:
                    yield event
            return
        into.message = common_pb2.Message(
            id=uuid.uuid4().hex,
            role=common_pb2.ROLE_ASSISTANT,
            name=p.name,
            parts=[common_pb2.Part(text=combined)],
        )

    async def _route(
        self, run: Run, p: Pipeline, message: common_pb2.Message, prefix: str, into: Outcome
    ) -> Events:
        decision = Outcome()
        question = routing_question(message, p.choices)
        async with aclosing(self._step(run, f"{prefix}route", p.router, question, decision)) as events:
            async for event in events:
                yield event
        choice = self._checked_choice(text_of(decision.final()), p)
        async with aclosing(self._step(run, f"{prefix}{choice}", choice, message, into)) as events:
            async for event in events:
                yield event

    def _checked_choice(self, text: str, p: Pipeline) -> str:
        """The allowed agent the router's reply names; `StepFailed` (ROUTING_FAILED) otherwise."""
        choice = self.choice_in(text, p)
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
        return choice

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

    def _parallel(
        self, run: Run, calls: Sequence[tuple[str, str, common_pb2.Message]], into: Sequence[Outcome]
    ) -> Events:
        """The steps `calls` (step, agent, input) at once, their events interleaved as they come;
        each one's final message lands in its `into`. The first step to fail cancels the others."""
        steps = [
            self._step(run, step, agent, msg, out)
            for (step, agent, msg), out in zip(calls, into, strict=True)
        ]
        return merged(steps, QUEUE_DEPTH)

    # ------------------------------------------------------------ one agent step

    def _step(self, run: Run, step: str, agent: str, message: common_pb2.Message, into: Outcome) -> Events:
        """One agent's turn on `message`, its events relayed as they come; its reply lands in `into`
        (in a span of its own when tracing is on)."""
        if not telemetry.enabled():
            return self._agent_step(run, step, agent, message, into, None)
        span = step_span(step, agent, run.request.session_id)
        return traced(self._agent_step(run, step, agent, message, into, span), span)

    async def _agent_step(
        self, run: Run, step: str, agent: str, message: common_pb2.Message, into: Outcome, span: Span | None
    ) -> Events:
        request = self._invoke_request(run, step, agent, message)
        run.steps += 1
        root: str | None = None
        speaker = agent  # the agent of the last event that named one (events name it when it changes)
        # aclosing: a step closed at a `yield` (its caller left) ends its agent call now.
        async with aclosing(
            stream_step(self.pool, request, deadline=run.deadline, attempts=self.attempts)
        ) as items:
            async for item in items:
                head = item.head
                speaker = head.agent or speaker
                kind = head.WhichOneof("kind")
                if kind == "reply_start" and root is None:
                    root = head.reply_id
                    if item.endpoint.replica_id not in run.replicas:
                        run.replicas.append(item.endpoint.replica_id)
                    if span is not None:
                        span.set_attribute("meshscope.replica", item.endpoint.replica_id)
                elif kind == "reply_end" and head.reply_id == root:
                    into.message = head.reply_end.message
                    add_usage(run.usage, into.message.usage)
                yield self._relayed(step, agent, speaker, item)
        if into.message is None:
            raise StepFailed(
                grpc.StatusCode.INTERNAL,
                f"agent {agent!r} ended without a reply",
                common_pb2.ERROR_REASON_INTERNAL,
            )

    def _invoke_request(
        self, run: Run, step: str, agent: str, message: common_pb2.Message
    ) -> agent_pb2.InvokeRequest:
        """The agent call of a step, checked against the message limit (`StepFailed` TOO_LARGE)."""
        request = agent_pb2.InvokeRequest(
            agent=agent,
            input=message,
            # The agent keys state by (user, session, agent): each agent keeps its own
            # conversation in the session, and the session's transcript is shared.
            session_id=run.request.session_id,
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
        return request

    def _relayed(self, step: str, agent: str, speaker: str, item: StepEvent) -> relay_pb2.RelayedRunEvent:
        """An agent's event in the run's envelope (`speaker`: the agent that produced it, a team
        member or the step's `agent`; the event's bytes as they came: a RunEvent on the wire, see
        relay.proto), checked against the message limit."""
        relayed = relay_pb2.RelayedRunEvent(
            step=step, agent=speaker, replica=item.endpoint.replica_id, agent_event=item.raw
        )
        # The agent keeps each event within its own limit; the envelope added here may push
        # one past ours.
        if relayed.ByteSize() + NUMBERING_BYTES > self.max_message_bytes:
            raise StepFailed(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"step {step!r}: agent {agent!r} sent an event of {len(item.raw)} bytes, too large "
                f"to relay within the {self.max_message_bytes}-byte message limit",
                common_pb2.ERROR_REASON_TOO_LARGE,
            )
        return relayed


class _Measure:
    """A run's metrics as it goes: its first relayed event, and the status it ends with."""

    def __init__(self, target: str) -> None:
        self.attributes = {"target": target}
        self.started = time.monotonic()
        self.first_event = True
        self.status = "CANCELLED"
        """OK once the run ended, its failure's code when it failed; else the caller left."""

    def event(self) -> None:
        if self.first_event:
            self.first_event = False
            TIME_TO_FIRST_EVENT.record(time.monotonic() - self.started, self.attributes)

    def failed(self, failure: Failed) -> None:
        self.status = failure.code.name
        reason = common_pb2.ErrorReason.Name(failure.reason)
        RUN_ERRORS.add(1, {**self.attributes, "status": self.status, "reason": reason})


@contextmanager
def _measured(target: str) -> Iterator[_Measure]:
    """Count a run in flight while it streams; record its duration and status at its end."""
    measure = _Measure(target)
    RUNS_ACTIVE.add(1, measure.attributes)
    try:
        yield measure
    finally:
        RUNS_ACTIVE.add(-1, measure.attributes)
        RUN_DURATION.record(
            time.monotonic() - measure.started, {**measure.attributes, "status": measure.status}
        )


def _error_event(failure: Failed) -> orchestrator_pb2.RunEvent:
    """The `error` event a failed run ends its stream with (the status then says the same)."""
    error = agent_pb2.ErrorEvent(
        code=failure.code.name,
        message=failure.message,
        retryable=failure.code == grpc.StatusCode.UNAVAILABLE,
        reason=failure.reason,
    )
    return orchestrator_pb2.RunEvent(error=error)


def _status_of(exc: Exception) -> tuple[grpc.StatusCode, str, Reason]:
    """The status and reason a failed run ends with (never a traceback)."""
    if isinstance(exc, Failed):
        return exc.code, exc.message, exc.reason
    return (
        grpc.StatusCode.INTERNAL,
        f"run failed: {type(exc).__name__}: {exc}",
        common_pb2.ERROR_REASON_INTERNAL,
    )
