"""The `Orchestrator` gRPC service and the server that hosts it (on the shared server core)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import duration_pb2

from meshscope import paging
from meshscope.discovery.watcher import Watcher
from meshscope.orchestrator import sessions
from meshscope.orchestrator.config import OrchestratorSettings
from meshscope.orchestrator.failures import Reason
from meshscope.orchestrator.pipelines import MeshFile
from meshscope.orchestrator.pool import EndpointPool
from meshscope.orchestrator.runs import OutEvent, Run, RunFailed, Runner, encoded
from meshscope.server import InFlight, Server, Service
from meshscope.telemetry.instruments import observe_healthy_replicas
from meshscope.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from meshscope.wire import MAX_KEY_LENGTH, MAX_RUN_TIMEOUT_S, key_problem, reason_metadata

log = logging.getLogger("meshscope.orchestrator")

SERVICE_NAME = orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name
DEADLINE_MARGIN_S = 0.05
INVALID_INPUT = common_pb2.ERROR_REASON_INVALID_INPUT


def _duration_problem(value: duration_pb2.Duration) -> str | None:
    """Why a Duration breaks protobuf's rules (None when it is valid).

    Seconds within +-315,576,000,000, |nanos| below 1e9, and both of the same sign:
    protobuf's own check (run by its JSON encoder) says which rule is broken.
    """
    try:
        value.ToJsonString()
    except ValueError as exc:
        return str(exc)
    return None


async def _abort(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str, reason: Reason
) -> None:
    """End the call with status `code` and `message`, `reason` declared in the trailing metadata."""
    context.set_trailing_metadata(reason_metadata(reason))
    await context.abort(code, message)


def _check_key(value: str, field: str) -> str | None:
    """Why a session or user id is unacceptable, as `field: reason` (None when it is fine)."""
    problem = key_problem(value)
    return None if problem is None else f"{field}: {problem}"


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServicer):
    def __init__(
        self,
        runner: Runner,
        pool: EndpointPool,
        settings: OrchestratorSettings,
        draining: Callable[[], bool],
    ) -> None:
        self.runner = runner
        self.pool = pool
        self.settings = settings
        self._draining = draining

    def _invalid(self, request: orchestrator_pb2.RunRequest) -> str | None:
        if not request.target:
            return "target: is required (an agent or a pipeline name)"
        if len(request.target) > MAX_KEY_LENGTH:
            # Error messages quote the target: bounded, so they always fit gRPC's metadata limit.
            return f"target: must be at most {MAX_KEY_LENGTH} characters, got {len(request.target)}"
        if not request.HasField("input") or not request.input.parts:
            return "input: is required and must contain at least one part"
        if request.input.role not in (common_pb2.ROLE_UNSPECIFIED, common_pb2.ROLE_USER):
            return "input.role: an input message must have ROLE_USER"
        if request.HasField("timeout"):
            # Checked on the raw fields: ToTimedelta overflows on huge values, and gRPC
            # deadlines do long before that.
            seconds = request.timeout.seconds + request.timeout.nanos / 1e9
            if not 0 < seconds <= MAX_RUN_TIMEOUT_S:
                return f"timeout: must be positive and at most {MAX_RUN_TIMEOUT_S} seconds"
            problem = _duration_problem(request.timeout)  # e.g. 5 s and -1 ns: in range, not valid
            if problem:
                return f"timeout: {problem}"
        return _check_key(request.session_id, "session_id") or _check_key(request.user_id, "user_id")

    async def Run(  # noqa: N802 - gRPC method name
        self, request: orchestrator_pb2.RunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[OutEvent]:
        if self._draining():
            await _abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "orchestrator is shutting down; retry on another one",
                common_pb2.ERROR_REASON_DRAINING,
            )
        problem = self._invalid(request)
        if problem:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, problem, INVALID_INPUT)
        mesh = self.runner.mesh
        if (
            request.target not in mesh.pipelines
            and request.target not in mesh.agents
            and not self.pool.has_replicas(request.target)
        ):
            known = ", ".join(sorted({*mesh.pipelines, *mesh.agents, *self.pool.agents()}))
            await _abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"no agent or pipeline {request.target!r}; known: {known}",
                common_pb2.ERROR_REASON_NOT_FOUND,
            )
        for agent in self.runner.agents_of(request.target):
            if not self.pool.has_replicas(agent):
                await _abort(
                    context,
                    grpc.StatusCode.UNAVAILABLE,
                    f"agent {agent!r} has no healthy replica",
                    common_pb2.ERROR_REASON_AGENT_UNAVAILABLE,
                )
        budget = (
            request.timeout.ToTimedelta().total_seconds()
            if request.HasField("timeout")
            else self.settings.run_timeout_s
        )
        remaining = context.time_remaining()
        if remaining is not None:
            # Leave a moment so a caller with only a gRPC deadline still gets the error event.
            budget = min(budget, max(0.0, remaining - DEADLINE_MARGIN_S))
        run = Run(request=request, deadline=time.monotonic() + budget)
        try:
            # aclosing: a cancelled call stops the run's steps now, not at garbage collection.
            async with contextlib.aclosing(self.runner.stream(run)) as events:
                async for event in events:
                    yield event
        except RunFailed as failure:
            await _abort(context, failure.code, failure.message, failure.reason)

    async def ListAgents(  # noqa: N802
        self, request: orchestrator_pb2.ListAgentsRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.ListAgentsResponse:
        now = time.monotonic()
        response = orchestrator_pb2.ListAgentsResponse()
        for name in sorted(set(self.pool.agents()) | set(self.runner.mesh.agents)):
            endpoints = self.pool.endpoints(name)
            info = response.agents.add(name=name)
            if endpoints:
                meta = endpoints[0].instance.meta
                info.card.CopyFrom(
                    common_pb2.AgentCard(
                        name=name,
                        description=meta.get("description", ""),
                        skills=[common_pb2.Skill(id=s) for s in meta.get("skills", "").split(",") if s],
                        version=meta.get("version", ""),
                        protocol_version=meta.get("protocol_version", ""),
                        model=meta.get("model", ""),
                        streaming=True,
                    )
                )
            for e in endpoints:
                info.replicas.add(
                    id=e.replica_id, address=e.instance.address, health=e.health(now), in_flight=e.in_flight,
                    meta=dict(e.instance.meta),
                )  # fmt: skip
        return response

    async def ListPipelines(  # noqa: N802
        self, request: orchestrator_pb2.ListPipelinesRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.ListPipelinesResponse:
        response = orchestrator_pb2.ListPipelinesResponse()
        for name, p in sorted(self.runner.mesh.pipelines.items()):
            response.pipelines.add(
                name=name, kind=p.kind, description=p.description, agents=self.runner.agents_of(name)
            )
        return response

    async def ListSessions(  # noqa: N802
        self, request: common_pb2.ListSessionsRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.ListSessionsResponse:
        problem = _check_key(request.user_id, "user_id")
        if problem:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, problem, INVALID_INPUT)
        listed = await self._sessions(
            context,
            lambda: sessions.list_sessions(self.pool, request, self.settings.max_message_bytes),
        )
        assert isinstance(listed, common_pb2.ListSessionsResponse)
        return listed

    async def _sessions(self, context: grpc.aio.ServicerContext, call: Any) -> Any:
        """Run `call()`: a bad page size or token is INVALID_ARGUMENT, a replica's status is passed on."""
        try:
            return await call()
        except paging.PageTokenError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc), INVALID_INPUT)
        except sessions.SessionsFailed as exc:
            await _abort(context, exc.code, exc.message, exc.reason)

    async def _session_call(self, session_id: str, context: grpc.aio.ServicerContext, call: Any) -> Any:
        """Validate the session id, then run `call()` (see `_sessions`)."""
        problem = "session_id: is required" if not session_id else _check_key(session_id, "session_id")
        if problem:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, problem, INVALID_INPUT)
        return await self._sessions(context, call)

    async def GetSession(  # noqa: N802
        self, request: common_pb2.GetSessionRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Session:
        found = await self._session_call(
            request.session_id,
            context,
            lambda: sessions.get_session(self.pool, request, self.settings.max_message_bytes),
        )
        if found is None:
            await _abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"no session {request.session_id!r}",
                common_pb2.ERROR_REASON_NOT_FOUND,
            )
        assert isinstance(found, common_pb2.Session)
        return found

    async def DeleteSession(  # noqa: N802
        self, request: common_pb2.DeleteSessionRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.DeleteSessionResponse:
        deleted = await self._session_call(
            request.session_id, context, lambda: sessions.delete_session(self.pool, request.session_id)
        )
        return common_pb2.DeleteSessionResponse(deleted=bool(deleted))


class OrchestratorServer(Server):
    """The orchestrator process: discovery watcher -> pool -> runner -> gRPC service, on the
    shared server core (`meshscope.server.Server`). At the end of the shutdown grace, runs
    still open are failed (an error event, UNAVAILABLE, reason CUT_OFF); then the watcher
    stops and the pool closes its channels."""

    settings: OrchestratorSettings

    def __init__(
        self, mesh: MeshFile, watcher: Watcher, settings: OrchestratorSettings | None = None
    ) -> None:
        settings = settings or OrchestratorSettings()
        self.mesh = mesh
        self.watcher = watcher
        self.pool = EndpointPool(
            settings,
            eject_s=settings.eject_s,
            max_pending_streams=settings.max_pending_streams,
            panic_grace_s=settings.panic_grace_s,
        )
        self.runner = Runner(
            self.pool,
            mesh,
            attempts=settings.retry_attempts,
            max_message_bytes=settings.max_message_bytes,
        )
        servicer = OrchestratorServicer(self.runner, self.pool, settings, lambda: self.draining)
        super().__init__(
            settings,
            [
                # Run's events are encoded by `encoded`: relayed ones are RelayedRunEvents
                # (RunEvents on the wire, relay.proto), which the generated encoder refuses.
                Service(
                    SERVICE_NAME,
                    orchestrator_pb2_grpc.add_OrchestratorServicer_to_server,
                    servicer,
                    {"Run": encoded},
                )
            ],
            what="orchestrator",
            in_flight=InFlight(self.runner.idle, self._cut_off, "run(s)"),
        )
        self.add_closer(self.watcher.stop)
        self.add_closer(self.pool.close)
        observe_healthy_replicas(self.pool.healthy_counts)

    async def start(self) -> None:
        """Watch discovery (every replica set it publishes reaches the pool), then serve."""
        self.watcher.add_listener(self.pool.update)
        await self.watcher.start()
        await super().start()
        log.info("orchestrator has %d pipeline(s)", len(self.mesh.pipelines))

    def _cut_off(self, grace_s: float) -> int:
        return self.runner.interrupt(
            f"orchestrator is shutting down: the run was cut off after the {grace_s:g}s grace period"
        )
