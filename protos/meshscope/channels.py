"""The one channel factory: every meshscope client channel is made by `open_channel`.

The orchestrator's channels to agent replicas, the CLI's to the orchestrator, the typed
clients (`AgentClient`, `OrchestratorClient`), the testing helpers and the benchmarks all
get the same things from it, decided here once:

- message limits: MESHSCOPE_GRPC_MAX_MESSAGE_BYTES both ways (what one side may send, the
  other may receive);
- keepalive: MESHSCOPE_GRPC_KEEPALIVE_TIME_S / _TIMEOUT_S, pings allowed on idle connections;
- transport security (`meshscope.security`): TLS with the mesh's CA and, for mutual TLS,
  this process's client certificate; the mesh token on every call;
- interceptors: the caller's (the seam tracing will use), then the token's.

    settings = ChannelSettings.from_env()          # once, at start
    channel = open_channel("10.0.0.7:50051", settings)
    stub = agent_pb2_grpc.AgentServiceStub(channel)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Self

import grpc

from meshscope import telemetry
from meshscope.auth import bearer_token
from meshscope.config import Config
from meshscope.security import Security
from meshscope.wire import DEFAULT_MAX_MESSAGE_BYTES

__all__ = ["ChannelSettings", "channel_arguments", "open_channel"]


@dataclass(frozen=True)
class ChannelSettings:
    """What every channel of a process shares: limits, keepalive and security.

    Sizes in bytes, durations in seconds. Server settings (`meshscope.serving.ServeSettings`)
    extend these: a server's limits and keepalive are its channels' too.
    """

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    keepalive_time_s: float = 30.0
    keepalive_timeout_s: float = 10.0
    min_ping_interval_s: float = 10.0
    security: Security = field(default_factory=Security)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """A client process's settings from `environ` (default os.environ); ConfigError names a
        bad variable. A client may give a CA without a certificate of its own."""
        config = Config(environ)
        return cls(**cls.read(config), security=Security.from_config(config, serving=False))

    @classmethod
    def read(cls, config: Config) -> dict[str, Any]:
        """The MESHSCOPE_GRPC_* channel knobs, as keyword arguments (security is read apart:
        what it requires depends on whether the process serves)."""
        d = ChannelSettings()
        return {
            "max_message_bytes": config.bytes("MESHSCOPE_GRPC_MAX_MESSAGE_BYTES", d.max_message_bytes),
            "keepalive_time_s": config.seconds("MESHSCOPE_GRPC_KEEPALIVE_TIME_S", d.keepalive_time_s),
            "keepalive_timeout_s": config.seconds(
                "MESHSCOPE_GRPC_KEEPALIVE_TIMEOUT_S", d.keepalive_timeout_s
            ),
            "min_ping_interval_s": config.seconds(
                "MESHSCOPE_GRPC_MIN_PING_INTERVAL_S", d.min_ping_interval_s
            ),
        }

    def with_overrides(self, **overrides: Any) -> Self:
        """A copy with the given fields replaced (None values are ignored: an unset flag)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def channel_options(self) -> list[tuple[str, Any]]:
        """gRPC arguments of every channel (and, with the server's own, of every server).

        Keepalive pings are allowed on idle connections (`permit_without_calls`, no cap on
        pings without data) so a peer's keepalive never gets a connection cut; SO_REUSEPORT
        is off, or a second process could bind a port already in use and share its traffic.
        """
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


def channel_arguments(
    settings: ChannelSettings, options: Sequence[tuple[str, Any]] = ()
) -> list[tuple[str, Any]]:
    """The gRPC arguments of a channel: the settings', security's, then `options`; one value per
    name, the last given winning (given twice, gRPC would not say which one it uses)."""
    merged = dict(settings.channel_options())
    merged.update(settings.security.channel_options())
    merged.update(options)
    return list(merged.items())


def open_channel(
    target: str,
    settings: ChannelSettings,
    *,
    options: Sequence[tuple[str, Any]] = (),
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """A grpc.aio channel to `target` (`host:port`, IPv6 as `[::1]:port`) made as `settings` say.

    `options` are further gRPC channel arguments; one named in both wins over the settings'.
    `interceptors` run in order, before the token's. TLS when the settings carry a CA
    (MESHSCOPE_TLS_CA_FILE), else plaintext. Connecting is lazy: nothing fails here for an
    unreachable target, the first call does (UNAVAILABLE).
    """
    security = settings.security
    arguments = channel_arguments(settings, options)
    chain = [*telemetry.client_interceptors(), *interceptors]
    if security.token is not None:
        chain += bearer_token(security.token)
    credentials = security.channel_credentials()
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=arguments, interceptors=chain or None)
    return grpc.aio.secure_channel(target, credentials, options=arguments, interceptors=chain or None)
