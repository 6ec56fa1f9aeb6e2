"""Draw one real trace of the mesh: docs/observability/trace.png (and the spans as JSON beside it).

    .venv/bin/python scripts/trace_picture.py [--out docs/observability]

Starts what a user runs (two agent processes on the scripted model, the orchestrator with the
`analysis` pipeline, the bridge), with OTLP export to a receiver in this process, sends one A2A
message through the bridge with a2a-sdk's client, collects the trace and draws it as a waterfall:
one bar per span, indented by depth, coloured by service. matplotlib comes with `make setup` (the
`bench` extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Sequence
from typing import Any

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from meshscope.cli.launch import ServiceProcess, launch, meshscope_command
from meshscope.testing import child_env

REPO = Path(__file__).resolve().parent.parent
MESH = "agents: [analyst, writer]\npipelines:\n  analysis: {kind: sequential, steps: [analyst, writer]}\n"
COLOURS = {"meshscope-bridge": "#4c72b0", "meshscope-orchestrator": "#dd8452", "meshscope-agents": "#55a868"}


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []

    async def Export(  # noqa: N802
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.aio.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        {
                            "service": resource.get("service.name", ""),
                            "instance": resource.get("service.instance.id", ""),
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_id": span.parent_span_id.hex(),
                            "start_ns": span.start_time_unix_nano,
                            "end_ns": span.end_time_unix_nano,
                            "attributes": {
                                a.key: str(getattr(a.value, a.value.WhichOneof("value") or "string_value"))
                                for a in span.attributes
                                if not a.key.startswith("gen_ai.") or a.key.endswith(("model", "name"))
                            },
                        }
                    )
        return trace_service_pb2.ExportTraceServiceResponse()


async def one_trace(text: str) -> list[dict[str, Any]]:
    from a2a.client import ClientConfig, ClientFactory
    from a2a.types import a2a_pb2

    receiver = Receiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    processes: list[ServiceProcess] = []

    def started(*args: str, env: dict[str, str] | None = None) -> ServiceProcess:
        process = launch(
            meshscope_command(*args, "--port", "0"), child_env({**otel, **(env or {})}), cwd=REPO
        )
        processes.append(process)
        return process

    with tempfile.TemporaryDirectory() as folder:
        try:
            analyst = started("serve", "agents", "--agents", "analyst", "--model", "scripted")
            writer = started("serve", "agents", "--agents", "writer", "--model", "scripted")
            mesh = Path(folder) / "mesh.yaml"
            mesh.write_text(MESH)
            static = f"analyst={analyst.address};writer={writer.address}"
            orchestrator = started(
                "serve", "orchestrator", "-f", str(mesh), env={"MESHSCOPE_STATIC_ENDPOINTS": static}
            )
            bridge = started(
                "serve",
                "bridge",
                env={
                    "MESHSCOPE_ORCHESTRATOR": orchestrator.address,
                    "MESHSCOPE_BRIDGE_DATABASE_URL": "memory",
                },
            )
            async with httpx.AsyncClient(timeout=30) as http:
                client = await ClientFactory(ClientConfig(streaming=True, httpx_client=http)).create_from_url(
                    f"{bridge.address}/agents/analysis"
                )
                message = a2a_pb2.Message(
                    message_id=uuid.uuid4().hex, role=a2a_pb2.ROLE_USER, parts=[a2a_pb2.Part(text=text)]
                )
                async for _ in client.send_message(a2a_pb2.SendMessageRequest(message=message)):
                    pass
                await client.close()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # the bridge's request span is the last to end
                if any(s["name"].startswith("POST ") for s in receiver.spans):
                    break
                await asyncio.sleep(0.1)
        finally:
            for process in reversed(processes):
                await asyncio.to_thread(process.stop)
            await server.stop(0)
    root = next(s for s in receiver.spans if s["name"].startswith("POST "))
    return [s for s in receiver.spans if s["trace_id"] == root["trace_id"]]


def ordered(spans: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Depth-first from the root, children by start time."""
    children: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        children.setdefault(span["parent_id"], []).append(span)
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if s["parent_id"] not in ids]
    out: list[tuple[int, dict[str, Any]]] = []

    def walk(span: dict[str, Any], depth: int) -> None:
        out.append((depth, span))
        for child in sorted(children.get(span["span_id"], []), key=lambda s: s["start_ns"]):
            walk(child, depth + 1)

    for root in sorted(roots, key=lambda s: s["start_ns"]):
        walk(root, 0)
    return out


def draw(spans: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = ordered(spans)
    start = min(s["start_ns"] for s in spans)
    figure, axes = plt.subplots(figsize=(13, 0.32 * len(rows) + 1.6))
    figure.subplots_adjust(left=0.33, right=0.97, top=0.92, bottom=0.16)
    for index, (_depth, span) in enumerate(rows):
        left = (span["start_ns"] - start) / 1e6
        width = max((span["end_ns"] - span["start_ns"]) / 1e6, 0.05)
        axes.barh(index, width, left=left, color=COLOURS.get(span["service"], "#8c8c8c"), height=0.7)
        axes.text(left + width + 0.3, index, f"{width:.1f} ms", va="center", fontsize=7)
    axes.set_yticks(range(len(rows)))
    axes.set_yticklabels([])
    names = axes.get_yaxis_transform()  # x in axes fractions, y in rows
    for index, (depth, span) in enumerate(rows):
        x = -0.45 + 0.02 * depth
        axes.text(x, index, span["name"], transform=names, va="center", fontsize=8, family="monospace")
    axes.invert_yaxis()
    axes.set_xlabel("ms since the bridge received the request")
    axes.set_title(
        "One A2A request to the `analysis` pipeline (analyst, then writer): one trace", fontsize=10
    )
    handles = [Patch(color=c, label=s) for s, c in COLOURS.items()]
    axes.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=3)
    figure.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "observability")
    parser.add_argument("--text", default="summarise the quarterly figures")
    args = parser.parse_args(argv)
    spans = asyncio.run(one_trace(args.text))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "trace.json").write_text(json.dumps([s for _, s in ordered(spans)], indent=1) + "\n")
    draw(spans, args.out / "trace.png")
    for depth, span in ordered(spans):
        took = (span["end_ns"] - span["start_ns"]) / 1e6
        print(f"{span['service']:<24} {'  ' * depth}{span['name']:<48} {took:8.2f} ms")
    print(f"wrote {args.out / 'trace.png'} and trace.json ({len(spans)} spans)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
