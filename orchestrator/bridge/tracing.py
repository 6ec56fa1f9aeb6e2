"""HTTP server spans and metrics for the bridge, continuing the caller's W3C trace.

a2a-sdk neither reads nor writes trace context (upstream a2a-python #168), so the bridge does, with
OpenTelemetry's own ASGI middleware (`opentelemetry-instrumentation-asgi`): each request is a SERVER
span, the child of the request's `traceparent` when it has one, current while the request is handled,
so the run the executor starts (a task a2a-sdk creates inside the request) calls the orchestrator
under it and the orchestrator's and the agents' spans join the caller's trace; the middleware also
records OpenTelemetry's HTTP server metrics (`http.server.request.duration`, active requests). Push
notifications carry the trace on (`inject_trace_context`). Installed only when `meshscope.telemetry`
has traces or metrics on.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.types import ASGIApp, Scope

__all__ = ["inject_trace_context", "traced"]


async def inject_trace_context(request: httpx.Request) -> None:
    """An httpx request hook: the current trace context (W3C traceparent) in the request's headers.

    The bridge's push-notification client uses it, so a webhook's work joins the task's trace: a2a-sdk
    sends a task's notifications from the task's own consumer, which runs in the request's context.
    """
    from opentelemetry import propagate

    propagate.inject(request.headers)


def _span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    # "POST /agents/analysis/": the path names the A2A agent (a pipeline or an agent of the mesh, so
    # few distinct names), which the method alone would not.
    method, path = scope.get("method", "HTTP"), scope.get("path", "")
    return f"{method} {path}", {}


def traced(app: ASGIApp) -> ASGIApp:
    """`app` behind OpenTelemetry's ASGI middleware: a span per request, none per body chunk (an SSE
    stream sends one per event)."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    middleware: ASGIApp = OpenTelemetryMiddleware(
        app, default_span_details=_span_details, exclude_spans=["receive", "send"]
    )
    return middleware
