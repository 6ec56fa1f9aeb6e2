"""An HTTP server span for each request to the bridge, continuing the caller's W3C trace.

a2a-sdk neither reads nor writes trace context (upstream a2a-python #168), so the bridge does: the span
is the child of the request's `traceparent` (when it has one) and is current while the request is
handled, so the run the executor starts (a task a2a-sdk creates inside the request) calls the
orchestrator under it, and the orchestrator's and the agents' spans join the caller's trace; push
notifications carry it on (`inject_trace_context`). Installed only when `meshscope.telemetry` has
tracing on.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meshscope import telemetry

__all__ = ["TraceRequests", "inject_trace_context"]


async def inject_trace_context(request: httpx.Request) -> None:
    """An httpx request hook: the current trace context (W3C traceparent) in the request's headers.

    The bridge's push-notification client uses it, so a webhook's work joins the task's trace: a2a-sdk
    sends a task's notifications from the task's own consumer, which runs in the request's context.
    """
    from opentelemetry import propagate

    propagate.inject(request.headers)


class TraceRequests:
    """Pure ASGI middleware: one SERVER span per HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._tracer = telemetry.tracer("meshscope.bridge")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind, Status, StatusCode

        carrier = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        method, path = scope["method"], scope["path"]
        attributes: dict[str, Any] = {"http.request.method": method, "url.path": path}
        with self._tracer.start_as_current_span(
            f"{method} {path}",
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes=attributes,
        ) as span:

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, traced_send)
