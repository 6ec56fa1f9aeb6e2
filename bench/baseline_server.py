"""The baseline: a raw `grpc.aio` server streaming the echo workload.

It implements the same `AgentService.Invoke` and puts the same events on
the wire as the runtime's echo agent (reply_start, block_start, 20
text_delta of 4 words, block_end, reply_end with the whole reply), with
the same envelope fields (reply id and agent on the reply's start and end,
no event id or block id on deltas: the rule on `AgentEvent`) and the same
server options, but with no runtime:
no validation, no AgentScope objects, no state. Run in its own process:

    python bench/agent_path.py --serve-baseline

prints `meshscope: serving baseline on HOST:PORT` (the ready line `meshscope.cli.launch` waits for) and s
erves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from itertools import count

import grpc

from bench.workload import ECHO_AGENT, echo_chunks
from meshscope.codec import iso_time
from meshscope.serving import ServeSettings
from meshscope.v1 import agent_pb2, agent_pb2_grpc, common_pb2

READY_PREFIX = "meshscope: serving baseline on"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RawEchoServicer(agent_pb2_grpc.AgentServiceServicer):
    """Streams the echo workload straight from protobuf messages."""

    async def Invoke(  # noqa: N802 - gRPC method name
        self, request: agent_pb2.InvokeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.AgentEvent]:
        text = " ".join(p.text for p in request.input.parts if p.text)
        reply_id = uuid.uuid4().hex
        block_id = uuid.uuid4().hex
        sequence = count(1)
        started_at = _now_ms()

        def envelope(*, delta: bool = False, named: bool = False) -> agent_pb2.AgentEvent:
            event = agent_pb2.AgentEvent(sequence=next(sequence), created_at_ms=_now_ms())
            if not delta:
                event.event_id = uuid.uuid4().hex
            if named:
                event.reply_id, event.agent = reply_id, ECHO_AGENT
            return event

        event = envelope(named=True)
        event.created_at_ms = started_at
        event.reply_start.session_id = request.session_id or uuid.uuid4().hex
        event.reply_start.name = ECHO_AGENT
        event.reply_start.role = common_pb2.ROLE_ASSISTANT
        yield event
        event = envelope()
        event.block_start.block_id = block_id
        event.block_start.kind = agent_pb2.BLOCK_KIND_TEXT
        yield event
        chunks = echo_chunks(text)
        for chunk in chunks:
            event = envelope(delta=True)
            event.text_delta.delta = chunk
            yield event
        event = envelope()
        event.block_end.block_id = block_id
        event.block_end.kind = agent_pb2.BLOCK_KIND_TEXT
        yield event
        event = envelope(named=True)
        event.reply_end.finished_reason = "completed"
        message = event.reply_end.message
        message.id = reply_id
        message.role = common_pb2.ROLE_ASSISTANT
        message.name = ECHO_AGENT
        message.parts.add(id=block_id, text="".join(chunks))
        message.created_at = iso_time(started_at)
        message.finished_reason = "completed"
        yield event


async def serve(
    register: Callable[[grpc.aio.Server], None] = lambda server: (
        agent_pb2_grpc.add_AgentServiceServicer_to_server(RawEchoServicer(), server)
    ),
    ready_prefix: str = READY_PREFIX,
    host: str = "127.0.0.1",
) -> None:
    """Serve a raw servicer (the baseline by default) with the server options every meshscope
    server has (`meshscope.serving`), but none of the server core's work, until SIGTERM/SIGINT,
    announcing the address on stdout."""
    server = grpc.aio.server(options=ServeSettings().server_options())
    register(server)
    bound = server.add_insecure_port(f"{host}:0")
    await server.start()
    print(f"{ready_prefix} {host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0)
