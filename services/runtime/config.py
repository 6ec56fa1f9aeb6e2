"""Settings of an agent-service process, from flags and the environment.

The agent's own variables (flags override them):

  MESHSCOPE_HOST                     bind address                     127.0.0.1
  MESHSCOPE_PORT                     first agent port (0 = any free)  50051
  MESHSCOPE_COALESCE_MAX_DELAY_MS    merge text deltas while behind   0 (off)

Everything else a server reads (shutdown pause and grace, message limits, keepalive, pending
requests, TLS, the mesh token) is shared with the orchestrator and read in one place,
`meshscope.serving.ServeSettings`; docs/configuration.md lists it all. A bad value stops the
process at start with one line naming the variable (`meshscope.config.ConfigError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from meshscope.config import Config
from meshscope.serving import ServeSettings

DEFAULT_AGENT_PORT = 50051
MAX_COALESCE_DELAY_MS = 1000

__all__ = ["DEFAULT_AGENT_PORT", "ServerSettings"]


@dataclass(frozen=True)
class ServerSettings(ServeSettings):
    """How an agent-service process serves (see the module docstring)."""

    port: int = DEFAULT_AGENT_PORT
    coalesce_max_delay_ms: int = 0
    """0: every event is one message. > 0: consecutive text deltas of one block are merged while
    the caller is behind, adding at most this many milliseconds (`meshscope.services.runtime.coalesce`)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read every knob from `environ` (default os.environ); ConfigError names a bad one."""
        config = Config(environ)
        return cls(
            **cls.read_serving(
                config,
                host_variable="MESHSCOPE_HOST",
                port_variable="MESHSCOPE_PORT",
                default_port=DEFAULT_AGENT_PORT,
            ),
            coalesce_max_delay_ms=config.integer(
                "MESHSCOPE_COALESCE_MAX_DELAY_MS",
                0,
                minimum=0,
                maximum=MAX_COALESCE_DELAY_MS,
                what="milliseconds",
            ),
        )

    def grpc_options(self) -> list[tuple[str, Any]]:
        """The server's gRPC arguments (`server_options`, under the name this class had first)."""
        return self.server_options()
