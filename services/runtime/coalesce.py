"""Coalescing under backpressure: text deltas of one block merged while the writer is behind.

Off by default (MESHSCOPE_COALESCE_MAX_DELAY_MS=0): every event of a turn is one message.
On (`coalesce(events, max_delay_s)`), the turn runs in a task of its own that puts its wire
events on a small queue (`QUEUE_EVENTS`), and the call's writer, each time gRPC has taken
its previous message, takes the next from the queue:

- behind is observed, never guessed: only when the writer comes back and finds more events
  queued behind the one it takes does it merge: a `text_delta` followed in the queue by
  `text_delta`s of the same reply, block and agent is sent as one delta carrying their
  texts joined, with the first one's event id and time;
- never the first delta of a block (the writer's last message was not a delta of that
  block: sent alone, at once, so the time to first content is unchanged), never across
  blocks, replies or kinds (any other event ends a merge), never a non-text kind;
- once behind, when the queue runs dry in the middle of a merge while the turn still runs,
  the writer waits for the block's next delta at most `max_delay_s` after it took the
  merge's first one: the one delay it adds, bounded, and only while it was behind;
- a merge stops before the merged delta would pass `max_bytes` (the server's send limit);
- every message sent is renumbered (`sequence` 1, 2, ... as sent), so the receiver still
  sees a stream without gaps; the reply text and `reply_end`'s message are unchanged.

The queue is bounded: a turn whose caller does not read waits there, as it waits in gRPC's
write without coalescing. A failure of the turn (`TurnFailed` and any other exception) is
raised by the writer after the events queued before it; a cancelled call cancels the turn's
task and waits for it (its `finally` saves the session).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator

from meshscope.v1 import agent_pb2

__all__ = ["QUEUE_EVENTS", "coalesce"]

QUEUE_EVENTS = 32
"""How many wire events the turn may run ahead of the writer (about one and a half echo turns)."""


class _Queue:
    """A bounded hand-off from the turn's task to the writer, whose head the writer may inspect."""

    def __init__(self, capacity: int) -> None:
        self.items: deque[agent_pb2.AgentEvent] = deque()
        self.capacity = capacity
        self.done = False
        self.failure: BaseException | None = None
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    async def put(self, event: agent_pb2.AgentEvent) -> None:
        while len(self.items) >= self.capacity:
            self._writable.clear()
            await self._writable.wait()
        self.items.append(event)
        self._readable.set()

    def close(self, failure: BaseException | None) -> None:
        self.done = True
        self.failure = failure
        self._readable.set()

    def take(self) -> agent_pb2.AgentEvent:
        event = self.items.popleft()
        self._writable.set()
        return event

    async def readable(self, timeout: float | None = None) -> bool:
        """Wait until an event is queued or the turn ended (at most `timeout` s); whether one is queued."""
        while not self.items and not self.done:
            self._readable.clear()
            if timeout is None:
                await self._readable.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._readable.wait(), timeout)
                break
        return bool(self.items)


def _block(event: agent_pb2.AgentEvent) -> tuple[str, str, str] | None:
    """The (reply, block, agent) of a text delta as sent; None for every other kind.

    Compared as sent, not as resolved: the encoder names a reply, agent or block only where it
    changes (the wire rule on `AgentEvent`), so two consecutive deltas with equal fields extend
    the same block; a delta that names a switch differs from the one before it and is not merged
    into it. A merge keeps its first delta's fields, so what the receiver resolves is unchanged."""
    if event.WhichOneof("kind") != "text_delta":
        return None
    return (event.reply_id, event.text_delta.block_id, event.agent)


async def _produce(events: AsyncGenerator[agent_pb2.AgentEvent, None], queue: _Queue) -> None:
    """The turn's task: run `events` to its end (or its cancellation, which closes it here)."""
    failure: BaseException | None = None
    try:
        async with contextlib.aclosing(events):
            async for event in events:
                await queue.put(event)
    except Exception as exc:  # the writer raises it, after the events queued before it
        failure = exc
    finally:
        queue.close(failure)


async def coalesce(
    events: AsyncGenerator[agent_pb2.AgentEvent, None],
    max_delay_s: float,
    *,
    max_bytes: int,
    capacity: int = QUEUE_EVENTS,
) -> AsyncGenerator[agent_pb2.AgentEvent, None]:
    """`events` (a turn's wire events) as the writer sends them: merged while behind (module docstring).

    `max_delay_s` > 0 bounds the delay a merge may add (seconds); `max_bytes` the size of a
    merged event. Raises what the turn raised, once the events before it are sent.
    """
    queue = _Queue(capacity)
    producer = asyncio.ensure_future(_produce(events, queue))
    sequence = 0
    last_block: tuple[str, str, str] | None = None
    try:
        while await queue.readable():
            event = queue.take()
            block = _block(event)
            if block is not None and block == last_block and queue.items:
                event = await _merge(event, block, queue, time.monotonic() + max_delay_s, max_bytes)
            last_block = block
            sequence += 1
            event.sequence = sequence
            yield event
        if queue.failure is not None:
            raise queue.failure
    finally:
        if not producer.done():
            producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer


async def _merge(
    first: agent_pb2.AgentEvent,
    block: tuple[str, str, str],
    queue: _Queue,
    deadline: float,
    max_bytes: int,
) -> agent_pb2.AgentEvent:
    """`first` with the text of the deltas of `block` that follow it in the queue (waiting for
    more until `deadline` while the queue is empty and the turn runs), at most `max_bytes` in all."""
    texts = [first.text_delta.delta]
    size = first.ByteSize()
    while True:
        while queue.items and _block(queue.items[0]) == block:
            # Bounded by the sum of the events' sizes, a little above the merged event's.
            size += queue.items[0].ByteSize()
            if size > max_bytes:
                break
            texts.append(queue.take().text_delta.delta)
        if queue.items or queue.done:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not await queue.readable(remaining):
            break
    if len(texts) > 1:
        first.text_delta.delta = "".join(texts)
    return first
