"""The mesh the chaos run breaks: real processes, each one restartable on its own address.

`meshscope up` supervises with honcho, which stops every process when one exits: right for a
developer's mesh, wrong for a fault injector that kills one replica and expects the rest to carry on.
So the harness is its own supervisor, starting what `meshscope up` starts, the same way the tests
do: a Consul dev agent and a Redis server (AOF on) from `meshscope.testing`, `REPLICAS` agent
processes serving `analyst` (scripted model, registered in Consul, sessions on Redis), the
orchestrator (Consul discovery) and the bridge (SQLite task store in the run's folder). Every
process keeps its port across restarts, as a restarted replica or bridge does in production.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

from meshscope.cli.launch import ServiceProcess, launch, meshscope_command
from meshscope.testing import ConsulDevAgent, RedisDevServer, child_env, free_ports

__all__ = ["AGENT", "ChaosMesh"]

AGENT = "analyst"
REPLICAS = 2
ENV = {
    "MESHSCOPE_LOG_LEVEL": "WARNING",
    # Faults are found within a second: Consul checks every replica each second, a Redis command that
    # gets no answer in 1 s fails (the stall test's "longer than the socket timeout"). A killed
    # replica's session locks outlive it by at most their TTL (10 s, renewed while a turn runs); a
    # turn that finds one waits for it (docs/operations.md, "Replicas that may crash").
    "MESHSCOPE_CONSUL_CHECK_INTERVAL_S": "1",
    "MESHSCOPE_REDIS_SOCKET_TIMEOUT_S": "1",
    "MESHSCOPE_SESSION_LOCK_TTL_S": "10",
    "MESHSCOPE_SESSION_LOCK_WAIT_S": "15",
    "MESHSCOPE_SHUTDOWN_GRACE_S": "15",
    "MESHSCOPE_BRIDGE_RATE_LIMIT": "off",
}


@dataclass
class ChaosMesh:
    folder: Path
    consul: ConsulDevAgent = field(init=False)
    redis: RedisDevServer = field(init=False)
    ports: list[int] = field(init=False)
    replicas: list[ServiceProcess | None] = field(init=False)
    orchestrator: ServiceProcess | None = None
    bridge: ServiceProcess | None = None
    lives: list[tuple[str, ServiceProcess]] = field(default_factory=list)
    """Every process started, restarts included (whose logs are checked too)."""

    def __post_init__(self) -> None:
        self.consul = ConsulDevAgent(self.folder / "consul")
        self.redis = RedisDevServer(self.folder / "redis")
        *self.ports, self.orchestrator_port, self.bridge_port = free_ports(REPLICAS + 2)
        self.replicas = [None] * REPLICAS

    # ------------------------------------------------------------ addresses

    @property
    def bridge_url(self) -> str:
        return f"http://127.0.0.1:{self.bridge_port}"

    @property
    def orchestrator_address(self) -> str:
        return f"127.0.0.1:{self.orchestrator_port}"

    def replica_id(self, index: int) -> str:
        return f"{AGENT}@127.0.0.1:{self.ports[index]}"

    def _env(self) -> dict[str, str]:
        return child_env({**ENV, **self.consul.env(), "REDIS_URL": self.redis.url})

    # ------------------------------------------------------------ processes

    def start(self) -> None:
        self.consul.start()
        self.redis.start()
        for index in range(REPLICAS):
            self.start_replica(index)
        mesh_file = self.folder / "mesh.yaml"
        mesh_file.write_text(f"agents: [{AGENT}]\n")
        command = meshscope_command(
            "serve", "orchestrator", "-f", str(mesh_file), "--port", str(self.orchestrator_port)
        )
        self.orchestrator = self._launched("orchestrator", command, self._env())
        self.start_bridge()

    def _launched(self, name: str, command: list[str], env: dict[str, str]) -> ServiceProcess:
        process = launch(command, env)
        self.lives.append((name, process))
        return process

    def start_replica(self, index: int) -> None:
        command = meshscope_command(
            "serve", "agents", "--agents", AGENT, "--model", "scripted", "--port", str(self.ports[index])
        )
        self.replicas[index] = self._launched(f"replica {index}", command, self._env())

    def signal_replica(self, index: int, sig: signal.Signals) -> None:
        replica = self.replicas[index]
        assert replica is not None
        replica.proc.send_signal(sig)

    def wait_replica(self, index: int, timeout: float = 60) -> int:
        replica = self.replicas[index]
        assert replica is not None
        return replica.proc.wait(timeout)

    def start_bridge(self) -> None:
        self.bridge = self._launched(
            "bridge",
            meshscope_command("serve", "bridge", "--port", str(self.bridge_port)),
            self._env()
            | {
                "MESHSCOPE_ORCHESTRATOR": self.orchestrator_address,
                "MESHSCOPE_BRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{self.folder / 'bridge.db'}",
            },
        )

    def kill_bridge(self) -> None:
        assert self.bridge is not None
        self.bridge.proc.kill()
        self.bridge.proc.wait()

    def stop(self) -> None:
        """Everything, gracefully (SIGTERM, waiting); what a run left behind is stopped too."""
        for process in (self.bridge, self.orchestrator, *self.replicas):
            if process is not None:
                process.stop()
        self.redis.stop()
        self.consul.stop()

    def logs(self) -> list[tuple[str, list[str]]]:
        """What every process printed, each life of a restarted one on its own."""
        return [(name, process.log) for name, process in self.lives]
