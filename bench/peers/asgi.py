"""Serving an HTTP peer (an ASGI app) on a free loopback port, with meshscope's ready line.

The HTTP peers (AgentScope Runtime's `AgentApp`, the bare a2a-sdk server) run under uvicorn
as their own docs run them, with two changes for the benchmark: the access log is off (the
meshscope servers beside them log at WARNING, not per request), and the port is bound here
(port 0, so nothing picks ports ahead) and announced as `meshscope: serving <what> on
<host:port>` once uvicorn has started, the line `meshscope.cli.launch` waits for.

Standard library and uvicorn only: the AgentScope Runtime app imports this from its own
virtualenv, where meshscope is not installed.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

HOST = "127.0.0.1"


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that says what it runs on, then prints the ready line once it accepts."""

    def __init__(self, config: uvicorn.Config, what: str, address: str) -> None:
        super().__init__(config)
        self._what = what
        self._address = address

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            print(f"{self._what} runs on {describe_stack(self.config)}", flush=True)
            print(f"meshscope: serving {self._what} on {self._address}", flush=True)


def describe_stack(config: uvicorn.Config) -> str:
    """The running event loop and the HTTP parser uvicorn picked, e.g. `uvloop + httptools`.

    uvicorn's `auto` takes uvloop and httptools when they are installed, asyncio and h11 when
    not: the same app is faster with the first pair, so the benchmark reports which one ran.
    Call it on a loaded config, inside the server's loop.
    """
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    parser = config.http_protocol_class.__module__.rsplit(".", 1)[-1].removesuffix("_impl")
    return f"{loop} + {parser}"


def serve_asgi(build: Callable[[str], Any], what: str) -> None:
    """Serve the app `build(address)` returns on HOST, a free port, until SIGTERM/SIGINT.

    `build` gets the bound `host:port` (an A2A agent card names its own URL). Prints `<what>
    runs on <loop> + <parser>`, then the ready line naming `what`; uvicorn's graceful shutdown
    handles the signals.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    address = f"{HOST}:{sock.getsockname()[1]}"
    config = uvicorn.Config(build(address), log_level="warning", access_log=False, lifespan="on")
    _AnnouncingServer(config, what, address).run(sockets=[sock])
