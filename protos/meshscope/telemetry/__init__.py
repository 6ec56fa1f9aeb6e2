"""Traces and metrics for every meshscope process, from the standard OTEL_* variables (DESIGN.md §10).

Two calls in a process's life, both made by `meshscope.process.serve_process` (and the bridge's
entry): `configure(service)` before the server is built, which reads and checks the settings
(`meshscope.telemetry.settings`) and decides whether gRPC servers and channels carry
OpenTelemetry's interceptors; `start(instance_id)` once the server is bound, which sets the
process's tracer and meter providers with its resource:

- `service.name`: OTEL_SERVICE_NAME, else OTEL_RESOURCE_ATTRIBUTES's, else the process's role
  (`meshscope-agents`, `meshscope-orchestrator`, `meshscope-bridge`);
- `service.instance.id`: OTEL_RESOURCE_ATTRIBUTES's, else `<host>:<port>`, the address the process
  serves on, so each replica is its own instance;
- `meshscope.replica.ids`: the discovery replica ids (`<agent>@<host>:<port>`) an agent process
  registered; plus whatever OTEL_RESOURCE_ATTRIBUTES adds.

Off (no exporter named, no OTLP endpoint) costs nothing: no OpenTelemetry SDK module is imported,
no interceptor is added, and the mesh's instruments (`meshscope.telemetry.instruments`) stay the
API's no-op proxies (bench/telemetry_cost.py measures it). Spans begun before `start` are not
recorded; instruments made before it report through the providers it sets.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from meshscope.addresses import host_port
from meshscope.telemetry.settings import TelemetrySettings

__all__ = [
    "TelemetrySettings",
    "client_interceptors",
    "configure",
    "enabled",
    "on",
    "server_interceptors",
    "shutdown",
    "start",
    "tracer",
]

log = logging.getLogger("meshscope.telemetry")

_settings: TelemetrySettings | None = None
_tracer_provider: Any = None
_meter_provider: Any = None
_metrics_server: Any = None


def configure(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Read this process's telemetry settings (`ConfigError` on a bad one); whether anything is on.

    `service` is the process's role, service.name unless OTEL_SERVICE_NAME says otherwise.
    """
    global _settings
    _settings = TelemetrySettings.from_env(service, environ)
    return _settings.on


def on() -> bool:
    """Whether anything is exported (traces or metrics), as `configure` decided."""
    return _settings is not None and _settings.on


def enabled() -> bool:
    """Whether spans are exported: decided by `configure`, before any provider exists."""
    return _settings is not None and bool(_settings.traces)


def start(instance_id: str | None = None, replica_ids: Sequence[str] = ()) -> None:
    """Set the tracer and meter providers (see the module docstring); nothing when all is off.

    `instance_id`: this process's service.instance.id (default `<hostname>:<pid>`). Once only: a
    second call does nothing. The Prometheus endpoint's failure to bind is `OSError`.
    """
    global _tracer_provider, _meter_provider, _metrics_server
    if _settings is None or not _settings.on or _tracer_provider is not None or _meter_provider is not None:
        return
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    # OpenTelemetry's precedence: OTEL_SERVICE_NAME, then OTEL_RESOURCE_ATTRIBUTES, then the defaults
    # (here the role and the served address), so `service.instance.id=$(POD_NAME)` stands.
    given = OTELResourceDetector().detect().attributes
    attributes: dict[str, str] = {}
    if _settings.service_name_set or "service.name" not in given:
        attributes["service.name"] = _settings.service_name
    if "service.instance.id" not in given:
        attributes["service.instance.id"] = instance_id or f"{socket.gethostname()}:{os.getpid()}"
    if replica_ids:
        attributes["meshscope.replica.ids"] = ",".join(replica_ids)
    resource = Resource.create(attributes)  # merged over OTEL_RESOURCE_ATTRIBUTES
    if _settings.traces:
        from opentelemetry import trace

        from meshscope.telemetry.traces import tracer_provider

        _tracer_provider = tracer_provider(_settings, resource)
        trace.set_tracer_provider(_tracer_provider)
    if _settings.metrics:
        from opentelemetry import metrics

        from meshscope.telemetry.exporting import meter_provider

        _meter_provider, _metrics_server = meter_provider(_settings, resource)
        metrics.set_meter_provider(_meter_provider)
        if _metrics_server is not None:
            host, port = _metrics_server.server_address[:2]
            log.info("metrics for Prometheus at http://%s/metrics", host_port(str(host), int(port)))


def server_interceptors() -> list[Any]:
    """OpenTelemetry's gRPC server interceptor (health checks left out), or none when tracing is off.

    Made before `start`: its tracer is the API's proxy, which records once the provider is set.
    """
    if not enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    # Health checks are left out: Consul's probes every second would drown everything else.
    return [aio_server_interceptor(filter_=filters.negate(filters.health_check()))]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[Any]:
    """OpenTelemetry's gRPC client interceptors (trace context injected), or none when tracing is off."""
    if not enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors, filters

    return list(aio_client_interceptors(filter_=filters.negate(filters.health_check())))  # type: ignore[no-untyped-call]


def tracer(name: str) -> Any:
    """A tracer of this process's provider (the API's proxy: a no-op one while tracing is off)."""
    from opentelemetry import trace

    return trace.get_tracer(name)


def shutdown() -> None:
    """Flush and stop the exporters (what is batched is sent) and the metrics endpoint; idempotent."""
    global _tracer_provider, _meter_provider, _metrics_server
    if _tracer_provider is not None:
        _tracer_provider.shutdown()
        _tracer_provider = None
    if _meter_provider is not None:
        _meter_provider.shutdown()
        _meter_provider = None
    if _metrics_server is not None:
        _metrics_server.shutdown()
        _metrics_server.server_close()
        _metrics_server = None
