"""Settings of an agent-service process, from flags and the environment.

Every knob, its variable and default (flags override the environment):

  MESHSCOPE_HOST                     bind address                     127.0.0.1
  MESHSCOPE_PORT                     first agent port (0 = any free)  50051
  MESHSCOPE_SHUTDOWN_PAUSE_S         NOT_SERVING -> drain pause, so
                                     health watchers drop the replica 1.0
  MESHSCOPE_SHUTDOWN_GRACE_S         how long in-flight turns may
                                     finish after SIGTERM             10
  MESHSCOPE_GRPC_MAX_MESSAGE_BYTES   largest message accepted or sent
                                     (larger: RESOURCE_EXHAUSTED)     4194304
  MESHSCOPE_GRPC_KEEPALIVE_TIME_S    server pings an idle connection
                                     after this long                  30
  MESHSCOPE_GRPC_KEEPALIVE_TIMEOUT_S and drops it if the ping is not
                                     answered within                  10
  MESHSCOPE_GRPC_MIN_PING_INTERVAL_S clients may ping at most this
                                     often (faster: GOAWAY)           10
  MESHSCOPE_GRPC_MAX_PENDING_REQUESTS new calls the server holds before
                                     the application takes them; past
                                     it gRPC cancels new ones at random,
                                     all of them at 3x (gRPC: 1000)   10000

A bad value stops the process at start with one line naming the variable (`meshscope.config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from meshscope.config import MAX_BYTES, MAX_SECONDS, Config
from meshscope.wire import DEFAULT_MAX_MESSAGE_BYTES

DEFAULT_AGENT_PORT = 50051

MAX_MESSAGE_BYTES = MAX_BYTES
"""gRPC's message limits are 32-bit."""
MAX_PENDING_REQUESTS = MAX_MESSAGE_BYTES // 3
"""gRPC is given three times the pending-requests knob as its hard limit, a 32-bit integer."""

__all__ = ["DEFAULT_AGENT_PORT", "MAX_MESSAGE_BYTES", "MAX_PENDING_REQUESTS", "MAX_SECONDS", "ServerSettings"]


@dataclass(frozen=True)
class ServerSettings:
    """How an agent-service process serves (see the module docstring)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_AGENT_PORT
    shutdown_pause_s: float = 1.0
    shutdown_grace_s: float = 10.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    keepalive_time_s: float = 30.0
    keepalive_timeout_s: float = 10.0
    min_ping_interval_s: float = 10.0
    max_pending_requests: int = 10_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        """Read every knob from `environ` (default os.environ); ConfigError names a bad one."""
        config = Config(environ)
        d = cls()
        return cls(
            host=config.string("MESHSCOPE_HOST", d.host),
            port=config.port("MESHSCOPE_PORT", d.port),
            shutdown_pause_s=config.seconds("MESHSCOPE_SHUTDOWN_PAUSE_S", d.shutdown_pause_s),
            shutdown_grace_s=config.seconds("MESHSCOPE_SHUTDOWN_GRACE_S", d.shutdown_grace_s),
            max_message_bytes=config.bytes("MESHSCOPE_GRPC_MAX_MESSAGE_BYTES", d.max_message_bytes),
            keepalive_time_s=config.seconds("MESHSCOPE_GRPC_KEEPALIVE_TIME_S", d.keepalive_time_s),
            keepalive_timeout_s=config.seconds("MESHSCOPE_GRPC_KEEPALIVE_TIMEOUT_S", d.keepalive_timeout_s),
            min_ping_interval_s=config.seconds("MESHSCOPE_GRPC_MIN_PING_INTERVAL_S", d.min_ping_interval_s),
            max_pending_requests=config.count(
                "MESHSCOPE_GRPC_MAX_PENDING_REQUESTS", d.max_pending_requests, maximum=MAX_PENDING_REQUESTS
            ),
        )

    def with_overrides(self, **overrides: Any) -> ServerSettings:
        """A copy with the given fields replaced (None values are ignored)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def grpc_options(self) -> list[tuple[str, int]]:
        """Channel arguments for the server: message limits and keepalive."""
        return [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.keepalive_time_ms", int(self.keepalive_time_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_s * 1000)),
            ("grpc.http2.min_ping_interval_without_data_ms", int(self.min_ping_interval_s * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            # A burst of new calls past gRPC's default backlog (1000) is cancelled at random
            # with no status a caller can tell from its own cancel ([5/13], fault 5).
            ("grpc.server.max_pending_requests", self.max_pending_requests),
            ("grpc.server.max_pending_requests_hard_limit", 3 * self.max_pending_requests),
            ("grpc.http2.max_pings_without_data", 0),
            # Without this, gRPC lets a second process bind the same port (SO_REUSEPORT)
            # and two replicas would share one address and one registration.
            ("grpc.so_reuseport", 0),
        ]
