"""The process's tracer provider: exporter, batching, and message text kept out when asked.

Imported only when tracing is on (`meshscope.telemetry.start`), so an untraced process loads none
of the OpenTelemetry SDK.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Status

from meshscope.telemetry.settings import TelemetrySettings

__all__ = ["CONTENT_ATTRIBUTES", "tracer_provider"]

CONTENT_ATTRIBUTES = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
    }
)
"""The span attributes that carry what users and models said: OpenTelemetry's GenAI semantic
conventions name them "opt-in" content; AgentScope's TracingMiddleware (2.0.10) always sets them.
With content off they go, and so do the messages of errors (`_without_content`)."""


class _WithoutContent(SpanExporter):
    """Exports spans with `CONTENT_ATTRIBUTES` removed.

    AgentScope has no switch for message content in its spans, and a finished span's attributes
    cannot change, so the copies handed to the real exporter leave them out.
    """

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([_without_content(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _without_content(span: ReadableSpan) -> ReadableSpan:
    """`span` without what was said: the content attributes, and error text, which quotes it as often
    as not (a provider's 400 that repeats the prompt, a validation error with the input): a failed
    span keeps its ERROR status and its exception's type, not their messages."""
    attributes = span.attributes or {}
    described = span.status.description
    failures = [event for event in span.events if event.name == "exception"]
    if CONTENT_ATTRIBUTES.isdisjoint(attributes) and not described and not failures:
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes={k: v for k, v in attributes.items() if k not in CONTENT_ATTRIBUTES},
        events=[_without_text(event) if event.name == "exception" else event for event in span.events],
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code) if described else span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _without_text(event: Event) -> Event:
    kept = {k: v for k, v in (event.attributes or {}).items() if k in ("exception.type", "exception.escaped")}
    return Event(event.name, kept, event.timestamp)


def _exporter(settings: TelemetrySettings) -> SpanExporter:
    if settings.traces == ("console",):
        return ConsoleSpanExporter()
    # OTLP exporters read their endpoint, headers, timeout and compression from OTEL_EXPORTER_OTLP_*.
    if settings.traces_protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    return GrpcExporter()


def tracer_provider(settings: TelemetrySettings, resource: Resource) -> TracerProvider:
    """A provider exporting in batches (OTEL_BSP_* tune them, as the SDK reads them)."""
    exporter = _exporter(settings)
    if not settings.capture_content:
        exporter = _WithoutContent(exporter)
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
