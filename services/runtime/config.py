"""Settings of an agent-service process, from flags and the environment.

The agent's own variables (flags override them):

  MESHSCOPE_HOST                     bind address                     127.0.0.1
  MESHSCOPE_PORT                     first agent port (0 = any free)  50051

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

__all__ = ["DEFAULT_AGENT_PORT", "ServerSettings"]


@dataclass(frozen=True)
class ServerSettings(ServeSettings):
    """How an agent-service process serves (see the module docstring)."""

    port: int = DEFAULT_AGENT_PORT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read every knob from `environ` (default os.environ); ConfigError names a bad one."""
        return cls(
            **cls.read_serving(
                Config(environ),
                host_variable="MESHSCOPE_HOST",
                port_variable="MESHSCOPE_PORT",
                default_port=DEFAULT_AGENT_PORT,
            )
        )

    def grpc_options(self) -> list[tuple[str, Any]]:
        """The server's gRPC arguments (`server_options`, under the name this class had first)."""
        return self.server_options()
