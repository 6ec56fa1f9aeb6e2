"""`coalesce`'s merging rules, on streams whose events are all queued before the writer looks.

A producer that never waits (these generators) fills the queue before the writer takes its
first event, so the writer finds itself behind at every step: each rule is seen deterministically.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable

import pytest

from meshscope.services.runtime.coalesce import coalesce
from meshscope.v1 import agent_pb2

LIMIT = 4 * 2**20


def delta(text: str, block: str = "b1", reply: str = "r1") -> agent_pb2.AgentEvent:
    event = agent_pb2.AgentEvent(reply_id=reply, agent="echo", event_id=f"e-{text}")
    event.text_delta.block_id = block
    event.text_delta.delta = text
    return event


def other(kind: str, block: str = "b1") -> agent_pb2.AgentEvent:
    event = agent_pb2.AgentEvent(reply_id="r1", agent="echo")
    wire = getattr(event, kind)
    wire.SetInParent()
    if kind in ("block_start", "block_end", "thinking_delta"):
        wire.block_id = block
    if kind == "thinking_delta":
        wire.delta = "hmm"
    return event


async def stream(
    events: Iterable[agent_pb2.AgentEvent], failure: Exception | None = None
) -> AsyncGenerator[agent_pb2.AgentEvent, None]:
    for sequence, event in enumerate(events, 1):
        event.sequence = sequence
        yield event
    if failure is not None:
        raise failure


async def sent(
    events: Iterable[agent_pb2.AgentEvent], *, max_bytes: int = LIMIT, failure: Exception | None = None
) -> list[agent_pb2.AgentEvent]:
    return [e async for e in coalesce(stream(events, failure), 0.01, max_bytes=max_bytes)]


def shape(events: list[agent_pb2.AgentEvent]) -> list[str]:
    """Each event as `kind` or, for text deltas, their text."""
    return [e.text_delta.delta if e.HasField("text_delta") else str(e.WhichOneof("kind")) for e in events]


async def test_the_first_delta_goes_alone_and_the_rest_of_the_block_is_merged() -> None:
    out = await sent([other("reply_start"), other("block_start"), *map(delta, "abcd"), other("block_end")])
    assert shape(out) == ["reply_start", "block_start", "a", "bcd", "block_end"]
    assert [e.sequence for e in out] == [1, 2, 3, 4, 5]
    assert out[3].event_id == "e-b"  # the merged delta keeps its first event's id


async def test_never_across_blocks_replies_or_kinds() -> None:
    events = [
        delta("a"), delta("b"), delta("c"),
        delta("x", block="b2"), delta("y", block="b2"), delta("z", block="b2"),
        delta("p", reply="r2"), delta("q", reply="r2"),
        other("thinking_delta"), other("thinking_delta"),
        delta("d"), delta("e"),
    ]  # fmt: skip
    out = await sent(events)
    assert shape(out) == ["a", "bc", "x", "yz", "p", "q", "thinking_delta", "thinking_delta", "d", "e"]
    assert [e.sequence for e in out] == list(range(1, 11))


async def test_a_merge_stays_within_the_message_limit() -> None:
    chunk = "w" * 100
    limit = 3 * delta(chunk).ByteSize() + 10  # room for three deltas and their sequence numbers
    out = await sent([delta(chunk) for _ in range(10)], max_bytes=limit)
    assert [len(d) // 100 for d in shape(out)] == [1, 3, 3, 3]
    assert all(e.ByteSize() <= limit for e in out)


async def test_a_failure_is_raised_after_the_events_before_it() -> None:
    got: list[agent_pb2.AgentEvent] = []
    with pytest.raises(RuntimeError, match="agent broke"):
        events = stream(map(delta, "abc"), RuntimeError("agent broke"))
        async for event in coalesce(events, 0.01, max_bytes=LIMIT):
            got.append(event)
    assert "".join(shape(got)) == "abc"
