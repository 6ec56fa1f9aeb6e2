"""Metrics through OpenTelemetry, scraped as Prometheus scrapes them: real agent and orchestrator
processes with OTEL_METRICS_EXPORTER=prometheus, sessions on a real Redis, runs that succeed and
one that fails, and the counters read back from each process's /metrics."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import grpc
import httpx
import pytest

from meshscope.cli.launch import ServiceProcess
from meshscope.orchestrator.client import OrchestratorClient
from meshscope.testing import RedisDevServer
from tests.support import start_agents, start_orchestrator

pytestmark = pytest.mark.integration

PROMETHEUS = {
    "OTEL_METRICS_EXPORTER": "prometheus",
    "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
    "OTEL_EXPORTER_PROMETHEUS_PORT": "0",
}
_ADDRESS = re.compile(r"metrics for Prometheus at (http://\S+/metrics)")


def metrics_url(process: ServiceProcess) -> str:
    """Where the process serves /metrics, from the line it logs at start (port 0: a free one)."""
    found = next((m.group(1) for line in process.log if (m := _ADDRESS.search(line))), None)
    assert found is not None, "\n".join(process.log)
    return found


def sample(text: str, name: str, **labels: str) -> float:
    """The summed value of every sample of `name` whose labels include `labels` (0.0: none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{key}="{wanted}"' in head for key, wanted in labels.items()):
            total += float(value)
    return total


async def test_the_metrics_endpoints_show_the_counters_moving(
    tmp_path: Path, redis_server: RedisDevServer
) -> None:
    agents = start_agents(
        ["--agents", "analyst", "--model", "scripted"], {**PROMETHEUS, "REDIS_URL": redis_server.url}
    )
    orchestrator = start_orchestrator(
        tmp_path / "mesh.yaml", "agents: [analyst]\n", {"analyst": agents.address}, env=PROMETHEUS
    )
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            before = (await http.get(metrics_url(orchestrator))).text
            assert sample(before, "meshscope_orchestrator_run_duration_seconds_count") == 0
            async with OrchestratorClient(orchestrator.address) as client:
                session = uuid.uuid4().hex
                for turn in range(3):
                    events = [e async for e in client.run("analyst", f"turn {turn}", session_id=session)]
                    assert events[-1].WhichOneof("kind") == "run_end"
                with pytest.raises(grpc.aio.AioRpcError):
                    async for _ in client.run("analyst", "please #fail"):
                        pass
            after = (await http.get(metrics_url(orchestrator))).text
            served = (await http.get(metrics_url(agents))).text
    finally:
        orchestrator.stop()
        agents.stop()

    ok = {"target": "analyst", "status": "OK"}
    assert sample(after, "meshscope_orchestrator_run_duration_seconds_count", **ok) == 3, after
    assert sample(after, "meshscope_orchestrator_run_duration_seconds_count", status="INTERNAL") == 1
    assert sample(after, "meshscope_orchestrator_run_errors_total", target="analyst", status="INTERNAL") == 1
    assert (
        sample(after, "meshscope_orchestrator_run_time_to_first_event_seconds_count", target="analyst") == 4
    )
    assert sample(after, "meshscope_orchestrator_runs_active", target="analyst") == 0
    assert sample(after, "meshscope_orchestrator_replicas_healthy", agent="analyst") == 1
    # The agent process: tokens per model call, session-lock waits (taken), Redis pool waits.
    model = {"gen_ai_request_model": "scripted", "gen_ai_token_type": "output"}
    assert sample(served, "gen_ai_client_token_usage_count", **model) >= 3, served
    assert sample(served, "gen_ai_client_token_usage_sum", **model) > 0
    assert (
        sample(served, "meshscope_agent_session_lock_wait_seconds_count", agent="analyst", outcome="taken")
        == 3
    )
    assert sample(served, "meshscope_agent_redis_pool_wait_seconds_count") >= 9  # lock, load, finish x 3
    # Resource attributes reach Prometheus as target_info.
    assert re.search(r'target_info\{[^}]*service_name="meshscope-agents"', served), served


def test_a_bad_metrics_setting_is_one_line_and_exit_2() -> None:
    import subprocess
    import sys

    from meshscope.testing import child_env

    done = subprocess.run(
        [sys.executable, "-m", "meshscope.cli.main", "serve", "agents", "--agents", "analyst", "--port", "0"],
        env=child_env({"OTEL_METRICS_EXPORTER": "prometheus,statsd"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "meshscope: OTEL_METRICS_EXPORTER='prometheus,statsd' is not valid: expected a comma-separated "
        "list of otlp, prometheus, console, none"
    ), done.stderr


async def test_json_logs_hold_every_library_line_of_an_agent_process() -> None:
    """AgentScope's own logger (which brings its handler) goes through the process's JSON handler."""
    import json

    from meshscope.services.runtime.client import AgentClient

    agents = start_agents(
        ["--agents", "analyst", "--model", "scripted"],
        {"MESHSCOPE_LOG_FORMAT": "json", "MESHSCOPE_LOG_LEVEL": "info"},
    )
    try:
        async with AgentClient(agents.address) as client:
            with pytest.raises(Exception):  # noqa: B017, PT011 - a model failure AgentScope logs a warning for
                await client.reply("analyst", "#fail")
    finally:
        agents.stop()
    logged = [
        line for line in agents.log if not line.startswith("meshscope: ")
    ]  # the ready protocol on stdout
    records = [json.loads(line) for line in logged]  # every line is one JSON object
    assert any(r["logger"] == "as" for r in records), logged  # AgentScope's warning among them


async def test_the_bridges_http_metrics_are_by_route_and_carry_nothing_a_client_chooses() -> None:
    from meshscope.cli.launch import launch, meshscope_command
    from meshscope.testing import child_env
    from tests.support import REPO

    bridge = launch(
        meshscope_command("serve", "bridge", "--port", "0"),
        child_env(
            {**PROMETHEUS, "MESHSCOPE_ORCHESTRATOR": "127.0.0.1:1", "MESHSCOPE_BRIDGE_DATABASE_URL": "memory"}
        ),
        cwd=REPO,
    )
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            for i in range(3):
                host = {"Host": f"evil{i}.example:1234"}
                await http.get(f"{bridge.address}/agents/x{i}/tasks/t{i}", headers=host)
                await http.get(f"{bridge.address}/healthz", headers=host)
            scraped = (await http.get(metrics_url(bridge))).text
    finally:
        bridge.stop()
    series = [
        line for line in scraped.splitlines() if line.startswith("http_server_request_duration_seconds_count")
    ]
    assert len(series) == 1, series  # three hosts, three targets, three task ids: one route
    assert 'http_route="/agents/{target}/tasks/{id}"' in series[0]
    assert "evil" not in scraped and "healthz" not in scraped
