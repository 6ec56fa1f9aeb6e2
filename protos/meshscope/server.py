"""The server core: one grpc.aio server's whole life, written once for every meshscope server.

The agent services (`AgentServer`), the orchestrator (`OrchestratorServer`) and the bridge
are a `Server` with their own services. The core does, for each of them:

- bind `host:port` (IPv4 or IPv6, port 0: any free port), TLS when the settings carry a
  certificate (`meshscope.security`), with the gRPC options decided in `meshscope.serving`;
- the standard `grpc.health.v1` health service (a status for "", each service, and any
  further names, e.g. hosted agents) and server reflection;
- interceptors: the caller's list, in order (the seam tracing uses), then the mesh token's check;
- the shutdown, one sequence for everyone (docs/operations.md, "Stopping"):
  NOT_SERVING (and `draining` is true: servicers refuse new calls) -> before-drain hooks
  (discovery deregisters here) -> pause (`shutdown_pause_s`, so health watchers drop the
  server) -> drain in-flight calls within the grace (`shutdown_grace_s`) -> `INTERRUPT_BEFORE_S`
  before the grace ends, interrupt what is still running, so its callers get an error event
  and a status saying why, not a bare cancellation -> stop -> let cancelled calls finish
  their `finally` -> closers (stores, pools, watchers);
- `stop()` is idempotent: concurrent and later callers wait for the same shutdown;
- `run()` serves until SIGTERM/SIGINT (the one signal handler of every entry point) or
  `stop()`; `async with server:` starts and stops it.

Modelled on temporalio's `Worker` (`run`, an idempotent `shutdown`, a `_run` that owns its
tasks). Tasks the core starts are its own: a failure in one is logged with its traceback,
as the server's own failure, and raised to whoever waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from meshscope import telemetry
from meshscope.addresses import ensure_bindable, host_port, is_loopback
from meshscope.auth import TokenCheck
from meshscope.loops import loop_name
from meshscope.servicers import Serializer, add_servicer
from meshscope.serving import ServeSettings

__all__ = ["FINISH_AFTER_STOP_S", "INTERRUPT_BEFORE_S", "InFlight", "Server", "Service"]

log = logging.getLogger(__name__)

INTERRUPT_BEFORE_S = 0.5
"""Calls still running are interrupted this long before the grace period runs out, leaving time
for their error events to reach the callers before gRPC cancels the calls."""
FINISH_AFTER_STOP_S = 5.0
"""After gRPC stopped, how long cancelled calls may take to finish their `finally` (an agent
turn saves its state there) before the closers close what they use."""
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
SIGNALS = (signal.SIGTERM, signal.SIGINT)

Hook = Callable[[], Awaitable[object]]
T = TypeVar("T")


@dataclass(frozen=True)
class Service:
    """One gRPC service a server hosts: its full name (for health and reflection), the generated
    `add_*Servicer_to_server` function and the servicer. Requests are decoded strictly
    (`meshscope.servicers`): bytes that are not a request are INVALID_ARGUMENT."""

    name: str
    register: Callable[[Any, Any], None]
    servicer: object
    response_serializers: Mapping[str, Serializer] = field(default_factory=dict)
    """Methods whose responses another encoder writes (`meshscope.servicers.add_servicer`)."""


@dataclass(frozen=True)
class InFlight:
    """The calls a server has open, as its shutdown sees them.

    `idle` is set while none is open. `interrupt(grace_s)` ends every one still running with an
    error event and a status saying it was cut off after `grace_s` seconds, and returns how many
    there were. `what` names them in logs ("turn(s)", "run(s)").
    """

    idle: asyncio.Event
    interrupt: Callable[[float], int]
    what: str = "call(s)"


class Server:
    """One grpc.aio server with meshscope's lifecycle (see the module docstring).

    `settings` say where and how to serve; `services` are hosted beside health and reflection;
    `in_flight` is what the drain waits for and interrupts (None: gRPC's grace alone);
    `health_names` get a status besides "" and the services' names; `interceptors` run in
    order, before the token check. `what` names the server in its ready line and logs.
    """

    def __init__(
        self,
        settings: ServeSettings,
        services: Sequence[Service],
        *,
        what: str,
        in_flight: InFlight | None = None,
        health_names: Iterable[str] = (),
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        self.settings = settings
        self.what = what
        self.health = HealthServicer()
        self.port = 0
        """The port bound (0 until `start`)."""
        self._services = list(services)
        self._in_flight = in_flight
        self._health_names = ("", *(s.name for s in self._services), *health_names)
        # Tracing first (meshscope.telemetry: none when it is off), so a refused call is traced too.
        self._interceptors = [*telemetry.server_interceptors(), *interceptors]
        if settings.security.token is not None:
            self._interceptors.append(TokenCheck(settings.security.token))
        self._before_drain: list[Hook] = []
        self._closers: list[Hook] = []
        self._server: grpc.aio.Server | None = None
        self._draining = False
        self._shutdown: asyncio.Task[None] | None = None
        self._stop_requested: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def address(self) -> str:
        """`host:port` this server serves on (the port bound once started)."""
        return host_port(self.settings.host, self.port)

    @property
    def draining(self) -> bool:
        """True from the first moment of the shutdown: servicers refuse new calls (UNAVAILABLE, DRAINING)."""
        return self._draining

    def add_before_drain(self, hook: Hook) -> None:
        """Run `hook` after NOT_SERVING and before the pause (discovery deregisters there).
        A hook that fails is logged with its traceback; the shutdown goes on."""
        self._before_drain.append(hook)

    def add_closer(self, hook: Hook) -> None:
        """Run `hook` at the end of the shutdown, after gRPC stopped (close stores, pools),
        in the order added. One that fails is logged with its traceback (ERROR) and the
        others still run."""
        self._closers.append(hook)

    # ---------------------------------------------------------------- start

    async def start(self) -> None:
        """Bind, serve, and mark every health name SERVING.

        Raises OSError with one line when the address cannot be bound; RuntimeError when
        started twice.
        """
        if self._server is not None:
            raise RuntimeError(f"{self.what}: server already started")
        # grpc.aio binds a server to the running loop, so it is built here, not in __init__.
        server = grpc.aio.server(
            options=self.settings.server_options(), interceptors=self._interceptors or None
        )
        for service in self._services:
            add_servicer(server, service.register, service.servicer, service.response_serializers)
        add_servicer(server, health_pb2_grpc.add_HealthServicer_to_server, self.health)
        reflection.enable_server_reflection(
            (*(s.name for s in self._services), HEALTH_SERVICE, reflection.SERVICE_NAME), server
        )
        self.port = self._bind(server)
        await server.start()
        self._server = server
        for name in self._health_names:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        security = self.settings.security
        if security.open and not is_loopback(self.settings.host):
            log.warning(
                "%s serves %s without TLS or a mesh token: anyone who reaches it can call it "
                "(docs/operations.md, 'Transport security')",
                self.what,
                self.address,
            )
        log.info(
            "serving %s on %s (%s%s, %s event loop)",
            self.what,
            self.address,
            "TLS" if security.serves_tls else "plaintext",
            ", mesh token required" if security.token is not None else "",
            loop_name(asyncio.get_running_loop()),
        )

    def _bind(self, server: grpc.aio.Server) -> int:
        host, port = self.settings.host, self.settings.port
        ensure_bindable(host, port)
        address = host_port(host, port)
        credentials = self.settings.security.server_credentials()
        try:
            if credentials is None:
                bound: int = server.add_insecure_port(address)
            else:
                bound = server.add_secure_port(address, credentials)
        except RuntimeError as exc:  # how grpc reports a failed bind
            raise OSError(f"cannot bind {address} (in use or not local)") from exc
        return bound

    # ---------------------------------------------------------------- run

    async def run(
        self,
        *,
        announce: Callable[[str], None] = print,
        on_started: Hook | None = None,
    ) -> None:
        """Start (unless started), run `on_started` (e.g. register in discovery), announce the
        ready line `meshscope: serving <what> on <address>`, then serve until SIGTERM or SIGINT
        (or `stop()`), and shut down gracefully. Raises what the shutdown raised."""
        if self._server is None:
            await self.start()
        stop_requested = self._stop_event()
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, stop_requested.set)
        try:
            if on_started is not None:
                await on_started()
            announce(f"meshscope: serving {self.what} on {self.address}")
            await stop_requested.wait()
            announce(f"meshscope: shutting down {self.what} (draining in-flight calls)")
        finally:
            for sig in SIGNALS:
                loop.remove_signal_handler(sig)
            await self.stop()

    def _stop_event(self) -> asyncio.Event:
        if self._stop_requested is None:
            self._stop_requested = asyncio.Event()
        return self._stop_requested

    async def __aenter__(self) -> Self:
        """`start()`; leaving the block runs `stop()`, whatever ended it."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- stop

    async def stop(self) -> None:
        """Shut down gracefully (the module docstring's sequence), once.

        Safe to call any number of times, concurrently too: every caller waits for the same
        shutdown and sees how it ended. Cancelling a caller does not cancel the shutdown.
        """
        self._stop_event().set()
        if self._shutdown is None:
            self._shutdown = self._spawn(self._shut_down(), "shutdown")
        await asyncio.shield(self._shutdown)

    async def _shut_down(self) -> None:
        self._draining = True
        await self.health.enter_graceful_shutdown()
        for hook in self._before_drain:
            try:
                await hook()
            except Exception:
                log.warning("%s: a before-drain hook failed; shutting down anyway", self.what, exc_info=True)
        if self.settings.shutdown_pause_s:
            await asyncio.sleep(self.settings.shutdown_pause_s)
        if self._server is not None:
            await self._drain(self._server)
        for close in self._closers:
            try:
                await close()
            except Exception:
                log.error("%s: closing failed during the shutdown", self.what, exc_info=True)
        self._cancel_tasks()

    async def _drain(self, server: grpc.aio.Server) -> None:
        grace = self.settings.shutdown_grace_s
        in_flight = self._in_flight
        what = in_flight.what if in_flight is not None else "call(s)"
        log.info("draining in-flight %s of %s, grace %.1fs", what, self.what, grace)
        stopping = self._spawn(server.stop(grace), "grpc stop")
        if in_flight is not None:
            # Shortly before gRPC would cancel what is still running, end it ourselves, so
            # its callers get an error event and a status saying why.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(in_flight.idle.wait(), max(grace - INTERRUPT_BEFORE_S, grace / 2))
            if not in_flight.idle.is_set():
                cut = in_flight.interrupt(grace)
                log.warning(
                    "cutting off %d %s still running at the end of the %gs grace period",
                    cut,
                    in_flight.what,
                    grace,
                )
        await stopping
        if in_flight is not None:
            # Calls cancelled at the end of the grace still run their `finally` (a turn saves
            # its state there): let them finish before the closers close what they use.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(in_flight.idle.wait(), FINISH_AFTER_STOP_S)

    # ---------------------------------------------------------------- tasks

    def _spawn(self, work: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """A task the server owns: a failure is logged with its traceback, as the server's own;
        whoever awaits the task sees it raised too."""
        task = asyncio.get_running_loop().create_task(work, name=f"meshscope {self.what}: {name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        failure = task.exception()
        if failure is not None:
            log.error("%s failed", task.get_name(), exc_info=failure)

    def _cancel_tasks(self) -> None:
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current and not task.done():
                task.cancel()
