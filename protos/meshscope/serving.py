"""How every meshscope server serves: address, shutdown timing, gRPC server options, security.

One settings class, read in one place, for the agent services, the orchestrator and (next)
the bridge. Each process names its own host and port variables (MESHSCOPE_HOST/PORT for
agents, MESHSCOPE_ORCHESTRATOR_HOST/PORT for the orchestrator); everything else is shared:

  MESHSCOPE_SHUTDOWN_PAUSE_S          NOT_SERVING -> drain pause, so health watchers drop the
                                      server before it stops taking calls            1
  MESHSCOPE_SHUTDOWN_GRACE_S          how long in-flight calls may finish on SIGTERM   10
  MESHSCOPE_GRPC_MAX_PENDING_REQUESTS new calls gRPC holds before the application takes them;
                                      past it gRPC cancels them at random, all at 3x   10000
  MESHSCOPE_GRPC_MAX_PENDING_S        how long a new call may wait for the application before
                                      gRPC cancels it (1-86400 s)                      300
  MESHSCOPE_GRPC_MAX_MESSAGE_BYTES, MESHSCOPE_GRPC_KEEPALIVE_TIME_S, _KEEPALIVE_TIMEOUT_S,
  MESHSCOPE_GRPC_MIN_PING_INTERVAL_S  as for channels (`meshscope.channels`)
  MESHSCOPE_TLS_*, MESHSCOPE_MESH_TOKEN  transport security (`meshscope.security`)

A bad value raises `ConfigError` with one line naming the variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshscope.channels import ChannelSettings
from meshscope.config import MAX_BYTES, Config
from meshscope.security import Security

__all__ = ["MAX_PENDING_REQUESTS", "ServeSettings"]

MAX_PENDING_REQUESTS = MAX_BYTES // 3
"""gRPC is given three times the pending-requests knob as its hard limit, a 32-bit integer."""


@dataclass(frozen=True)
class ServeSettings(ChannelSettings):
    """A server's settings: its channels' (limits, keepalive, security) and its own.

    `host` is bound as given (`0.0.0.0` or `::` for every interface); `port` 0 picks a free
    port. Durations in seconds. Subclasses add what their process alone reads and give
    `port` its default.
    """

    host: str = "127.0.0.1"
    port: int = 0
    shutdown_pause_s: float = 1.0
    shutdown_grace_s: float = 10.0
    max_pending_requests: int = 10_000
    max_pending_s: float = 300.0

    @classmethod
    def read_serving(
        cls, config: Config, *, host_variable: str, port_variable: str, default_port: int
    ) -> dict[str, Any]:
        """Every knob of a server, as keyword arguments for `cls`: ConfigError names a bad one."""
        d = ServeSettings()
        return {
            **cls.read(config),
            "security": Security.from_config(config, serving=True),
            "host": config.string(host_variable, d.host),
            "port": config.port(port_variable, default_port),
            "shutdown_pause_s": config.seconds("MESHSCOPE_SHUTDOWN_PAUSE_S", d.shutdown_pause_s),
            "shutdown_grace_s": config.seconds("MESHSCOPE_SHUTDOWN_GRACE_S", d.shutdown_grace_s),
            "max_pending_requests": config.count(
                "MESHSCOPE_GRPC_MAX_PENDING_REQUESTS", d.max_pending_requests, maximum=MAX_PENDING_REQUESTS
            ),
            "max_pending_s": config.seconds(
                "MESHSCOPE_GRPC_MAX_PENDING_S", d.max_pending_s, minimum=1, maximum=86_400
            ),
        }

    def server_options(self) -> list[tuple[str, Any]]:
        """gRPC arguments of the server: its channels', plus room for bursts of new calls.

        gRPC's server holds calls that arrived before the application asked for them
        ("pending requests"): past `grpc.server.max_pending_requests` (1000 by default) it
        cancels new ones at random, more the fuller it is, and every one at the hard limit
        (3x). The caller sees CANCELLED with nothing streamed, as if it had cancelled itself;
        a burst of 1,500 streams opened at once crosses 1000 on two cores. A pending call is
        also cancelled the same way once it has waited `grpc.server_max_unrequested_time_in_server`
        (30 s by default): on a saturated machine a burst's last calls wait that long while
        their deadlines still allow it (15 of 1,500 were cut so at a load average of 9), so the
        wait is raised to `max_pending_s` and the callers' deadlines decide.
        """
        return [
            *self.channel_options(),
            ("grpc.server.max_pending_requests", self.max_pending_requests),
            ("grpc.server.max_pending_requests_hard_limit", 3 * self.max_pending_requests),
            ("grpc.server_max_unrequested_time_in_server", max(1, round(self.max_pending_s))),
        ]
