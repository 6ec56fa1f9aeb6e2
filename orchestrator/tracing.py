"""The orchestrator's spans: one per run, one per pipeline step, around the agents' gRPC calls.

A run is a chain of async generators (`orchestrator.runs`), and a span made current across a
`yield` would leak into whatever the caller does meanwhile, or be detached in another task when the
caller closes the stream (OpenTelemetry then logs a detach error). So, as AgentScope's own
TracingMiddleware does, a span's context is attached only while the generator it wraps advances
(`traced`): the agent call a step makes then starts as the step span's child, and a parallel step's
task inherits its parent's context when it is created.

Span attributes (meshscope.*): run: target, target kind, run id, session id (when the run has
one); step: step, agent, replica (the replica that answered; a retried step's earlier attempts are
its gRPC child spans), session id. No message text: the agents' spans carry that, under the content switch.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from meshscope import telemetry

__all__ = ["run_span", "step_span", "traced"]

T = TypeVar("T")


_TRACER = telemetry.tracer("meshscope.orchestrator")
"""The API's proxy tracer: made once, it records through the provider `telemetry.start` sets."""


def run_span(target: str, kind: str, run_id: str, session_id: str) -> Span:
    """The span of one run, child of the current span (the Run call's gRPC server span)."""
    attributes = {"meshscope.target": target, "meshscope.target.kind": kind, "meshscope.run.id": run_id}
    return _started(f"run {target}", attributes, session_id)


def step_span(step: str, agent: str, session_id: str) -> Span:
    """The span of one step, child of the current span (its run's, or a parallel parent's)."""
    return _started(f"step {step}", {"meshscope.step": step, "meshscope.agent": agent}, session_id)


def _started(name: str, attributes: dict[str, str], session_id: str) -> Span:
    if session_id:  # a run without a session has no session attribute, not an empty one
        attributes["meshscope.session.id"] = session_id
    span: Span = _TRACER.start_span(name, attributes=attributes)
    return span


async def traced(events: AsyncGenerator[T, None], span: Span) -> AsyncGenerator[T, None]:
    """`events` with `span` current while it advances; the span ends with it (ERROR on a failure,
    with the exception's message; a caller that leaves ends it unset)."""
    current = trace.set_span_in_context(span)
    try:
        async with aclosing(events):
            while True:
                token = otel_context.attach(current)
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    break
                finally:
                    otel_context.detach(token)
                yield event
    except Exception as exc:
        span.set_status(Status(StatusCode.ERROR, _describe(exc)))
        span.record_exception(exc)
        raise
    finally:
        span.end()


def _describe(exc: Exception) -> str:
    message: Any = getattr(exc, "message", None)
    return str(message) if message else f"{type(exc).__name__}: {exc}"
