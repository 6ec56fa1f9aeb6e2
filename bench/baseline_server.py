"""The baseline: a raw `grpc.aio` server streaming the echo workload.

It implements the same `AgentService.Invoke` and puts the same events on
the wire as the runtime's echo agent (reply_start, block_start, 20
text_delta of 4 words, block_end, reply_end with the whole reply), with
the same envelope fields and the same server options, but with no runtime:
no validation, no AgentScope objects, no state. Run in its own process:

    python bench/agent_path.py --serve-baseline

prints `meshscope: serving baseline on HOST:PORT` (the ready line `meshscope.cli.launch` waits for) and s
erves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from itertools import count

import grpc

from bench.workload import ECHO_AGENT, echo_chunks
from meshscope.services.runtime.config import ServerSettings
from meshscope.v1 import agent_pb2, agent_pb2_grpc, common_pb2

READY_PREFIX = "meshscope: serving baseline on"


def _now() -> str:
    return datetime.now().isoformat()


class RawEchoServicer(agent_pb2_grpc.AgentServiceServicer):
    """Streams the echo workload straight from protobuf messages."""

    async def Invoke(  # noqa: N802 - gRPC method name
        self, request: agent_pb2.InvokeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.AgentEvent]:
        text = " ".join(p.text for p in request.input.parts if p.text)
        reply_id = uuid.uuid4().hex
        block_id = uuid.uuid4().hex
        sequence = count(1)
        started_at = _now()

        def envelope() -> agent_pb2.AgentEvent:
            return agent_pb2.AgentEvent(
                sequence=next(sequence),
                event_id=uuid.uuid4().hex,
                reply_id=reply_id,
                created_at=_now(),
                agent=ECHO_AGENT,
            )

        event = envelope()
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
            event = envelope()
            event.text_delta.block_id = block_id
            event.text_delta.delta = chunk
            yield event
        event = envelope()
        event.block_end.block_id = block_id
        event.block_end.kind = agent_pb2.BLOCK_KIND_TEXT
        yield event
        event = envelope()
        event.reply_end.finished_reason = "completed"
        message = event.reply_end.message
        message.id = reply_id
        message.role = common_pb2.ROLE_ASSISTANT
        message.name = ECHO_AGENT
        message.parts.add(id=block_id, text="".join(chunks))
        message.created_at = started_at
        message.finished_reason = "completed"
        yield event


async def serve(
    register: Callable[[grpc.aio.Server], None] = lambda server: (
        agent_pb2_grpc.add_AgentServiceServicer_to_server(RawEchoServicer(), server)
    ),
    ready_prefix: str = READY_PREFIX,
    host: str = "127.0.0.1",
) -> None:
    """Serve a raw servicer (the baseline by default) with the runtime's server options until
    SIGTERM/SIGINT, announcing the address on stdout."""
    server = grpc.aio.server(options=ServerSettings().grpc_options())
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
