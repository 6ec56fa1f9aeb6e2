"""The bridge's ASGI application: every pipeline and agent of the mesh as an A2A agent.

Paths (each target's are a2a-sdk's own route factories, mounted under its prefix):

  GET  /agents/<name>/.well-known/agent-card.json   the card of pipeline or agent <name>
  POST /agents/<name>/                              JSON-RPC (A2A 1.0 and 0.3), SSE for streams
  ...  /agents/<name>/message:send, /tasks/{id}, /tasks/{id}:cancel, /tasks/{id}:subscribe, /tasks,
       /tasks/{id}/pushNotificationConfigs[/{push_id}]          HTTP+JSON (A2A 1.0; 0.3 under /v1/)
  the same at the root for the default target (MESHSCOPE_BRIDGE_DEFAULT_TARGET, else the first
  pipeline), whose card is at /.well-known/agent-card.json
  GET  /healthz                                     200 once serving (no data, no key needed)

One a2a-sdk `DefaultRequestHandler` serves every target, so a task can be read, listed, cancelled
or subscribed to under any of them: the target only picks what a *new* task runs (the route puts
it in the call context; the executor records it in the task's metadata, and follow-ups of a task
run the target that task ran). Unknown names are 404 and an orchestrator that cannot be reached
for the list of targets is 503, both in A2A's HTTP+JSON error shape; everything the SDK answers
has the A2A-specified codes (JSON-RPC -32700 parse error, -32600 invalid request, -32601 method
not found, -32602 invalid params, -32001 task not found, -32002 task not cancelable, -32009
version not supported..., and their HTTP+JSON statuses).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from a2a.server.agent_execution import SimpleRequestContextBuilder
from a2a.server.agent_execution.context import RequestContext
from a2a.server.cluster import LegacyTaskStoreAdapter, VersionedTaskStore
from a2a.server.context import ServerCallContext
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import (
    DefaultServerCallContextBuilder,
    create_agent_card_routes,
    create_jsonrpc_routes,
    create_rest_routes,
)
from a2a.server.tasks import BasePushNotificationSender
from a2a.types import a2a_pb2
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from meshscope import telemetry
from meshscope.orchestrator.bridge.cards import build_card
from meshscope.orchestrator.bridge.catalog import Catalog, CatalogUnavailable, Skill, Target
from meshscope.orchestrator.bridge.config import BridgeSettings, rate_limit_storage
from meshscope.orchestrator.bridge.executor import TARGET_STATE, MeshExecutor
from meshscope.orchestrator.bridge.security import (
    HEALTH_PATH,
    Guard,
    PushUrlPolicy,
    RateLimit,
    refuse,
)
from meshscope.orchestrator.bridge.stores import TaskStores
from meshscope.orchestrator.bridge.tracing import inject_trace_context, traced
from meshscope.orchestrator.client import OrchestratorClient

__all__ = ["Bridge"]

log = logging.getLogger(__name__)

PREFIX = "/agents/"
STOP_RUNS_S = 2.0
"""Of the shutdown grace, how much is kept for recording the runs that did not finish as FAILED."""
PUSH_TIMEOUT_S = 10.0
"""How long one push-notification delivery may take (a slow webhook must not hold a run)."""


class _TargetCallContext(DefaultServerCallContextBuilder):
    """The SDK's call context (user, headers), plus the target the request's path names."""

    def __init__(self, target: str) -> None:
        self._target = target

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state[TARGET_STATE] = self._target
        return context


class _KeepTaskContext(SimpleRequestContextBuilder):
    """A follow-up that names a task but no context keeps the task's context.

    a2a-sdk 1.3.0 gives such a message a new context id (upstream a2a-python #1206), which here
    would start a new session: the conversation would forget itself. The task's own context id
    is read from the store and put on the message before the SDK builds the request context.
    """

    def __init__(self, tasks: VersionedTaskStore) -> None:
        super().__init__(should_populate_referred_tasks=False, task_store=None)
        self._tasks = tasks

    async def build(
        self,
        context: ServerCallContext,
        params: a2a_pb2.SendMessageRequest | None = None,
        task_id: str | None = None,
        context_id: str | None = None,
        task: a2a_pb2.Task | None = None,
    ) -> RequestContext:
        if task_id and not context_id and params is not None:
            stored = await self._tasks.get(task_id, context)
            if stored is not None and stored.task.context_id:
                context_id = stored.task.context_id
                params.message.context_id = context_id
        return await super().build(context, params, task_id, context_id, task)


def _template_card() -> a2a_pb2.AgentCard:
    """What the shared handler checks capabilities against (every target's card has the same)."""
    return build_card(
        Target("meshscope", "bridge", "The meshscope A2A bridge.", (Skill("run"),), ()),
        "http://127.0.0.1",
        version="0",
        secured=False,
    )


async def _healthy(send: Send) -> None:
    body = b'{"status":"serving"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Bridge:
    """The bridge: its request handler, its per-target apps, and the ASGI entry (`app`)."""

    def __init__(
        self,
        settings: BridgeSettings,
        orchestrator: OrchestratorClient,
        stores: TaskStores,
        *,
        base_url: str,
        version: str,
        instance: str = "",
    ) -> None:
        """`instance`: this process (`recovery.BridgeInstance.id`), recorded in each task it runs."""
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self._version = version
        self._orchestrator = orchestrator
        self._stores = stores
        self.catalog = Catalog(orchestrator, settings.catalog_ttl_s)
        policy = PushUrlPolicy(settings.push_allowed_hosts, settings.push_allow_private)
        # Push notifications carry the task's trace context (traceparent), when tracing is on.
        hooks = {"request": [inject_trace_context]} if telemetry.enabled() else {}
        self._http = httpx.AsyncClient(timeout=PUSH_TIMEOUT_S, event_hooks=hooks)
        self._executor = MeshExecutor(orchestrator, flush_s=settings.flush_ms / 1000, instance=instance)
        self.draining = False
        self.handler = DefaultRequestHandler(
            agent_executor=self._executor,
            task_store=stores.tasks,
            agent_card=_template_card(),
            push_config_store=stores.push_configs,
            push_sender=BasePushNotificationSender(
                self._http, stores.push_configs, push_url_validator=policy
            ),
            request_context_builder=_KeepTaskContext(
                stores.tasks
                if isinstance(stores.tasks, VersionedTaskStore)
                else LegacyTaskStoreAdapter(stores.tasks)
            ),
            push_url_validator=policy,
            event_stream=stores.events,
        )
        self._apps: dict[str, tuple[Target, str, ASGIApp]] = {}
        rate_limit = (
            RateLimit(settings.rate_limit, rate_limit_storage(settings.rate_limit_storage))
            if settings.rate_limit
            else None
        )
        self.app: ASGIApp = Guard(
            self._dispatch,
            max_body_bytes=settings.max_body_bytes,
            api_keys=settings.api_keys,
            rate_limit=rate_limit,
        )
        if telemetry.on():
            self.app = traced(self.app)

    async def drain(self, grace_s: float) -> None:
        """The graceful stop (SIGTERM): refuse new requests with 503, let the runs in progress
        finish within `grace_s`, then stop the rest, their tasks recorded FAILED (retryable, reason
        DRAINING) so that no task is left WORKING by a bridge that stopped cleanly."""
        self.draining = True
        stop_s = min(STOP_RUNS_S, grace_s / 2)
        if not await self._executor.wait_idle(grace_s - stop_s):
            await self._executor.stop_all(stop_s)

    async def aclose(self) -> None:
        """Stop the tasks this bridge runs (their runs are cancelled) and close its clients."""
        await self.handler.aclose()
        await self._http.aclose()

    def _target_app(self, target: Target, url: str) -> ASGIApp:
        cached = self._apps.get(url)
        if cached is not None and cached[0] == target:
            return cached[2]
        card = build_card(target, url, version=self._version, secured=bool(self.settings.api_keys))
        context = _TargetCallContext(target.name)
        routes: list[Any] = list(
            create_agent_card_routes(
                card,
                card_url=AGENT_CARD_WELL_KNOWN_PATH,
                cache_control=f"public, max-age={self.settings.card_max_age_s}",
            )
        )
        routes += create_jsonrpc_routes(self.handler, "/", context_builder=context, enable_v0_3_compat=True)
        # The SDK also mounts every route under "/{tenant}"; tenants are not used here, and that
        # catch-all mount would answer for paths that are nobody's.
        routes += [
            r
            for r in create_rest_routes(self.handler, context_builder=context, enable_v0_3_compat=True)
            if not isinstance(r, Mount)
        ]
        app = Starlette(routes=routes)
        self._apps[url] = (target, card.name, app)
        return app

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        path: str = scope["path"]
        if self.draining:
            await refuse(scope, send, 503, "UNAVAILABLE", "the bridge is shutting down; try another replica")
            return
        if path == HEALTH_PATH:
            await _healthy(send)
            return
        try:
            if path.startswith(PREFIX):
                name = path[len(PREFIX) :].partition("/")[0]
                target = await self.catalog.get(name) if name else None
                if target is None:
                    known = ", ".join(sorted(await self.catalog.targets()))
                    await refuse(
                        scope,
                        send,
                        404,
                        "NOT_FOUND",
                        f"no agent or pipeline named {name!r} (known: {known or 'none'})",
                    )
                    return
                root = f"{PREFIX}{name}"
                app = self._target_app(target, f"{self.base_url}{root}")
                scope = {**scope, "root_path": scope.get("root_path", "") + root}
            else:
                target = await self.catalog.default(self.settings.default_target)
                if target is None:
                    await refuse(scope,
                        send, 404, "NOT_FOUND",
                        "the mesh has no pipeline or agent to serve at the root"
                        + (f" (MESHSCOPE_BRIDGE_DEFAULT_TARGET={self.settings.default_target!r} is unknown)"
                           if self.settings.default_target else ""),
                    )  # fmt: skip
                    return
                app = self._target_app(target, self.base_url)
        except CatalogUnavailable as exc:
            await refuse(scope, send, 503, "UNAVAILABLE", str(exc))
            return
        await app(scope, receive, send)
