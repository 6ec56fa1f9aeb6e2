"""Coalescing under backpressure (MESHSCOPE_COALESCE_MAX_DELAY_MS), against real agent servers.

The reader is made slow for real: echo's deltas are large (4 words of 5,000 characters each,
20 KB) and the reader's channel has a fixed 64 KB HTTP/2 window (no BDP probing), so once it
stops reading, the server's writes stop at that window while the turn runs on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from itertools import cycle, islice

import grpc
import pytest

from meshscope.codec import Reply
from meshscope.services.echo import CHUNKS, WORDS_PER_CHUNK
from meshscope.services.runtime.server import AgentServer
from meshscope.testing import wait_for
from meshscope.v1 import agent_pb2, agent_pb2_grpc
from meshscope.wire import user_message
from tests.conftest import StartServer

pytestmark = pytest.mark.integration

WORD = "w" * 5_000
SLOW_READER = [("grpc.http2.bdp_probe", 0), ("grpc.max_receive_message_length", 8 * 2**20)]


async def read_slowly(
    server: AgentServer, text: str, pause: Callable[[], Awaitable[object]]
) -> list[agent_pb2.AgentEvent]:
    """One echo turn read up to its first text delta, then not at all until `pause()` returned."""
    events: list[agent_pb2.AgentEvent] = []
    async with grpc.aio.insecure_channel(server.address, options=SLOW_READER) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        call = stub.Invoke(agent_pb2.InvokeRequest(agent="echo", input=user_message(text)))
        paused = False
        async for event in call:
            events.append(event)
            if not paused and event.HasField("text_delta"):
                paused = True
                await pause()
    return events


def echoed(text: str) -> str:
    """What the echo agent replies to `text`: its words, cycled to 20 chunks of 4."""
    return " ".join(islice(cycle(text.split()), CHUNKS * WORDS_PER_CHUNK))


def check_stream(events: list[agent_pb2.AgentEvent], text: str) -> list[agent_pb2.AgentEvent]:
    """The stream is whole (sequences 1..n; the deltas' text and reply_end's message both the
    echo's reply to `text`, ending the stream); its text deltas."""
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    deltas = [e for e in events if e.HasField("text_delta")]
    assert "".join(d.text_delta.delta for d in deltas) == echoed(text)
    assert events[-1].HasField("reply_end")
    reply = Reply()
    for event in events:
        reply.add(event)
    assert reply.text == echoed(text)
    assert reply.rebuilt() == reply.message  # the receiver rebuilds the same reply from the deltas
    return deltas


async def turn_done(server: AgentServer) -> None:
    """Until the turn ran to its end on the server (every event produced), the reader waits."""

    async def completed() -> int:
        return server.stats.completed

    await wait_for(completed, lambda n: n >= 1)


async def test_a_slow_reader_gets_fewer_deltas_with_the_same_text(start_server: StartServer) -> None:
    server = await start_server(["echo"], coalesce_max_delay_ms=20)
    events = await read_slowly(server, WORD, lambda: turn_done(server))
    deltas = check_stream(events, WORD)
    assert len(deltas) < CHUNKS
    # The first delta of the block is never merged: it is the echo's first chunk alone.
    assert deltas[0].text_delta.delta == " ".join([WORD] * WORDS_PER_CHUNK)
    assert server.stats.completed == 1 and server.stats.failed == 0


async def test_off_every_delta_arrives_even_to_a_slow_reader(start_server: StartServer) -> None:
    server = await start_server(["echo"])
    other = await start_server(["echo"])

    async def another_turn() -> None:
        # Time for the writer to fall behind, if it could: a whole turn on another server.
        async with grpc.aio.insecure_channel(other.address) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            async for _ in stub.Invoke(agent_pb2.InvokeRequest(agent="echo", input=user_message(WORD))):
                pass

    events = await read_slowly(server, WORD, another_turn)
    assert len(check_stream(events, WORD)) == CHUNKS


async def test_a_reader_that_keeps_up_gets_the_same_text(start_server: StartServer) -> None:
    server = await start_server(["echo"], coalesce_max_delay_ms=20)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        for _ in range(5):
            call = stub.Invoke(agent_pb2.InvokeRequest(agent="echo", input=user_message("a b c")))
            deltas = check_stream([event async for event in call], "a b c")
            assert deltas[0].text_delta.delta == "a b c a"
