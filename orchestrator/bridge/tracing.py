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


_PATHS = {"", ".well-known/agent-card.json", "message:send", "message:stream", "tasks", "extendedAgentCard"}
"""The A2A HTTP+JSON paths under an agent's root that name no task (a2a-sdk's routes)."""


def route_of(path: str) -> str:
    """The route template of a request path: what names its span, so that span names stay few
    whatever clients send (task ids, unknown names, probes): `/agents/{target}/tasks/{id}:cancel`."""
    parts = path.strip("/").split("/", 2)
    if parts[0] != "agents" or len(parts) == 1:
        rest = path.strip("/")
        return "/" + rest if rest in _PATHS else "/{other}"
    tail = parts[2] if len(parts) == 3 else ""
    if tail in _PATHS:
        return f"/agents/{{target}}/{tail}".rstrip("/") + ("/" if not tail else "")
    if tail.startswith("tasks/"):
        task, _, below = tail[len("tasks/") :].partition("/")
        verb = ":" + task.partition(":")[2] if ":" in task else ""
        return "/agents/{target}/tasks/{id}" + verb + ("/{config}" if below else "")
    return "/agents/{target}/{other}"


def _span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    method, path = scope.get("method", "HTTP"), scope.get("path", "")
    route = route_of(path)
    attributes: dict[str, Any] = {"http.route": route}
    parts = path.strip("/").split("/")
    if len(parts) > 1 and parts[0] == "agents":
        attributes["meshscope.target"] = parts[1]
    return f"{method} {route}", attributes


def traced(app: ASGIApp) -> ASGIApp:
    """`app` behind OpenTelemetry's ASGI middleware: a span per request named by its route
    (`route_of`), none per body chunk (an SSE stream sends one per event), none for `/healthz`
    (a load balancer's probes every few seconds). The HTTP semantic conventions are the stable
    ones (`OTEL_SEMCONV_STABILITY_OPT_IN=http`, which the bridge sets unless it is set): the
    request-duration histogram in seconds, with method, status code and scheme, and no
    client-chosen value (the Host header) among its attributes."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    middleware: ASGIApp = OpenTelemetryMiddleware(
        app, excluded_urls="healthz", default_span_details=_span_details, exclude_spans=["receive", "send"]
    )
    return middleware
