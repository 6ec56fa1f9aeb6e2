"""Every metric the mesh records, in one place (docs/observability.md lists them with their meaning).

Made from the OpenTelemetry API's global meter, which is a proxy until `meshscope.telemetry.start`
sets a meter provider: while metrics are off, recording is a call into a no-op and nothing else.
Durations are in seconds, as OpenTelemetry's semantic conventions ask; their bucket boundaries are
advisory (a View can change them). Attributes are low-cardinality by design: targets, agents,
status and reason names, model specs; never session, user or run ids.

Prometheus sees the names with dots as underscores and the unit appended
(`meshscope_orchestrator_run_duration_seconds`, `meshscope_orchestrator_runs_active`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Histogram, Observation

__all__ = [
    "EJECTIONS",
    "LOCK_WAIT",
    "POOL_WAIT",
    "RUNS_ACTIVE",
    "RUN_DURATION",
    "RUN_ERRORS",
    "TIME_TO_FIRST_EVENT",
    "TOKENS",
    "observe_healthy_replicas",
]

SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Bucket boundaries for durations: a millisecond (a scripted step, a free pooled connection) to two
minutes (a long run on a real model)."""
TOKEN_COUNTS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
"""The GenAI semantic conventions' advisory boundaries for gen_ai.client.token.usage (cut at 2^20)."""

_meter = metrics.get_meter("meshscope")

RUNS_ACTIVE = _meter.create_up_down_counter(
    "meshscope.orchestrator.runs.active", unit="{run}", description="Runs in flight, by target."
)


def _duration(name: str, description: str) -> Histogram:
    """A histogram of seconds with the `SECONDS` buckets."""
    return _meter.create_histogram(
        name, unit="s", description=description, explicit_bucket_boundaries_advisory=SECONDS
    )


RUN_DURATION = _duration(
    "meshscope.orchestrator.run.duration", "From a run's start to its end or failure, by target and status."
)
TIME_TO_FIRST_EVENT = _duration(
    "meshscope.orchestrator.run.time_to_first_event",
    "From a run's start to the first agent event relayed to its caller, by target.",
)
RUN_ERRORS = _meter.create_counter(
    "meshscope.orchestrator.run.errors",
    unit="{run}",
    description="Failed runs, by target, gRPC status and the mesh's error reason.",
)
EJECTIONS = _meter.create_counter(
    "meshscope.orchestrator.replica.ejections",
    unit="{ejection}",
    description="Replicas taken out of rotation after failing before their first event, by agent.",
)
LOCK_WAIT = _duration(
    "meshscope.agent.session.lock.wait",
    "Time a turn waited for its (session, agent) lock, by agent and outcome (taken or busy).",
)
POOL_WAIT = _duration(
    "meshscope.agent.redis.pool.wait", "Time a Redis command waited for a pooled connection."
)
TOKENS = _meter.create_histogram(
    "gen_ai.client.token.usage",
    unit="{token}",
    description="Tokens per model call, by model and token type (input, output): GenAI semantic conventions.",
    explicit_bucket_boundaries_advisory=TOKEN_COUNTS,
)


def observe_healthy_replicas(counts: Callable[[], Iterable[tuple[str, int]]]) -> None:
    """Report `counts()` (agent, healthy replicas) as meshscope.orchestrator.replicas.healthy at
    each collection; "healthy" = passing its checks and not ejected, so routed to."""

    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {"agent": agent}) for agent, count in counts()]

    _meter.create_observable_gauge(
        "meshscope.orchestrator.replicas.healthy",
        callbacks=[observe],
        unit="{replica}",
        description="Replicas of each agent in rotation (passing their checks, not ejected).",
    )
