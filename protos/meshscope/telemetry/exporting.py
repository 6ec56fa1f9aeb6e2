"""The process's meter provider: OTLP, console and Prometheus readers as OTEL_METRICS_EXPORTER names.

Imported only when metrics are on. OTLP and console readers push every OTEL_METRIC_EXPORT_INTERVAL
ms (the SDK's default, 60 000); the Prometheus reader answers scrapes of `/metrics` on its own HTTP
server (prometheus_client's, in a daemon thread), which also carries prometheus_client's default
process collectors (resident memory, CPU seconds, open file descriptors: what a leak hunt wants).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from meshscope.telemetry.settings import TelemetrySettings

__all__ = ["meter_provider"]


def _otlp_reader(settings: TelemetrySettings) -> MetricReader:
    # The exporters read their endpoint, headers and timeout from OTEL_EXPORTER_OTLP_*.
    if settings.metrics_protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

        return PeriodicExportingMetricReader(HttpExporter())
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

    return PeriodicExportingMetricReader(GrpcExporter())


def meter_provider(settings: TelemetrySettings, resource: Resource) -> tuple[MeterProvider, Any]:
    """The provider, and the Prometheus HTTP server when `prometheus` is named (else None).

    Raises `OSError` when the Prometheus port cannot be bound (the process then stops, as for its
    own port).
    """
    readers: list[MetricReader] = []
    server: Any = None
    for kind in settings.metrics:
        if kind == "otlp":
            readers.append(_otlp_reader(settings))
        elif kind == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
        else:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import start_http_server

            host, port = settings.prometheus_host, settings.prometheus_port
            try:
                server, _thread = start_http_server(port, addr=host)
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"the Prometheus endpoint {host}:{port} (OTEL_EXPORTER_PROMETHEUS_PORT): {exc.strerror}",
                ) from None
            readers.append(PrometheusMetricReader())
    return MeterProvider(resource=resource, metric_readers=readers), server
