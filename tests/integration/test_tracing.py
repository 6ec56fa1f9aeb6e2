"""One trace from an A2A client through the bridge, the orchestrator and an agent: real processes
exporting OTLP over gRPC to a receiver this test runs (the OTLP stubs of `opentelemetry-proto`)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import uvicorn
from a2a.client import ClientConfig, ClientFactory
from a2a.types import a2a_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshscope.cli.launch import launch, meshscope_command
from meshscope.testing import child_env, wait_for
from tests.support import REPO, start_agents, start_orchestrator

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver: keeps every span with its service's name."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []
        self.resources: list[tuple[str, dict[str, str]]] = []

    async def Export(  # noqa: N802
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.aio.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"),
                "",
            )
            self.resources.append(
                (service, {a.key: a.value.string_value for a in resource_spans.resource.attributes})
            )
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend((service, span) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, Receiver]]:
    server = grpc.aio.server()
    servicer = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"http://127.0.0.1:{port}", servicer
    await server.stop(0)


async def test_one_trace_from_the_a2a_client_through_the_bridge_orchestrator_and_agent(
    receiver: tuple[str, Receiver], tmp_path: Path
) -> None:
    endpoint, spans = receiver
    pushed: list[str] = []

    async def hook(request: Request) -> Response:
        pushed.append(request.headers.get("traceparent", ""))
        return Response(status_code=200)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    webhook = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    receiving = uvicorn.Server(
        uvicorn.Config(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), log_level="warning")
    )
    serving = asyncio.create_task(receiving.serve(sockets=[sock]))
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    analyst = start_agents(["--agents", "analyst", "--model", "scripted"], otel)
    writer = start_agents(["--agents", "writer", "--model", "scripted"], otel)
    orchestrator = start_orchestrator(
        tmp_path / "mesh.yaml",
        "agents: [analyst, writer]\npipelines:\n  analysis: {kind: sequential, steps: [analyst, writer]}\n",
        {"analyst": analyst.address, "writer": writer.address},
        env=otel,
    )
    bridge = launch(
        meshscope_command("serve", "bridge", "--port", "0"),
        child_env(
            {
                **otel,
                "MESHSCOPE_ORCHESTRATOR": orchestrator.address,
                "MESHSCOPE_BRIDGE_DATABASE_URL": "memory",
                "MESHSCOPE_BRIDGE_PUSH_ALLOW_PRIVATE": "true",
            }
        ),
        cwd=REPO,
        timeout=60,
    )
    try:
        traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
        http = httpx.AsyncClient(timeout=30, headers={"traceparent": traceparent})
        client = await ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create_from_url(
            f"{bridge.address}/agents/analysis"
        )
        message = a2a_pb2.Message(
            message_id=uuid.uuid4().hex,
            role=a2a_pb2.ROLE_USER,
            parts=[a2a_pb2.Part(text="summarise the quarterly figures")],
        )
        request = a2a_pb2.SendMessageRequest(message=message)
        request.configuration.task_push_notification_config.url = webhook
        async for _ in client.send_message(request):
            pass
        await client.close()

        def chain_from_the_writer() -> list[str]:
            """The span names from the writer's model call up its parents, as far as they have arrived."""
            by_id = {span.span_id: (service, span) for service, span in spans.spans}
            span = next(
                (
                    s
                    for svc, s in spans.spans
                    if svc == "meshscope-agents"
                    and s.name.startswith("chat ")
                    and _attribute(s, "gen_ai.agent.name") in ("writer", None)
                    and _in_writer(s, by_id)
                ),
                None,
            )
            names = []
            while span is not None and span.trace_id.hex() == TRACE_ID:
                names.append(f"{by_id[span.span_id][0]}:{span.name}")
                span = by_id.get(span.parent_span_id, (None, None))[1]
            return names

        def _in_writer(span: Any, by_id: dict[bytes, tuple[str, Any]]) -> bool:
            parent = by_id.get(span.parent_span_id, (None, None))[1]
            return parent is not None and parent.name == "invoke_agent writer"

        async def arrived() -> list[str]:
            return chain_from_the_writer()

        # Every span of the chain exported (batched every 100 ms) before the processes stop.
        path = await wait_for(
            arrived, lambda p: bool(p) and p[-1] == "meshscope-bridge:POST /agents/{target}/", timeout=20
        )

        async def notifications() -> list[str]:
            return pushed

        await wait_for(notifications, bool, timeout=10)
    finally:
        for process in (bridge, orchestrator, writer, analyst):
            await asyncio.to_thread(process.stop)  # the receiver runs on this loop: keep it serving
        receiving.should_exit = True
        await serving
        sock.close()
    # The push notifications carry the task's trace on to the webhook.
    assert pushed and all(tp.startswith(f"00-{TRACE_ID}-") for tp in pushed), pushed
    assert path == [
        "meshscope-agents:chat scripted",
        "meshscope-agents:invoke_agent writer",
        "meshscope-agents:/meshscope.v1.AgentService/Invoke",
        "meshscope-orchestrator:/meshscope.v1.AgentService/Invoke",
        "meshscope-orchestrator:step writer",
        "meshscope-orchestrator:run analysis",
        "meshscope-orchestrator:/meshscope.v1.Orchestrator/Run",
        "meshscope-bridge:/meshscope.v1.Orchestrator/Run",
        "meshscope-bridge:POST /agents/{target}/",
    ], path
    ours = [span for service, span in spans.spans if span.trace_id.hex() == TRACE_ID]
    bridge_span = next(span for span in ours if span.name == "POST /agents/{target}/")
    assert bridge_span.parent_span_id.hex() == PARENT_ID  # the A2A client's own span is its parent
    assert _attribute(bridge_span, "meshscope.target") == "analysis"
    assert _attribute(bridge_span, "http.route") == "/agents/{target}/"
    steps = {_attribute(s, "meshscope.agent"): s for s in ours if s.name.startswith("step ")}
    assert set(steps) == {"analyst", "writer"}
    assert _attribute(steps["writer"], "meshscope.replica") == f"writer@{writer.address}"
    assert _attribute(steps["writer"], "meshscope.session.id")  # the A2A context
    run = next(s for s in ours if s.name == "run analysis")
    assert _attribute(run, "meshscope.target.kind") == "sequential"
    # Message content is in the agents' spans unless turned off (see the next test).
    assert any("quarterly figures" in str(_attribute(s, "gen_ai.input.messages")) for s in ours)
    assert not [
        span.name for _, span in spans.spans if "grpc.health" in span.name
    ]  # health checks make no span
    resources = {service: attributes for service, attributes in spans.resources}
    assert resources["meshscope-agents"]["meshscope.replica.ids"] in (
        f"analyst@{analyst.address}",
        f"writer@{writer.address}",
    )


def _attribute(span: Any, key: str) -> Any:
    """A span attribute's value (string, int, bool or double), or None."""
    for attribute in span.attributes:
        if attribute.key == key:
            value = attribute.value
            return getattr(value, value.WhichOneof("value"))
    return None


@pytest.mark.parametrize("capture", ["true", "false"])
async def test_message_content_in_spans_follows_its_switch(
    receiver: tuple[str, Receiver], capture: str
) -> None:
    from meshscope.services.runtime.client import AgentClient

    endpoint, spans = receiver
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": capture,
    }
    agents = start_agents(["--agents", "analyst", "--model", "scripted"], env)
    try:
        async with AgentClient(agents.address) as client:
            await client.reply("analyst", "the passphrase is marmalade-7731")
            with pytest.raises(Exception):  # noqa: B017, PT011 - a failed turn: its error texts are spans' too
                await client.reply("analyst", "#fail")

        async def model_spans() -> list[Any]:
            return [s for _, s in spans.spans if s.name.startswith(("chat ", "invoke_agent "))]

        found = await wait_for(model_spans, lambda found: len(found) >= 4, timeout=20)
    finally:
        await asyncio.to_thread(agents.stop)
    texts = " ".join(str(getattr(a.value, a.value.WhichOneof("value"))) for s in found for a in s.attributes)
    assert ("marmalade-7731" in texts) == (capture == "true"), texts
    assert "gen_ai.request.model" in {a.key for s in found for a in s.attributes}  # the rest stays
    # Error text (which may quote the input) goes with the content; the ERROR status and type stay.
    every = [span for _, span in spans.spans]
    failed = [span for span in every if span.status.code == span.status.STATUS_CODE_ERROR]
    assert failed
    described = [span.status.message for span in failed if span.status.message]
    told = [
        a.key for span in every for e in span.events for a in e.attributes if a.key == "exception.message"
    ]
    typed = [a.key for span in every for e in span.events for a in e.attributes if a.key == "exception.type"]
    assert bool(described) == bool(told) == (capture == "true"), (described, told)
    assert typed


def test_with_nothing_configured_tracing_loads_nothing_and_adds_no_interceptor() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, meshscope.telemetry as t; on = t.configure('x'); "
        "sdk = 'opentelemetry.sdk.trace' in sys.modules; "
        "print(on, sdk, t.server_interceptors(), t.client_interceptors())"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=child_env(), capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "False False [] []", done.stderr


def test_the_console_exporter_prints_spans_on_stdout() -> None:
    import asyncio

    from meshscope.services.runtime.client import AgentClient

    agents = start_agents(["--agents", "analyst", "--model", "scripted"], {"OTEL_TRACES_EXPORTER": "console"})
    try:

        async def call() -> None:
            async with AgentClient(agents.address) as client:
                await client.reply("analyst", "hello")

        asyncio.run(call())
    finally:
        assert agents.stop() == 0  # the exit flushes the batched spans
    printed = "\n".join(agents.log)
    assert '"name": "/meshscope.v1.AgentService/Invoke"' in printed
    assert '"service.name": "meshscope-agents"' in printed
