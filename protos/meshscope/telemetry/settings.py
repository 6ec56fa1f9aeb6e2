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

and, before the SDK reads them, the SDK's and the exporters' own: the endpoints' URL syntax, the
OTLP timeouts and compression, the batch processor's and metric reader's intervals and sizes,
OTEL_PROPAGATORS (tracecontext, baggage or none: what is installed) and OTEL_TRACES_SAMPLER(_ARG).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

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


ENDPOINTS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)
PROPAGATORS = ("tracecontext", "baggage", "none")
"""What the OpenTelemetry API ships; b3, jaeger and the others need packages meshscope does not install."""
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)


def _check_sdk_variables(config: Config) -> None:
    """The variables the OpenTelemetry SDK and exporters read themselves, checked here first: the SDK
    reads them when the providers start, after the server is bound, and answers a bad one with a
    traceback (or logs one and carries on)."""
    for name in ENDPOINTS:
        raw = config.raw(name)
        if raw is None:
            continue
        try:
            parsed = urlsplit(raw)
            parsed.port  # noqa: B018 - raises ValueError for a port that is not one
        except ValueError as exc:
            raise config.invalid(name, raw, f"a URL such as http://collector:4317 ({exc})") from None
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise config.invalid(name, raw, "a URL such as http://collector:4317")
    for name in (
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    ):
        config.number(name, 10, minimum=0, maximum=3_600_000)
    for name in (
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
    ):
        config.choice(name, "none", ("gzip", "deflate", "none"))
    for name in ("OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT"):
        config.integer(name, 1, minimum=0, maximum=86_400_000, what="milliseconds")
    for name in ("OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT"):
        config.number(name, 1, minimum=0, maximum=86_400_000, unit="milliseconds")
    queue = config.integer("OTEL_BSP_MAX_QUEUE_SIZE", 2048, minimum=1, maximum=10_000_000)
    batch = config.integer("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", min(512, queue), minimum=1, maximum=10_000_000)
    if batch > queue:
        limit = f"at most OTEL_BSP_MAX_QUEUE_SIZE ({queue})"
        raise config.invalid("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", str(batch), limit)
    _exporters(config, "OTEL_PROPAGATORS", PROPAGATORS, endpoint=False)
    sampler = config.choice("OTEL_TRACES_SAMPLER", "parentbased_always_on", SAMPLERS)
    if sampler.endswith("traceidratio"):
        config.number("OTEL_TRACES_SAMPLER_ARG", 1.0, minimum=0.0, maximum=1.0)


def _protocol(config: Config, specific: str) -> str:
    """The OTLP protocol of one signal: its own variable when set, else the general one."""
    name = specific if config.raw(specific) else "OTEL_EXPORTER_OTLP_PROTOCOL"
    return config.choice(name, "grpc", PROTOCOLS)


@dataclass(frozen=True)
class TelemetrySettings:
    """What to export; `from_env` is the only constructor the processes use."""

    service_name: str
    service_name_set: bool = False
    """Whether OTEL_SERVICE_NAME named it (it then beats OTEL_RESOURCE_ATTRIBUTES's)."""
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
        _check_sdk_variables(config)
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
            service_name_set=config.raw("OTEL_SERVICE_NAME") is not None,
            traces=traces,
            metrics=metrics,
            traces_protocol=_protocol(config, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
            metrics_protocol=_protocol(config, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"),
            prometheus_host=config.string("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost"),
            prometheus_port=config.port("OTEL_EXPORTER_PROMETHEUS_PORT", PROMETHEUS_PORT),
            capture_content=config.flag("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", True),
        )
