"""`meshscope up`'s plan from a mesh file: which processes, with what, on which ports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from meshscope.cli.up import Proc, UpError, plan, preflight

MESH = """
agents:
  analyst: {model: local, process: team}
  writer: {model: local, process: team}
  researcher: {replicas: 2}
up:
  redis: true
  ports: {consul: 18500, redis: 16380, orchestrator: 15050, bridge: 18080, agents: 15051}
"""


def names(procs: Sequence[Proc]) -> list[str]:
    return [p.name for p in procs]


def test_the_plan_of_a_mesh_file(tmp_path: Path) -> None:
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text(MESH)
    p = plan(str(mesh), {"PATH": "/usr/bin"}, tmp_path / "state")
    assert names(p.procs) == [
        "consul",
        "redis",
        "team",
        "researcher.1",
        "researcher.2",
        "orchestrator",
        "bridge",
    ]
    by_name = {proc.name: proc for proc in p.procs}
    assert by_name["team"].command[-6:] == [
        "--agents",
        "analyst,writer",
        "--port",
        "15051",
        "--model",
        "local",
    ]
    assert [by_name[f"researcher.{i}"].port for i in (1, 2)] == [15052, 15053]
    assert by_name["team"].env["REDIS_URL"] == "redis://127.0.0.1:16380/0"
    assert by_name["team"].env["CONSUL_HTTP_ADDR"] == "127.0.0.1:18500"
    assert by_name["bridge"].env["MESHSCOPE_ORCHESTRATOR"] == "127.0.0.1:15050"
    assert p.replicas == {"analyst": 1, "writer": 1, "researcher": 2}
    assert p.bridge_url == "http://127.0.0.1:18080"


def test_a_consul_and_a_redis_given_in_the_environment_are_used_not_started(tmp_path: Path) -> None:
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text(MESH)
    environ = {"CONSUL_HTTP_ADDR": "10.0.0.5:8500", "REDIS_URL": "redis://10.0.0.6:6379/2"}
    p = plan(str(mesh), environ, tmp_path / "state")
    assert "consul" not in names(p.procs) and "redis" not in names(p.procs)
    assert p.procs[0].env["CONSUL_HTTP_ADDR"] == "10.0.0.5:8500"
    assert p.procs[0].env["REDIS_URL"] == "redis://10.0.0.6:6379/2"


def test_one_port_for_two_roles_is_refused(tmp_path: Path) -> None:
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text("agents: [analyst]\nup:\n  ports: {orchestrator: 18081, bridge: 18081, consul: 18502}\n")
    with pytest.raises(UpError, match="port 18081 is given to both the orchestrator and the bridge"):
        preflight(plan(str(mesh), {}, tmp_path / "state").procs)


def test_with_prometheus_metrics_each_mesh_process_gets_its_own_metrics_port(tmp_path: Path) -> None:
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text(MESH)
    environ = {"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": "19100"}
    by_name = {proc.name: proc for proc in plan(str(mesh), environ, tmp_path / "state").procs}
    ports = {name: proc.env.get("OTEL_EXPORTER_PROMETHEUS_PORT") for name, proc in by_name.items()}
    assert ports == {
        "consul": None,
        "redis": None,
        "team": "19100",
        "researcher.1": "19101",
        "researcher.2": "19102",
        "orchestrator": "19103",
        "bridge": "19104",
    }
    # Without Prometheus, nothing is added; a bad value is UpError, one line.
    assert "OTEL_EXPORTER_PROMETHEUS_PORT" not in plan(str(mesh), {}, tmp_path / "state").procs[2].env
    with pytest.raises(UpError, match="OTEL_METRICS_EXPORTER='statsd' is not valid"):
        plan(str(mesh), {"OTEL_METRICS_EXPORTER": "statsd"}, tmp_path / "state")
    with pytest.raises(UpError, match="MESHSCOPE_LOG_FORMAT='xml' is not valid"):
        plan(str(mesh), {"MESHSCOPE_LOG_FORMAT": "xml"}, tmp_path / "state")


def test_a_taken_metrics_port_is_found_before_anything_starts(tmp_path: Path) -> None:
    import socket

    from meshscope.testing import free_ports

    consul, orchestrator, bridge, agents = free_ports(4)
    mesh = tmp_path / "mesh.yaml"
    ports = f"{{consul: {consul}, orchestrator: {orchestrator}, bridge: {bridge}, agents: {agents}}}"
    mesh.write_text(f"agents: [analyst]\nup: {{ports: {ports}}}\n")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        environ = {"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": str(port - 1)}
        p = plan(str(mesh), environ, tmp_path / "state")
        with pytest.raises(UpError, match=rf"port {port} \(the orchestrator's /metrics\) is in use"):
            preflight(p.procs)
