"""The systems of the peers run: their server processes, and the client that drives each.

| key            | processes (each its own)                               | client          |
| -------------- | ------------------------------------------------------ | --------------- |
| raw-1hop       | raw echo (bench/peers/raw_grpc.py)                     | `TinyClient`    |
| raw-2hop       | raw relay -> the same raw echo                         | `TinyClient`    |
| agentscope-rt  | AgentScope Runtime `AgentApp` (its own venv)           | `AgentAppClient`|
| a2a-sdk        | bare a2a-sdk 1.3.0 JSON-RPC server                     | `A2aClient`     |
| direct         | `meshscope serve agents --agents echo`, session/turn   | `AgentClient`   |
| direct-ns      | another such process, turns without a session          | `AgentClient`   |
| orchestrated   | `meshscope serve orchestrator` -> its own echo agent   | `RunClient`     |
| bridge         | `meshscope serve bridge` -> orchestrator -> echo agent | `A2aClient`     |
| bridge-pd      | the same, each delta its own artifact update           | `A2aClient`     |
| bridge-mem     | the bridge with its tasks in memory                    | `A2aClient`     |
| bridge-mem-pd  | that, each delta its own update (as the bare peer)     | `A2aClient`     |

A system's CPU and RSS are those of all its processes (the 2-hop relay's include the echo
server behind it; the orchestrated path's, the orchestrator and its agent; the bridge's, the
bridge, its orchestrator and its agent). `bridge` runs as shipped (its SQLite task store in a
temporary folder, deltas coalesced per MESHSCOPE_BRIDGE_FLUSH_MS's default); `bridge-pd` sends
each of the 20 deltas as its own artifact update, as the bare a2a-sdk peer does; `bridge-mem` and
`bridge-mem-pd` are the same two with a2a-sdk's in-memory task store, as the bare peer has
(`bridge-mem-pd` is the like-for-like one: the bridge's own cost, without its store). The rate
limit is off in all four: one load generator is one client address, and 64 clients would
exceed the default 600 requests a minute. Every process is
started before the first measurement and stopped at the end; an idle one costs nothing.
The AgentScope Runtime system needs `.build/peers-venv` (`make peers-venv`); without a usable
one it is left out with one line saying why.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.peers.clients import A2aClient, AgentAppClient, AgentClient, RunClient, TinyClient, TurnClient
from bench.processes import REPO, ServerProcess, child_env, start_agent_server, start_server
from meshscope.cli.launch import LaunchError, launch, meshscope_command

PEERS_VENV = REPO / ".build" / "peers-venv"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
PEERS_PROBE = (
    "import importlib.metadata as m, agentscope_runtime.engine.app; "
    "print(', '.join(p + ' ' + m.version(p) for p in ('agentscope-runtime', 'agentscope', 'a2a-sdk')))"
)


@dataclass(frozen=True)
class SystemSpec:
    """A system's name and what it is."""

    key: str
    label: str
    hops: int


SPECS = {
    spec.key: spec
    for spec in (
        SystemSpec("raw-1hop", "raw grpc.aio, 1 hop", 1),
        SystemSpec("raw-2hop", "raw grpc.aio, 2-hop relay", 2),
        SystemSpec("agentscope-rt", "AgentScope Runtime 1.1.6 AgentApp (SSE)", 1),
        SystemSpec("a2a-sdk", "bare a2a-sdk 1.3.0 (JSON-RPC SSE)", 1),
        SystemSpec("direct", "meshscope direct (session per turn)", 1),
        SystemSpec("direct-ns", "meshscope direct (no session)", 1),
        SystemSpec("orchestrated", "meshscope orchestrated (client → orchestrator → agent)", 2),
        SystemSpec("bridge", "meshscope A2A bridge (A2A client → bridge → orchestrator → agent)", 3),
        SystemSpec("bridge-pd", "meshscope A2A bridge, an artifact update per delta", 3),
        SystemSpec("bridge-mem", "meshscope A2A bridge, tasks in memory", 3),
        SystemSpec("bridge-mem-pd", "meshscope A2A bridge, tasks in memory, an update per delta", 3),
    )
}
"""Every system, in the order tables list them."""


@dataclass
class System:
    """A system under test: its name, the processes whose CPU and RSS are its, its client."""

    spec: SystemSpec
    processes: Sequence[ServerProcess]
    client: TurnClient

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def label(self) -> str:
        return self.spec.label

    def cpu_seconds(self) -> float:
        """User + system CPU of all the system's processes, in seconds."""
        return sum(p.cpu_seconds() for p in self.processes)

    def rss_mib(self) -> dict[str, float]:
        """VmRSS of each of the system's processes, in MiB, by process label."""
        return {p.label: p.rss_mib() for p in self.processes}


def peers_venv_status() -> tuple[bool, str]:
    """Whether `.build/peers-venv` can run the AgentScope Runtime app, and what it holds or lacks."""
    if not PEERS_PYTHON.exists():
        return False, f"no {PEERS_VENV.relative_to(REPO)} (`make peers-venv` builds it)"
    probe = subprocess.run(
        [str(PEERS_PYTHON), "-c", PEERS_PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return False, f"{PEERS_VENV.relative_to(REPO)} cannot import agentscope_runtime ({last})"
    return True, probe.stdout.strip()


def _orchestrator(stack: ExitStack, agent: str) -> ServerProcess:
    """`meshscope serve orchestrator` over a one-agent mesh, the agent found statically."""
    mesh = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="meshscope-peers-"))) / "mesh.yaml"
    mesh.write_text("agents: [echo]\n")
    env = child_env() | {"MESHSCOPE_STATIC_ENDPOINTS": f"echo={agent}"}
    command = meshscope_command("serve", "orchestrator", "-f", str(mesh), "--port", "0")
    return ServerProcess("orchestrator", launch(command, env, cwd=REPO))


BRIDGES = {
    "bridge": ("sqlite", None),
    "bridge-pd": ("sqlite", "0"),
    "bridge-mem": ("memory", None),
    "bridge-mem-pd": ("memory", "0"),
}
"""Each bridge system's task store and MESHSCOPE_BRIDGE_FLUSH_MS (None: the default)."""


def _bridge(stack: ExitStack, orchestrator: str, store: str, flush_ms: str | None) -> ServerProcess:
    """`meshscope serve bridge` in front of `orchestrator`: its task store in memory or in SQLite
    in a temporary folder, deltas coalesced unless `flush_ms` is "0"."""
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="meshscope-peers-bridge-")))
    env = child_env() | {
        "MESHSCOPE_ORCHESTRATOR": orchestrator,
        "MESHSCOPE_BRIDGE_DATABASE_URL": "memory"
        if store == "memory"
        else f"sqlite+aiosqlite:///{folder / 't.db'}",
        "MESHSCOPE_BRIDGE_RATE_LIMIT": "off",
    }
    if flush_ms is not None:
        env["MESHSCOPE_BRIDGE_FLUSH_MS"] = flush_ms
    command = meshscope_command("serve", "bridge", "--port", "0")
    return ServerProcess("bridge", launch(command, env, cwd=REPO))


def _agentscope_runtime() -> ServerProcess:
    command = [str(PEERS_PYTHON), str(REPO / "bench" / "peers" / "agentscope_runtime_app.py")]
    return ServerProcess("agentscope-runtime", launch(command, child_env(), cwd=REPO, timeout=120))


def start_systems(
    stack: ExitStack,
    keys: Sequence[str],
    connections: int,
    *,
    raw_fault: str = "none",
    say: Callable[[str], None] = print,
) -> list[System]:
    """Start the processes of the systems named by `keys` (each stopped by `stack`).

    `connections` sizes the HTTP clients' pools (the concurrent clients); `raw_fault` makes
    the raw echo server stream a wrong reply (`bench.peers.raw_grpc.FAULTS`). A system that
    cannot start is reported through `say` and left out only when it is the AgentScope
    Runtime peer (its venv is optional); any other failure raises LaunchError.
    """

    def started(server: ServerProcess) -> ServerProcess:
        stack.callback(server.stop)
        return server

    wanted = set(keys)
    systems: list[System] = []
    if wanted & {"raw-1hop", "raw-2hop"}:
        echo = started(start_server("raw echo", ["-m", "bench.peers.raw_grpc", "echo", "--fault", raw_fault]))
        if "raw-1hop" in wanted:
            systems.append(System(SPECS["raw-1hop"], [echo], TinyClient("raw-1hop", echo.address)))
        if "raw-2hop" in wanted:
            relay = started(start_server("raw relay", ["-m", "bench.peers.raw_grpc", "relay", echo.address]))
            systems.append(System(SPECS["raw-2hop"], [relay, echo], TinyClient("raw-2hop", relay.address)))
    if "agentscope-rt" in wanted:
        ok, what = peers_venv_status()
        if not ok:
            say(f"skipped: AgentScope Runtime — {what}")
        else:
            say(f"AgentScope Runtime peer: {what} (in {PEERS_VENV.relative_to(REPO)})")
            try:
                app = started(_agentscope_runtime())
            except LaunchError as exc:
                say(f"skipped: AgentScope Runtime — its app did not start: {exc}")
            else:
                app_client = AgentAppClient("agentscope-rt", app.address, connections)
                systems.append(System(SPECS["agentscope-rt"], [app], app_client))
    if "a2a-sdk" in wanted:
        a2a = started(start_server("a2a-sdk", ["-m", "bench.peers.a2a_echo"]))
        systems.append(System(SPECS["a2a-sdk"], [a2a], A2aClient("a2a-sdk", a2a.address, connections)))
    for key, sessions in (("direct", True), ("direct-ns", False)):
        if key in wanted:
            # One agent process each: the sessions `direct` keeps in memory (and the garbage
            # collector's work over them) must not weigh on `direct-ns`.
            agent = started(start_agent_server(f"meshscope agent ({key})", "echo"))
            direct = AgentClient(key, agent.address, sessions=sessions)
            systems.append(System(SPECS[key], [agent], direct))
    if "orchestrated" in wanted:
        behind = started(start_agent_server("agent behind orchestrator", "echo"))
        orchestrator = started(_orchestrator(stack, behind.address))
        run = RunClient("orchestrated", orchestrator.address)
        systems.append(System(SPECS["orchestrated"], [orchestrator, behind], run))
    for key, (store, flush_ms) in BRIDGES.items():
        if key not in wanted:
            continue
        agent = started(start_agent_server(f"agent behind {key}", "echo"))
        orchestrator = started(_orchestrator(stack, agent.address))
        bridge = started(_bridge(stack, orchestrator.address, store, flush_ms))
        address = bridge.address.removeprefix("http://")
        client = A2aClient(
            key, address, connections, path="/agents/echo/", final_text=True, joined=flush_ms is None
        )
        systems.append(System(SPECS[key], [bridge, orchestrator, agent], client))
    order = list(SPECS)
    return sorted(systems, key=lambda s: order.index(s.key))
