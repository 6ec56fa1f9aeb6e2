"""Tracing for every meshscope process, from the standard OTEL_* variables (DESIGN.md §10).

`configure(service)` runs once per process, at start. Tracing is on when OTEL_TRACES_EXPORTER is
`otlp` or `console`, or when it is unset and an OTLP endpoint is (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); `none`, or nothing set, leaves it off, and off costs nothing: no
OpenTelemetry SDK module is imported, no interceptor is added. On, it sets one global tracer provider:

- resource: `service.name` = OTEL_SERVICE_NAME or the process's own name (`meshscope-agents`,
  `meshscope-orchestrator`, `meshscope-bridge`), `service.instance.id` = `<host>:<pid>`, and whatever
  OTEL_RESOURCE_ATTRIBUTES adds;
- exporter: OTLP over gRPC (the default) or HTTP (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf), or spans
  printed on stdout (`console`); batched (OTEL_BSP_* tune the batching, as the SDK reads them).

Every gRPC server (`meshscope.server.Server`) and channel (`meshscope.channels.open_channel`) then
carries OpenTelemetry's gRPC interceptors — server spans, client spans, W3C trace context in the call
metadata — through the interceptor seam both already have; health checks are left out (probes every
second would drown the traces). `shutdown()` flushes what is batched; `serve_process` calls it at exit.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

__all__ = ["client_interceptors", "configure", "enabled", "server_interceptors", "shutdown", "tracer"]

_provider: Any = None


def _wanted(environ: Mapping[str, str]) -> str | None:
    """The exporter to use ("otlp" or "console"), or None for tracing off."""
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter in ("otlp", "console"):
        return exporter
    if exporter:
        return None  # "none", or one this project does not ship
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return "otlp" if endpoint and endpoint.strip() else None


def configure(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Set this process's tracer provider from OTEL_* (see the module docstring); whether tracing is on."""
    global _provider
    env = os.environ if environ is None else environ
    exporter_kind = _wanted(env)
    if exporter_kind is None or _provider is not None:
        return _provider is not None
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    resource = Resource.create(
        {
            "service.name": env.get("OTEL_SERVICE_NAME") or service,
            "service.instance.id": f"{socket.gethostname()}:{os.getpid()}",
        }
    )
    exporter: SpanExporter
    if exporter_kind == "console":
        exporter = ConsoleSpanExporter()
    elif env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc").strip().lower().startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        exporter = HttpExporter()
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        exporter = GrpcExporter()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    return True


def enabled() -> bool:
    return _provider is not None


def server_interceptors() -> list[Any]:
    """OpenTelemetry's gRPC server interceptor (health checks left out), or none when tracing is off."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    return [aio_server_interceptor(filter_=filters.negate(filters.health_check()))]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[Any]:
    """OpenTelemetry's gRPC client interceptors (trace context injected), or none when tracing is off."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors, filters

    return list(aio_client_interceptors(filter_=filters.negate(filters.health_check())))  # type: ignore[no-untyped-call]


def tracer(name: str) -> Any:
    """A tracer of this process's provider (a no-op one when tracing is off)."""
    from opentelemetry import trace

    return trace.get_tracer(name)


def shutdown() -> None:
    """Flush and stop the exporter (spans still batched are sent); idempotent."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None
