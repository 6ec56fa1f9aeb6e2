"""Logs: one line per event in text or JSON, carrying the trace and span ids of the current span.

Each case runs in a child interpreter: `configure_logging` configures the process's root logger."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import pytest

from meshscope.testing import child_env

PROBE = """
import logging
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from meshscope.logs import configure_logging

configure_logging()
trace.set_tracer_provider(TracerProvider())
log = logging.getLogger("meshscope.probe")
log.info("outside")
with trace.get_tracer("probe").start_as_current_span("work") as span:
    print(format(span.get_span_context().trace_id, "032x"), format(span.get_span_context().span_id, "016x"))
    log.warning("inside %s", "a span")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
"""


def run_probe(env: dict[str, str]) -> tuple[list[str], list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=child_env(env), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split(), done.stderr.splitlines()


def test_json_logs_are_one_object_a_line_with_the_trace_ids_under_a_span() -> None:
    (trace_id, span_id), lines = run_probe({"MESHSCOPE_LOG_FORMAT": "json"})
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert [r["message"] for r in records] == ["outside", "inside a span", "failed"]
    outside, inside, failed = records
    assert {"time", "level", "logger"} <= outside.keys() and "trace_id" not in outside
    assert datetime.fromisoformat(outside["time"]).utcoffset() is not None  # ISO 8601, with its zone
    assert (inside["level"], inside["logger"]) == ("WARNING", "meshscope.probe")
    assert (inside["trace_id"], inside["span_id"]) == (trace_id, span_id)
    assert "ValueError: boom" in failed["exc_info"]  # the traceback stays inside its line


def test_text_logs_end_with_the_trace_ids_under_a_span() -> None:
    (trace_id, span_id), lines = run_probe({})
    assert lines[0].endswith("INFO meshscope.probe: outside")
    assert lines[1].endswith(f"WARNING meshscope.probe: inside a span trace_id={trace_id} span_id={span_id}")


def test_the_log_level_is_honoured() -> None:
    _, lines = run_probe({"MESHSCOPE_LOG_LEVEL": "warning", "MESHSCOPE_LOG_FORMAT": "json"})
    assert [json.loads(line)["message"] for line in lines] == ["inside a span", "failed"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MESHSCOPE_LOG_FORMAT": "xml"}, "MESHSCOPE_LOG_FORMAT='xml' is not valid: expected text or json"),
        ({"MESHSCOPE_LOG_LEVEL": "loud"}, "MESHSCOPE_LOG_LEVEL='loud' is not valid: expected debug, info"),
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER='jaeger' is not valid"),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, "OTEL_TRACES_EXPORTER='otlp,console' is not valid"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTLP_PROTOCOL='http/json' is not valid"),
        ({"OTEL_EXPORTER_PROMETHEUS_PORT": "99999"}, "OTEL_EXPORTER_PROMETHEUS_PORT='99999' is not valid"),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "maybe"}, "CAPTURE_MESSAGE_CONTENT='maybe'"),
    ],
)
def test_bad_log_and_telemetry_settings_are_one_line_and_exit_2(env: dict[str, str], message: str) -> None:
    for command in (["serve", "orchestrator", "--port", "0"], ["serve", "bridge", "--port", "0"]):
        done = subprocess.run(
            [sys.executable, "-m", "meshscope.cli.main", *command],
            env=child_env(env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, (command, done.stderr)
        assert len(done.stderr.splitlines()) == 1 and message in done.stderr, (command, done.stderr)
