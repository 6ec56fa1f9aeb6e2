"""What a process exports, read once at start from the standard OTEL_* variables (DESIGN.md §10).

The names and meanings are OpenTelemetry's own (the SDK environment specification), so a
collector's usual setup works unchanged; what meshscope adds is a check of every value at start
(a bad one is `ConfigError`, one line and exit 2, like every other knob) and one rule for "off":
a signal is exported only when its exporter variable names one, or when it is unset and an OTLP
endpoint is. With nothing set, nothing is exported and no SDK module is even imported.

  OTEL_SERVICE_NAME                  service.name                     the process's role
  OTEL_TRACES_EXPORTER               otlp | console | none            otlp when an endpoint is set
  OTEL_METRICS_EXPORTER              otlp, prometheus, console | none otlp when an endpoint is set
  OTEL_EXPORTER_OTLP_ENDPOINT        the collector (4317 gRPC, 4318 HTTP); _TRACES_/_METRICS_ variants
  OTEL_EXPORTER_OTLP_PROTOCOL        grpc | http/protobuf             grpc; _TRACES_/_METRICS_ variants
  OTEL_EXPORTER_PROMETHEUS_HOST      where /metrics listens           localhost
  OTEL_EXPORTER_PROMETHEUS_PORT      its port (0: any free one)       9464
  OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT
                                     message text in spans            true (AgentScope's default)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meshscope.config import Config

__all__ = ["TelemetrySettings"]

TRACE_EXPORTERS = ("otlp", "console", "none")
METRIC_EXPORTERS = ("otlp", "prometheus", "console", "none")
PROTOCOLS = ("grpc", "http/protobuf")
PROMETHEUS_PORT = 9464
"""The Prometheus exporter's port by OpenTelemetry's default (and Prometheus's port registry)."""


def _exporters(config: Config, name: str, allowed: tuple[str, ...], endpoint: bool) -> tuple[str, ...]:
    raw = config.raw(name)
    if raw is None:
        return ("otlp",) if endpoint else ()
    chosen = tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    unknown = [part for part in chosen if part not in allowed]
    if unknown or not chosen:
        raise config.invalid(name, raw, "a comma-separated list of " + ", ".join(allowed))
    if "none" in chosen and len(chosen) > 1:
        raise config.invalid(name, raw, "none alone, or exporters without none")
    return tuple(part for part in chosen if part != "none")


def _protocol(config: Config, specific: str) -> str:
    """The OTLP protocol of one signal: its own variable when set, else the general one."""
    name = specific if config.raw(specific) else "OTEL_EXPORTER_OTLP_PROTOCOL"
    return config.choice(name, "grpc", PROTOCOLS)


@dataclass(frozen=True)
class TelemetrySettings:
    """What to export; `from_env` is the only constructor the processes use."""

    service_name: str
    traces: tuple[str, ...] = ()
    """Span exporters: () for tracing off, else ("otlp",) or ("console",)."""
    metrics: tuple[str, ...] = ()
    """Metric exporters, any of otlp, prometheus, console; () for metrics off."""
    traces_protocol: str = "grpc"
    metrics_protocol: str = "grpc"
    prometheus_host: str = "localhost"
    prometheus_port: int = PROMETHEUS_PORT
    capture_content: bool = True
    """Message text (prompts, replies, tool arguments and results) kept in spans."""

    @property
    def on(self) -> bool:
        return bool(self.traces or self.metrics)

    @classmethod
    def from_env(cls, service: str, environ: Mapping[str, str] | None = None) -> TelemetrySettings:
        """The settings for a process whose role is `service` (its default service.name);
        `ConfigError` names the first bad variable."""
        config = Config(environ)
        endpoint = config.raw("OTEL_EXPORTER_OTLP_ENDPOINT") is not None
        traces = _exporters(
            config,
            "OTEL_TRACES_EXPORTER",
            TRACE_EXPORTERS,
            endpoint or config.raw("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") is not None,
        )
        if len(traces) > 1:
            raise config.invalid("OTEL_TRACES_EXPORTER", ",".join(traces), "one exporter")
        metrics = _exporters(
            config,
            "OTEL_METRICS_EXPORTER",
            METRIC_EXPORTERS,
            endpoint or config.raw("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") is not None,
        )
        return cls(
            service_name=config.string("OTEL_SERVICE_NAME", service),
            traces=traces,
            metrics=metrics,
            traces_protocol=_protocol(config, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
            metrics_protocol=_protocol(config, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"),
            prometheus_host=config.string("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost"),
            prometheus_port=config.port("OTEL_EXPORTER_PROMETHEUS_PORT", PROMETHEUS_PORT),
            capture_content=config.flag("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", True),
        )
