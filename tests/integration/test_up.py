"""`meshscope up / status / down` on each shipped mesh file, as real processes: Consul (and Redis where the
file asks), every agent process and replica, the orchestrator and the bridge, on the scripted model
(MESHSCOPE_MODEL) and free ports (the file's `up.ports`, rewritten in a copy). A run goes through the
bridge with a2a-sdk's client; nothing is left running afterwards."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.types import a2a_pb2

from meshscope.cli.launch import meshscope_command
from meshscope.testing import child_env, free_ports, wait_until
from tests.support import REPO

pytestmark = pytest.mark.integration

SHIPPED = ["mesh.yaml", "examples/single-process.yaml", "examples/hybrid.yaml"]


def with_free_ports(source: Path, target: Path) -> int:
    """Copy a shipped mesh file with free ports for everything (agents: any); the bridge's port."""
    consul, redis, orchestrator, bridge = free_ports(4)
    fixed = f"consul: {consul}, redis: {redis}, orchestrator: {orchestrator}, bridge: {bridge}"
    ports = f"ports: {{{fixed}, agents: 0}}"
    text, count = re.subn(r"ports: \{[^}]*\}", ports, source.read_text())
    assert count == 1, f"{source} has no up.ports line to rewrite"
    target.write_text(text)
    return bridge


def up_env(state: Path) -> dict[str, str]:
    env = child_env({"MESHSCOPE_MODEL": "scripted", "MESHSCOPE_STATE_DIR": str(state)})
    env.pop("MESHSCOPE_DISCOVERY", None)  # `up` sets it per process
    return env


def cli(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        meshscope_command(*args), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by a parent that is itself gone) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: list[int], timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def state_pids(state: Path) -> list[int]:
    import json

    data = json.loads((state / "up.json").read_text())
    return [int(data["pid"]), *(int(p) for p in data["processes"].values() if p)]


async def analysis_through_the_bridge(bridge_port: int) -> str:
    config = ClientConfig(streaming=False, httpx_client=httpx.AsyncClient(timeout=60))
    client = await ClientFactory(config).create_from_url(f"http://127.0.0.1:{bridge_port}/agents/analysis")
    try:
        message = a2a_pb2.Message(
            message_id=uuid.uuid4().hex,
            role=a2a_pb2.ROLE_USER,
            parts=[a2a_pb2.Part(text="Compare gRPC and REST")],
        )
        task = None
        async for item in client.send_message(a2a_pb2.SendMessageRequest(message=message)):
            task = item.task
        assert task is not None
        assert task.status.state == a2a_pb2.TASK_STATE_COMPLETED
        return "".join(p.text for p in task.status.message.parts)
    finally:
        await client.close()


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """pids a test records; any still alive at the end are killed (and the test has failed already)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("shipped", SHIPPED)
async def test_up_status_down_of_each_shipped_mesh_file(
    shipped: str, tmp_path: Path, leftovers: list[int]
) -> None:
    mesh = tmp_path / Path(shipped).name
    bridge = with_free_ports(REPO / shipped, mesh)
    state = tmp_path / "state"
    env = up_env(state)
    started = cli(["up", "-f", str(mesh), "--detach"], env)
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"bridge http://127.0.0.1:{bridge}" in started.stdout
    pids = state_pids(state)
    leftovers.extend(pids)

    answer = await analysis_through_the_bridge(bridge)
    assert answer.startswith("writer: turn 1.")

    listed = cli(["status"], env, timeout=30)
    assert listed.returncode == 0, listed.stdout
    expected = {"consul", "orchestrator", "bridge"} | (
        {"redis"} if "redis: true" in mesh.read_text() else set()
    )
    names = {line.split()[0] for line in listed.stdout.splitlines()[3:]}
    assert expected <= names
    assert all(line.split()[-1] == "running" for line in listed.stdout.splitlines()[3:])

    stopped = cli(["down"], env, timeout=60)
    assert stopped.returncode == 0, stopped.stdout
    assert wait_gone(pids) == []
    assert cli(["status"], env, timeout=30).returncode == 3  # nothing is up any more


def test_ctrl_c_of_a_foreground_up_leaves_no_process(tmp_path: Path, leftovers: list[int]) -> None:
    mesh = tmp_path / "mesh.yaml"
    with_free_ports(REPO / "mesh.yaml", mesh)
    state = tmp_path / "state"
    proc = subprocess.Popen(
        meshscope_command("up", "-f", str(mesh)), cwd=REPO, env=up_env(state),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    leftovers.append(proc.pid)
    assert proc.stdout is not None
    output = []
    for line in proc.stdout:
        output.append(line)
        if line.startswith("meshscope: the mesh is up"):
            break
    else:
        pytest.fail("".join(output[-20:]))
    pids = state_pids(state)
    leftovers.extend(pids)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, rest
    assert "meshscope: the mesh is down" in rest
    # A graceful stop: every server drained and exited 0 (none killed), Consul only after all of them.
    stops = re.findall(r"\| (\S+) stopped \(rc=(-?\d+)\)", rest)
    assert stops and all(code != "-9" for _, code in stops), stops
    servers = [name for name, code in stops if name != "consul"]
    assert all(code == "0" for name, code in stops if name != "consul"), stops
    assert [name for name, _ in stops][-1] == "consul", stops
    assert len(servers) == 8  # six agents, the orchestrator, the bridge
    # Consul runs in its own folder: started from the repository, it must not read `services/` as its own.
    assert "Failed decoding service file" not in "".join(output) + rest
    assert wait_gone(pids) == []
    assert not (state / "up.json").exists()


def test_a_bad_mesh_file_fails_before_anything_starts(tmp_path: Path) -> None:
    mesh = tmp_path / "bad.yaml"
    mesh.write_text("agents:\n  analyst: {replicas: 0}\n")
    done = cli(["up", "-f", str(mesh)], up_env(tmp_path / "state"), timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"meshscope: {mesh}:2: agents.analyst.replicas: must be a whole number 1-64"
    ]
    assert not (tmp_path / "state" / "up.json").exists()


def test_a_port_in_use_fails_before_anything_starts(tmp_path: Path) -> None:
    import socket

    mesh = tmp_path / "mesh.yaml"
    bridge = with_free_ports(REPO / "mesh.yaml", mesh)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", bridge))
        taken.listen()
        done = cli(["up", "-f", str(mesh)], up_env(tmp_path / "state"), timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"meshscope: port {bridge} (the bridge) is in use: stop what holds it, or set another in the mesh "
        "file's up.ports"
    ]
    assert "starting" not in done.stdout


@pytest.mark.local_model
def test_the_demo_brings_the_mesh_up_and_streams_answers_through_the_bridge(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="the `local` model needs the [local] extra (make setup)")
    mesh = tmp_path / "mesh.yaml"
    with_free_ports(REPO / "mesh.yaml", mesh)
    state = tmp_path / "state"
    env = up_env(state)
    env.pop("MESHSCOPE_MODEL")  # the demo's own model: the mesh file's `local`
    try:
        demo = subprocess.run(
            [sys.executable, "-m", "meshscope.cli.demo", "-f", str(mesh)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        pids = state_pids(state)
    finally:
        cli(["down"], env, timeout=60)
    out = demo.stdout
    for step, agent in (
        ("analyst", "analyst"),
        ("writer", "writer"),
        ("plan", "manager"),
        ("reporter", "reporter"),
    ):
        assert re.search(rf"--- \[{step}\] {agent} @ {agent}@127\.0\.0\.1:\d+\n\S", out), (step, out[-3000:])
    assert out.count("completed in") == 3
    assert "Stop it with: .venv/bin/meshscope down" in out
    assert wait_gone(pids) == []


def test_replicas_without_redis_are_warned_about(tmp_path: Path, leftovers: list[int]) -> None:
    mesh = tmp_path / "split.yaml"
    consul, orchestrator, bridge = free_ports(3)
    mesh.write_text(
        "agents:\n  researcher: {replicas: 2}\n"
        f"up:\n  ports: {{consul: {consul}, orchestrator: {orchestrator}, bridge: {bridge}, agents: 0}}\n"
    )
    state = tmp_path / "state"
    env = up_env(state)
    started = cli(["up", "-f", str(mesh), "--detach"], env)
    assert started.returncode == 0, started.stdout + started.stderr
    leftovers.extend(state_pids(state))
    try:
        listed = cli(
            ["agents"], {**env, "CONSUL_HTTP_ADDR": f"127.0.0.1:{consul}", "MESHSCOPE_DISCOVERY": "consul"}
        )
        assert listed.returncode == 0, listed.stderr
        assert listed.stderr.splitlines() == [
            "meshscope: warning: researcher has 2 replicas keeping sessions in their own memory: a session's "
            "turns split between them; set REDIS_URL on every replica (meshscope up: up.redis: true)"
        ]
        warning = "researcher has 2 replicas keeping sessions in their own memory"
        wait_until(lambda: warning in (state / "up.log").read_text(), timeout=20)  # the orchestrator's watch
        assert (state / "up.log").read_text().count(warning) == 1  # said once
    finally:
        cli(["down"], env, timeout=60)


@pytest.mark.parametrize(
    "command",
    [
        ["up"],
        ["status"],
        ["down"],
        ["run"],
        ["pipelines"],
        ["sessions"],
        ["agents"],
        ["serve", "agents"],
        ["serve", "orchestrator"],
        ["serve", "bridge"],
    ],
    ids=" ".join,
)
def test_every_help_names_its_defaults_and_the_environment_it_reads(command: list[str]) -> None:
    done = cli([*command, "--help"], child_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "default" in done.stdout, done.stdout
    assert re.search(r"\b(MESHSCOPE|CONSUL)_[A-Z_]+", done.stdout), done.stdout


def test_a_state_folder_that_cannot_be_made_fails_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    mesh = tmp_path / "mesh.yaml"
    with_free_ports(REPO / "mesh.yaml", mesh)
    done = cli(["up", "-f", str(mesh)], up_env(blocker / "state"), timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"meshscope: cannot make the state folder {blocker / 'state'} (MESHSCOPE_STATE_DIR): Not a directory"
    ]
