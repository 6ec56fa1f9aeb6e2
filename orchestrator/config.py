"""Orchestrator settings, from flags and the environment.

The orchestrator's own knobs (flags override the environment):

  --port / MESHSCOPE_ORCHESTRATOR_PORT   port (0: any free)                       50050
  --host / MESHSCOPE_ORCHESTRATOR_HOST   bind address                             127.0.0.1
  -f FILE / MESHSCOPE_MESH_FILE          the mesh file (agents and pipelines)     mesh.yaml
  MESHSCOPE_RUN_TIMEOUT_S                a run's deadline when the caller sets none  300
  MESHSCOPE_RETRY_ATTEMPTS               replicas tried per step before the first event  3
  MESHSCOPE_EJECT_S                      how long a failed replica is skipped     5
  MESHSCOPE_PANIC_GRACE_S                when discovery drops every replica of an agent at
                                         once, keep routing to them this long (0: never)  10
  MESHSCOPE_MAX_PENDING_STREAMS          streams to one replica still waiting for their first
                                         event; more wait in the orchestrator (below the agent
                                         server's gRPC default of 1000 pending requests)  500

What every server reads (shutdown pause and grace, message limits, keepalive, pending requests,
TLS, the mesh token) is read once for all of them by `meshscope.serving.ServeSettings`; the
same limits, keepalive and security apply to the orchestrator's channels to agent replicas.
Discovery settings (MESHSCOPE_DISCOVERY, CONSUL_*...) are read by `discovery.config`.

Every knob is read through `meshscope.config.Config`: a bad value stops the process at start with
one line naming the variable (`ConfigError`; `OrchestratorConfigError` is its old name). Counts and
the port are whole numbers; MESHSCOPE_RUN_TIMEOUT_S is 0.001-2147483647 s, MESHSCOPE_EJECT_S
0-2147483647 s, MESHSCOPE_PANIC_GRACE_S 0-3600 s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

from meshscope.config import MAX_BYTES, Config, ConfigError
from meshscope.serving import ServeSettings

DEFAULT_ORCHESTRATOR_PORT = 50050

OrchestratorConfigError = ConfigError
"""The old name of `meshscope.config.ConfigError`, kept for importers."""

MAX_NUMBER = MAX_BYTES
"""Upper bound of the counts and of the run timeout and ejection: gRPC takes sizes as 32-bit integers."""
MAX_PANIC_GRACE_S = 3600.0
"""Routing to replicas that failed every check for over an hour would hide an outage."""


@dataclass(frozen=True)
class OrchestratorSettings(ServeSettings):
    """How the orchestrator serves and routes (see the module docstring)."""

    port: int = DEFAULT_ORCHESTRATOR_PORT
    mesh_file: str = "mesh.yaml"
    run_timeout_s: float = 300.0
    retry_attempts: int = 3
    eject_s: float = 5.0
    panic_grace_s: float = 10.0
    max_pending_streams: int = 500

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read every knob from `environ` (default os.environ); ConfigError names a bad one."""
        config = Config(environ)
        d = cls()
        return cls(
            **cls.read_serving(
                config,
                host_variable="MESHSCOPE_ORCHESTRATOR_HOST",
                port_variable="MESHSCOPE_ORCHESTRATOR_PORT",
                default_port=DEFAULT_ORCHESTRATOR_PORT,
            ),
            mesh_file=config.string("MESHSCOPE_MESH_FILE", d.mesh_file),
            run_timeout_s=config.seconds(
                "MESHSCOPE_RUN_TIMEOUT_S", d.run_timeout_s, minimum=0.001, maximum=MAX_NUMBER
            ),
            retry_attempts=config.count("MESHSCOPE_RETRY_ATTEMPTS", d.retry_attempts, maximum=MAX_NUMBER),
            eject_s=config.seconds("MESHSCOPE_EJECT_S", d.eject_s, maximum=MAX_NUMBER),
            panic_grace_s=config.seconds(
                "MESHSCOPE_PANIC_GRACE_S", d.panic_grace_s, maximum=MAX_PANIC_GRACE_S
            ),
            max_pending_streams=config.count("MESHSCOPE_MAX_PENDING_STREAMS", d.max_pending_streams),
        )
