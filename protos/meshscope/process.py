"""How a `meshscope serve ...` process runs a server: one function for every serve command.

`serve_process(build)` is the whole life of a server process, the same for agents, the
orchestrator and the bridge:

1. `build()` reads and checks every setting before anything binds, and MESHSCOPE_EVENT_LOOP
   picks the event loop (`meshscope.loops`: uvloop when installed, unless set to asyncio); bad
   configuration (`ConfigError`, or another kind the caller names) is one line on stderr,
   `meshscope: <message>`, and exit status 2;
2. logging goes to stderr at MESHSCOPE_LOG_LEVEL (default INFO);
3. the server runs until SIGTERM or SIGINT (`Server.run`: ready line on stdout, graceful
   shutdown); an address that cannot be bound is one line, `meshscope: cannot serve: ...`,
   and exit status 1;
4. exit status 0 after a graceful shutdown.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from meshscope import loops, telemetry
from meshscope.config import Config, ConfigError
from meshscope.server import Hook, Server

__all__ = ["configure_logging", "serve_process"]


def configure_logging() -> None:
    """Log to stderr at MESHSCOPE_LOG_LEVEL: DEBUG, INFO, WARNING, ERROR or CRITICAL, any case
    (another value: INFO)."""
    level = Config().string("MESHSCOPE_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level if level in logging.getLevelNamesMapping() else "INFO",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def serve_process(
    build: Callable[[], tuple[Server, Hook | None]],
    *,
    refused: tuple[type[Exception], ...] = (ConfigError,),
    service: str = "meshscope",
) -> int:
    """Build a server and serve until a signal (see the module docstring); the exit status.

    `build` returns the server and what to run once it serves, before the ready line (e.g.
    register in discovery; None: nothing); exceptions of the kinds in `refused` are
    configuration errors (exit 2). `service` names the process in traces (`meshscope.telemetry`,
    when OTEL_* turn tracing on).
    """
    try:
        loop = loops.event_loop_choice()
        telemetry.configure(service)  # before build: servers and channels take their interceptors then
        server, on_started = build()
    except refused as exc:
        print(f"meshscope: {exc}", file=sys.stderr)
        return 2
    configure_logging()
    try:
        loops.run(server.run(announce=lambda line: print(line, flush=True), on_started=on_started), loop)
    except OSError as exc:
        print(f"meshscope: cannot serve: {exc}", file=sys.stderr)
        return 1
    finally:
        telemetry.shutdown()  # the spans still batched are sent
    return 0
