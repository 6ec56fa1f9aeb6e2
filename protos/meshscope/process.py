"""How a `meshscope serve ...` process runs a server: one function for every serve command.

`serve_process(build)` is the whole life of a server process, the same for agents, the
orchestrator and the bridge:

1. `build()` reads and checks every setting before anything binds, and MESHSCOPE_EVENT_LOOP
   picks the event loop (`meshscope.loops`: uvloop when installed, unless set to asyncio); bad
   configuration (`ConfigError`, or another kind the caller names) is one line on stderr,
   `meshscope: <message>`, and exit status 2;
2. logging goes to stderr at MESHSCOPE_LOG_LEVEL in MESHSCOPE_LOG_FORMAT (`meshscope.logs`), and
   the OTEL_* variables are read (`meshscope.telemetry.configure`), before the server is built:
   its gRPC servers and channels take their tracing interceptors then;
3. once the server is bound, the telemetry providers start (`meshscope.telemetry.start`) with the
   server's address as service.instance.id; the server runs until SIGTERM or SIGINT
   (`Server.run`: ready line on stdout, graceful shutdown); an address that cannot be bound
   (its own, or the Prometheus endpoint's) is one line, `meshscope: cannot serve: ...`, and
   exit status 1;
4. exit status 0 after a graceful shutdown.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Sequence

from meshscope import loops, telemetry
from meshscope.config import ConfigError
from meshscope.logs import configure_logging
from meshscope.server import Hook, Server

__all__ = ["serve_process"]


def serve_process(
    build: Callable[[], tuple[Server, Hook | None]],
    *,
    refused: tuple[type[Exception], ...] = (ConfigError,),
    service: str = "meshscope",
    replica_ids: Callable[[], Sequence[str]] = tuple,
) -> int:
    """Build a server and serve until a signal (see the module docstring); the exit status.

    `build` returns the server and what to run once it serves, before the ready line (e.g.
    register in discovery; None: nothing); exceptions of the kinds in `refused` are
    configuration errors (exit 2). `service` names the process in traces and metrics
    (`meshscope.telemetry`, when OTEL_* turn them on); `replica_ids()`, asked once `on_started`
    ran, the discovery replica ids the process registered (a resource attribute).
    """
    try:
        loop = loops.event_loop_choice()
        configure_logging()
        telemetry.configure(service)  # before build: servers and channels take their interceptors then
        server, on_started = build()
    except refused as exc:
        print(f"meshscope: {exc}", file=sys.stderr)
        return 2

    async def started() -> None:
        # Telemetry first: a Prometheus port that cannot be bound stops the process before it
        # registers anywhere.
        telemetry.start(f"{socket.gethostname()}:{server.port}", replica_ids())
        if on_started is not None:
            await on_started()

    try:
        loops.run(server.run(announce=lambda line: print(line, flush=True), on_started=started), loop)
    except OSError as exc:
        print(f"meshscope: cannot serve: {exc}", file=sys.stderr)
        return 1
    finally:
        telemetry.shutdown()  # the spans still batched are sent
    return 0
