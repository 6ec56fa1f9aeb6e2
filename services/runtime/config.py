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

A bad value stops the process at start with one line naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from services.runtime.errors import ConfigError

T = TypeVar("T")

DEFAULT_AGENT_PORT = 50051


def read_env(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T, check: str) -> T:
    """`name` parsed with `parse` (which raises ValueError), `default` when unset; ConfigError names it."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not valid: expected {check}") from None
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError(raw)
    return value


MAX_SECONDS = 2_000_000.0
"""Upper bound of every duration knob: gRPC takes its keepalive settings as 32-bit milliseconds."""
MAX_MESSAGE_BYTES = 2**31 - 1
"""gRPC's message limits are 32-bit."""


SECONDS_RANGE = "seconds 0-2000000"
"""How a bad duration knob's message describes the range `seconds` accepts."""


def seconds(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= MAX_SECONDS:  # also rejects nan; inf is above the bound
        raise ValueError(raw)
    return value


MAX_PENDING_REQUESTS = MAX_MESSAGE_BYTES // 3
"""gRPC is given three times the pending-requests knob as its hard limit, a 32-bit integer."""


def _pending_requests(raw: str) -> int:
    value = int(raw)
    if not 0 < value <= MAX_PENDING_REQUESTS:
        raise ValueError(raw)
    return value


def positive_int(raw: str) -> int:
    value = int(raw)
    if not 0 < value <= MAX_MESSAGE_BYTES:
        raise ValueError(raw)
    return value


@dataclass(frozen=True)
class ServerSettings:
    """How an agent-service process serves (see the module docstring)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_AGENT_PORT
    shutdown_pause_s: float = 1.0
    shutdown_grace_s: float = 10.0
    max_message_bytes: int = 4 * 1024 * 1024
    keepalive_time_s: float = 30.0
    keepalive_timeout_s: float = 10.0
    min_ping_interval_s: float = 10.0
    max_pending_requests: int = 10_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        """Read every knob from the environment, validating each."""
        env = os.environ if environ is None else environ
        d = cls()
        return cls(
            host=env.get("MESHSCOPE_HOST", "").strip() or d.host,
            port=read_env(env, "MESHSCOPE_PORT", _port, d.port, "a port 0-65535"),
            shutdown_pause_s=read_env(
                env, "MESHSCOPE_SHUTDOWN_PAUSE_S", seconds, d.shutdown_pause_s, SECONDS_RANGE
            ),
            shutdown_grace_s=read_env(
                env, "MESHSCOPE_SHUTDOWN_GRACE_S", seconds, d.shutdown_grace_s, SECONDS_RANGE
            ),
            max_message_bytes=read_env(
                env,
                "MESHSCOPE_GRPC_MAX_MESSAGE_BYTES",
                positive_int,
                d.max_message_bytes,
                "bytes 1-2147483647",
            ),
            keepalive_time_s=read_env(
                env, "MESHSCOPE_GRPC_KEEPALIVE_TIME_S", seconds, d.keepalive_time_s, SECONDS_RANGE
            ),
            keepalive_timeout_s=read_env(
                env,
                "MESHSCOPE_GRPC_KEEPALIVE_TIMEOUT_S",
                seconds,
                d.keepalive_timeout_s,
                SECONDS_RANGE,
            ),
            min_ping_interval_s=read_env(
                env,
                "MESHSCOPE_GRPC_MIN_PING_INTERVAL_S",
                seconds,
                d.min_ping_interval_s,
                SECONDS_RANGE,
            ),
            max_pending_requests=read_env(
                env,
                "MESHSCOPE_GRPC_MAX_PENDING_REQUESTS",
                _pending_requests,
                d.max_pending_requests,
                f"a count 1-{MAX_PENDING_REQUESTS}",
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
