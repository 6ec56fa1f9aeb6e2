"""`meshscope serve bridge`: the A2A-over-HTTP bridge process.

Like every `meshscope serve` command: settings are checked before anything binds (a bad one is
one line and exit status 2); the task store is opened next (a database that cannot be reached is
one line and exit status 1, as is an address that cannot be bound); then one ready line,
`meshscope: serving bridge on http://HOST:PORT`, and uvicorn serves until SIGTERM or SIGINT. Then
(`Bridge.drain`): new requests get 503 (`/healthz` too, so a load balancer stops routing here),
the runs in progress get MESHSCOPE_SHUTDOWN_GRACE_S to finish, the rest are stopped and their
tasks end FAILED (retryable, reason DRAINING) in the store and on their streams, the streams
close, and the process exits 0. A second signal stops at once.

a2a-sdk's built-in spans (`OTEL_INSTRUMENTATION_A2A_SDK_ENABLED`) are off unless that variable
is set: with them on, 1.3.0 detaches OpenTelemetry contexts across asyncio contexts when a stream
ends and logs a traceback for it.

The socket is bound here, not by uvicorn, so that `--port 0` can report the port it got and the
cards can advertise it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from meshscope import loops, telemetry
from meshscope.config import Config, ConfigError
from meshscope.logs import configure_logging
from meshscope.orchestrator.bridge.config import BridgeSettings

log = logging.getLogger(__name__)


@dataclass
class ServeArgs:
    port: int | None
    host: str | None


STREAMS_CLOSE_S = 2
"""After the drain, how long uvicorn lets open streams send their last events (whole seconds)."""


class _StoreUnavailable(Exception):
    pass


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server with the process's signal handling, not uvicorn's own.

        uvicorn re-raises a caught SIGTERM once it has shut down, so the process would end
        "killed by SIGTERM" (-15) after a graceful stop; every meshscope server exits 0 then.
        `serve` below installs the process's handlers instead.
        """

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("meshscope")
    except PackageNotFoundError:
        return "0"


async def serve(settings: BridgeSettings, grace_s: float) -> None:
    """Serve until a signal; raises OSError (cannot bind) or `_StoreUnavailable`."""
    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from meshscope.orchestrator.bridge.app import Bridge
    from meshscope.orchestrator.bridge.recovery import BridgeInstance, fail_orphans
    from meshscope.orchestrator.bridge.stores import open_stores
    from meshscope.orchestrator.client import OrchestratorClient

    sock = _bind(settings.host, settings.port)
    try:
        try:
            stores = await open_stores(settings.database_url, poll_interval_s=settings.poll_interval_s)
        except (SQLAlchemyError, OSError) as exc:
            raise _StoreUnavailable(f"cannot open the task store {settings.database_url}: {exc}") from None
        address = f"{socket.gethostname()}:{sock.getsockname()[1]}"
        instance = BridgeInstance(address)
        await fail_orphans(stores, instance)  # tasks a killed bridge on this address left running
        orchestrator = OrchestratorClient(retry_refused=True)
        base_url = settings.base_url(sock.getsockname()[1])
        telemetry.start(address)
        bridge = Bridge(
            settings, orchestrator, stores, base_url=base_url, version=_version(), instance=instance.id
        )
        config = uvicorn.Config(
            bridge.app,
            lifespan="off",
            log_config=None,  # its loggers go through the process's handler (meshscope.logs)
            log_level="warning",
            access_log=False,
            # After `drain`, only the last events of the streams it ended are left to send.
            timeout_graceful_shutdown=STREAMS_CLOSE_S,
        )
        server = _server_class()(config)
        stop = asyncio.Event()

        def signalled() -> None:
            if stop.is_set():  # a second signal: stop now
                server.should_exit = server.force_exit = True
            stop.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, signalled)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        # uvicorn sets a flag when it serves and offers no event to wait on.
        while not server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if server.started:
            print(f"meshscope: serving bridge on {base_url}", flush=True)
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                print("meshscope: shutting down bridge (finishing running tasks)", flush=True)
                await bridge.drain(grace_s)
                server.should_exit = True
            await serving
        finally:
            stopping.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await bridge.aclose()
            await orchestrator.close()
            await stores.close()
    finally:
        sock.close()


def run(args: ServeArgs) -> int:
    """Serve until SIGTERM/SIGINT; the exit status (see the module docstring)."""
    try:
        loop = loops.event_loop_choice()
        settings = BridgeSettings.from_env().with_overrides(port=args.port, host=args.host)
        if not 0 <= settings.port <= 65535:
            raise ConfigError(f"--port {settings.port} is not a port (0-65535)")
        grace_s = Config().seconds("MESHSCOPE_SHUTDOWN_GRACE_S", 10.0, maximum=3600)
        configure_logging()
        telemetry.configure("meshscope-bridge")
    except ConfigError as exc:
        print(f"meshscope: {exc}", file=sys.stderr)
        return 2
    # a2a-sdk's own spans are off unless asked for: read when a2a is first imported, below. The
    # HTTP instrumentation follows the stable HTTP conventions (bridge/tracing.py says why).
    os.environ.setdefault("OTEL_INSTRUMENTATION_A2A_SDK_ENABLED", "false")
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    from meshscope.orchestrator.bridge import logs

    logs.install()
    try:
        loops.run(serve(settings, grace_s), loop)
    except OSError as exc:
        print(f"meshscope: cannot serve: {exc}", file=sys.stderr)
        return 1
    except _StoreUnavailable as exc:
        print(f"meshscope: {exc}", file=sys.stderr)
        return 1
    finally:
        telemetry.shutdown()
    return 0
