"""Orchestrator settings, from flags and the environment.

  --port / MESHSCOPE_ORCHESTRATOR_PORT   port (0: any free)                       50050
  --host / MESHSCOPE_ORCHESTRATOR_HOST   bind address                             127.0.0.1
  -f FILE / MESHSCOPE_MESH_FILE          the mesh file (agents and pipelines)     mesh.yaml
  MESHSCOPE_RUN_TIMEOUT_S                a run's deadline when the caller sets none  300
  MESHSCOPE_RETRY_ATTEMPTS               replicas tried per step before the first event  3
  MESHSCOPE_EJECT_S                      how long a failed replica is skipped     5
  MESHSCOPE_PANIC_GRACE_S                when discovery drops every replica of an agent at
                                         once, keep routing to them this long (0: never)  10
  MESHSCOPE_GRPC_MAX_MESSAGE_BYTES       largest message accepted or sent         4194304
  MESHSCOPE_SHUTDOWN_PAUSE_S             NOT_SERVING -> drain pause on SIGTERM     1
  MESHSCOPE_SHUTDOWN_GRACE_S             how long in-flight runs may finish on SIGTERM  10
  MESHSCOPE_GRPC_KEEPALIVE_TIME_S        ping an idle connection after this long  30
  MESHSCOPE_GRPC_KEEPALIVE_TIMEOUT_S     and drop it if the ping is not answered  10
  MESHSCOPE_GRPC_MIN_PING_INTERVAL_S     peers may ping at most this often        10
  MESHSCOPE_GRPC_MAX_PENDING_REQUESTS    new calls the orchestrator's server holds before the
                                         application takes them; beyond it gRPC cancels them at
                                         random, all of them at 3x (gRPC's own default: 1000)  10000
  MESHSCOPE_MAX_PENDING_STREAMS          streams to one replica still waiting for their first
                                         event; more wait in the orchestrator (below the agent
                                         server's gRPC default of 1000 pending requests)  500
  (the keepalive knobs mean what they mean for agent services, and apply to the
  orchestrator's server and to its channels to agent replicas)

Discovery settings (MESHSCOPE_DISCOVERY, CONSUL_*...) are read by `discovery.config`.

Every knob is read through `meshscope.config.Config`: a bad value stops the process at start with
one line naming the variable (`ConfigError`; `OrchestratorConfigError` is its old name). Counts and
the port are whole numbers; the durations other than keepalive are 0-2147483647 s
(MESHSCOPE_RUN_TIMEOUT_S from 0.001), MESHSCOPE_PANIC_GRACE_S is 0-3600.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from meshscope.config import MAX_BYTES, Config, ConfigError
from meshscope.wire import DEFAULT_MAX_MESSAGE_BYTES

DEFAULT_ORCHESTRATOR_PORT = 50050

OrchestratorConfigError = ConfigError
"""The old name of `meshscope.config.ConfigError`, kept for importers."""

MAX_NUMBER = MAX_BYTES
"""Upper bound of the sizes, counts and non-keepalive durations: gRPC takes sizes as 32-bit integers."""
MAX_KEEPALIVE_S = 2_000_000
"""Keepalive settings go to gRPC in milliseconds, as 32-bit integers."""
MAX_PANIC_GRACE_S = 3600.0
"""Routing to replicas that failed every check for over an hour would hide an outage."""
MAX_PENDING_REQUESTS = MAX_NUMBER // 3
"""The hard limit gRPC is given is three times the knob, and must stay a 32-bit integer."""


@dataclass(frozen=True)
class OrchestratorSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_ORCHESTRATOR_PORT
    mesh_file: str = "mesh.yaml"
    run_timeout_s: float = 300.0
    retry_attempts: int = 3
    eject_s: float = 5.0
    panic_grace_s: float = 10.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    shutdown_grace_s: float = 10.0
    shutdown_pause_s: float = 1.0
    keepalive_time_s: float = 30.0
    keepalive_timeout_s: float = 10.0
    min_ping_interval_s: float = 10.0
    max_pending_requests: int = 10_000
    max_pending_streams: int = 500

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OrchestratorSettings:
        """Read every knob from `environ` (default os.environ); ConfigError names a bad one."""
        config = Config(environ)
        d = cls()

        def seconds(name: str, default: float, minimum: float = 0.0, maximum: float = MAX_NUMBER) -> float:
            return config.seconds(name, default, minimum=minimum, maximum=maximum)

        return cls(
            host=config.string("MESHSCOPE_ORCHESTRATOR_HOST", d.host),
            port=config.port("MESHSCOPE_ORCHESTRATOR_PORT", d.port),
            mesh_file=config.string("MESHSCOPE_MESH_FILE", d.mesh_file),
            run_timeout_s=seconds("MESHSCOPE_RUN_TIMEOUT_S", d.run_timeout_s, 0.001),
            retry_attempts=config.count("MESHSCOPE_RETRY_ATTEMPTS", d.retry_attempts, maximum=MAX_NUMBER),
            eject_s=seconds("MESHSCOPE_EJECT_S", d.eject_s),
            panic_grace_s=seconds("MESHSCOPE_PANIC_GRACE_S", d.panic_grace_s, maximum=MAX_PANIC_GRACE_S),
            max_message_bytes=config.bytes("MESHSCOPE_GRPC_MAX_MESSAGE_BYTES", d.max_message_bytes),
            shutdown_grace_s=seconds("MESHSCOPE_SHUTDOWN_GRACE_S", d.shutdown_grace_s),
            shutdown_pause_s=seconds("MESHSCOPE_SHUTDOWN_PAUSE_S", d.shutdown_pause_s),
            keepalive_time_s=seconds(
                "MESHSCOPE_GRPC_KEEPALIVE_TIME_S", d.keepalive_time_s, maximum=MAX_KEEPALIVE_S
            ),
            keepalive_timeout_s=seconds(
                "MESHSCOPE_GRPC_KEEPALIVE_TIMEOUT_S", d.keepalive_timeout_s, maximum=MAX_KEEPALIVE_S
            ),
            min_ping_interval_s=seconds(
                "MESHSCOPE_GRPC_MIN_PING_INTERVAL_S", d.min_ping_interval_s, maximum=MAX_KEEPALIVE_S
            ),
            max_pending_requests=config.count(
                "MESHSCOPE_GRPC_MAX_PENDING_REQUESTS", d.max_pending_requests, maximum=MAX_PENDING_REQUESTS
            ),
            max_pending_streams=config.count("MESHSCOPE_MAX_PENDING_STREAMS", d.max_pending_streams),
        )

    def with_overrides(self, **overrides: Any) -> OrchestratorSettings:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def channel_options(self) -> list[tuple[str, int]]:
        """For the server and for the channels to agent replicas."""
        return [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.keepalive_time_ms", int(self.keepalive_time_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_s * 1000)),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", int(self.min_ping_interval_s * 1000)),
            ("grpc.so_reuseport", 0),
        ]

    def server_options(self) -> list[tuple[str, int]]:
        """For the orchestrator's own server: the channel options, plus room for bursts of new calls.

        gRPC's server holds calls that arrived before the application asked for them
        ("pending requests"): past `grpc.server.max_pending_requests` (1000 by default) it
        cancels new ones at random, more the fuller it is, and every one at the hard
        limit (3000). The caller sees CANCELLED with nothing streamed, as if it had
        cancelled itself. A burst of 1,500 runs opened at once crosses 1000 on two cores.
        """
        return [
            *self.channel_options(),
            ("grpc.server.max_pending_requests", self.max_pending_requests),
            ("grpc.server.max_pending_requests_hard_limit", 3 * self.max_pending_requests),
        ]
