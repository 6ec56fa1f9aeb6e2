"""The environment of a meshscope process started by a test: nothing from the host leaks in.

A developer's shell may carry a model key, meshscope settings, a CONSUL_HTTP_ADDR of a Consul
or a REDIS_URL of a Redis that runs on the machine: a test's child process must not register into
that Consul, keep its sessions in that Redis or call that model. `child_env` starts from
`os.environ` without any of it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["child_env"]

HOST_PREFIXES = ("MESHSCOPE_", "OPENAI_", "DASHSCOPE_")
"""Variables with these prefixes (meshscope's settings, model keys and endpoints) are dropped."""
HOST_VARIABLES = ("CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "REDIS_URL")
"""A Consul or Redis of the host's; pass a `ConsulDevAgent.env()` or a `RedisDevServer.url` (as
REDIS_URL) in `extra` to use one."""


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """`os.environ` without host settings, with test defaults, then `extra` on top.

    Defaults: PYTHONUNBUFFERED=1 (the ready line arrives at once), MESHSCOPE_SHUTDOWN_PAUSE_S=0
    (no pause for health watchers on SIGTERM), MESHSCOPE_DISCOVERY=static (no Consul unless
    `extra` names one; sessions in memory unless `extra` sets REDIS_URL).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(HOST_PREFIXES) and k not in HOST_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    env["MESHSCOPE_SHUTDOWN_PAUSE_S"] = "0"
    env["MESHSCOPE_DISCOVERY"] = "static"
    env.update(extra or {})
    return env
