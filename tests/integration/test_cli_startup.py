"""The CLI loads only what a command needs (DESIGN.md §3), and `meshscope --version`.

Each test runs a real `meshscope` process with PYTHONPROFILEIMPORTTIME=1 (`-X importtime`):
the interpreter reports every module it imports on stderr, so the test reads what the
command loaded instead of timing it. `--help` and the orchestrator's clients must not load
AgentScope, the Redis client, the Consul client or aiohttp; `meshscope agents` loads the
Consul client (and so aiohttp), never AgentScope or Redis. The commands that do load
them (`agents` with Consul, `serve agents`) are checked too, so a report that stopped
listing modules would fail here rather than pass every test vacuously.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from meshscope.cli.launch import ServiceProcess
from meshscope.codec import Reply
from meshscope.services.runtime.client import AgentClient
from meshscope.testing import ConsulDevAgent, RedisDevServer, wait_until
from tests.support import run_cli, start_agents, start_orchestrator

pytestmark = pytest.mark.integration

HEAVY = frozenset({"agentscope", "redis", "consul", "aiohttp"})


def run_traced(
    args: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `meshscope ARGS`; its result and the top-level names of every module it imported."""
    result = run_cli(args, {"PYTHONPROFILEIMPORTTIME": "1", **(env or {})})
    loaded: set[str] = set()
    for line in result.stderr.splitlines():
        # "import time:       412 |        873 |   redis.client" (the header ends "imported package")
        if line.startswith("import time:") and not line.endswith("imported package"):
            loaded.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return result, loaded


def errors(result: subprocess.CompletedProcess[str]) -> str:
    """stderr without the import report: what the command itself said."""
    return "\n".join(line for line in result.stderr.splitlines() if not line.startswith("import time:"))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["run", "--help"],
        ["pipelines", "--help"],
        ["sessions", "--help"],
        ["sessions", "list", "--help"],
        ["agents", "--help"],
        ["serve", "agents", "--help"],
        ["serve", "orchestrator", "--help"],
    ],
)
def test_help_loads_no_agentscope_redis_or_consul(args: list[str]) -> None:
    result, loaded = run_traced(args)
    assert result.returncode == 0, errors(result)
    assert result.stdout.startswith("usage: meshscope")
    assert "argparse" in loaded  # the report is there: an empty one would prove nothing
    assert not loaded & HEAVY, sorted(loaded & HEAVY)


def test_version_prints_the_installed_distributions_version() -> None:
    result, loaded = run_traced(["--version"])
    assert result.returncode == 0, errors(result)
    assert result.stdout == f"meshscope {importlib.metadata.version('meshscope')}\n"
    assert not loaded & HEAVY, sorted(loaded & HEAVY)


CLIENT_COMMANDS: list[tuple[list[str], int, str]] = [
    # (arguments, exit status, how a line of its output starts), in order: later ones read earlier ones
    (["run", "echo", "hello mesh", "--session", "startup"], 0, "[echo @ echo@127.0.0.1:"),
    (["run", "twice", "hello mesh"], 0, "[echo @ echo@127.0.0.1:"),
    (["pipelines"], 0, "twice "),
    (["sessions", "list"], 0, "startup "),
    (["sessions", "show", "startup"], 0, "[echo] hello mesh"),
    (["sessions", "delete", "startup"], 0, "deleted session 'startup'"),
    (["run", "nobody", "x"], 1, "meshscope: NOT_FOUND: no agent or pipeline 'nobody'"),
]


def test_orchestrator_clients_load_no_agentscope_redis_or_consul(tmp_path: Path) -> None:
    """`run`, `pipelines` and `sessions` against a real orchestrator and echo agent (both processes)."""
    agents = start_agents(["--agents", "echo"])
    orchestrator: ServiceProcess | None = None
    try:
        orchestrator = start_orchestrator(
            tmp_path / "mesh.yaml",
            "agents: [echo]\npipelines:\n  twice: {kind: sequential, steps: [echo, echo]}\n",
            {"echo": agents.address},
        )
        for args, status, says in CLIENT_COMMANDS:
            result, loaded = run_traced(args, {"MESHSCOPE_ORCHESTRATOR": orchestrator.address})
            assert result.returncode == status, (args, errors(result))
            said = [*result.stdout.splitlines(), *errors(result).splitlines()]
            assert any(line.startswith(says) for line in said), (args, said)
            assert "grpc" in loaded, args  # it did talk to the orchestrator
            assert not loaded & HEAVY, (args, sorted(loaded & HEAVY))
    finally:
        if orchestrator is not None:
            orchestrator.stop()
        agents.stop()


def imported(lines: Sequence[str]) -> set[str]:
    """The top-level names of the modules an import report (`-X importtime` lines) lists."""
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in lines
        if line.startswith("import time:") and not line.endswith("imported package")
    }


def test_the_orchestrator_process_holds_only_what_a_relay_needs(tmp_path: Path) -> None:
    """Serving, and having relayed a pipeline's run, the orchestrator has not loaded AgentScope,
    pydantic or Redis; with static discovery not the Consul client (nor aiohttp) either."""
    agents = start_agents(["--agents", "echo"])
    orchestrator: ServiceProcess | None = None
    try:
        orchestrator = start_orchestrator(
            tmp_path / "mesh.yaml",
            "agents: [echo]\npipelines:\n  twice: {kind: sequential, steps: [echo, echo]}\n",
            {"echo": agents.address},
            env={"PYTHONPROFILEIMPORTTIME": "1"},
        )
        result = run_cli(["run", "twice", "hello"], {"MESHSCOPE_ORCHESTRATOR": orchestrator.address})
        assert result.returncode == 0, errors(result)
        orchestrator.stop()
        # Its output is read by a thread: everything before the shutdown line is in once that is.
        wait_until(lambda: any("shutting down" in line for line in orchestrator.log), timeout=10)
    finally:
        if orchestrator is not None:
            orchestrator.stop()
        agents.stop()
    loaded = imported(orchestrator.log)
    assert {"grpc", "meshscope", "yaml"} <= loaded  # the report lists what it did load
    assert not loaded & {*HEAVY, "pydantic"}, sorted(loaded & {*HEAVY, "pydantic"})


def test_agents_loads_the_consul_client_only_with_consul(tmp_path: Path) -> None:
    static, static_loaded = run_traced(["agents"], {"MESHSCOPE_STATIC_ENDPOINTS": "echo=127.0.0.1:50051"})
    assert static.returncode == 0, errors(static)
    assert "echo" in static.stdout
    assert not static_loaded & HEAVY, sorted(static_loaded & HEAVY)

    consul = ConsulDevAgent(tmp_path)
    consul.start()
    try:
        listed, loaded = run_traced(["agents", "--json"], consul.env())
    finally:
        consul.stop()
    assert listed.returncode == 0, errors(listed)
    assert listed.stdout.strip() == "{}"
    assert {"consul", "aiohttp"} <= loaded
    assert not loaded & {"agentscope", "redis"}, sorted(loaded & {"agentscope", "redis"})


def test_serving_agents_does_load_agentscope() -> None:
    """The other side of the rule, and proof that the import report sees AgentScope at all."""
    result, loaded = run_traced(["serve", "agents", "--agents", "poet"])
    assert result.returncode == 2
    assert errors(result).startswith("meshscope: unknown agent 'poet'")
    assert "agentscope" in loaded


def test_an_agent_with_sessions_in_memory_loads_no_redis_client(redis_server: RedisDevServer) -> None:
    """Without REDIS_URL an agent process never imports the Redis client (~8 MB of RSS), even
    having served a turn in a session; with REDIS_URL it does (so the report sees redis at all)."""
    loaded = {
        "memory": _served_a_turn_and_loaded({}),
        "redis": _served_a_turn_and_loaded({"REDIS_URL": redis_server.url}),
    }
    assert {"grpc", "meshscope", "agentscope"} <= loaded["memory"]
    assert "redis" not in loaded["memory"]
    assert "redis" in loaded["redis"]


def _served_a_turn_and_loaded(env: Mapping[str, str]) -> set[str]:
    """Start `serve agents --agents echo` with `env`, run one turn in a session, stop it: what it imported."""
    agents = start_agents(["--agents", "echo"], {"PYTHONPROFILEIMPORTTIME": "1", **env})
    try:
        reply = asyncio.run(_one_turn(agents.address))
        assert reply.error is None and reply.text.startswith("hello"), reply.error
        agents.stop()
        # Its output is read by a thread: everything before the shutdown line is in once that is.
        wait_until(lambda: any("shutting down" in line for line in agents.log), timeout=10)
    finally:
        agents.stop()
    return imported(agents.log)


async def _one_turn(address: str) -> Reply:
    reply = Reply()
    async with AgentClient(address) as client:
        async for event in client.invoke("echo", "hello", session_id="s1", timeout=30):
            reply.add(event)
    return reply
