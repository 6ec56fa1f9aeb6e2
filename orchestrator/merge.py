"""Merging the event streams of parallel steps: one task per stream, one bounded queue.

Only parallel steps need this (a fan-out's agents, a team's workers): a single step or a
sequence relays its agent's stream straight to the caller. The queue is bounded, so a
slow caller slows the steps (each waits to put its next event) instead of growing the
orchestrator's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from typing import TypeVar

T = TypeVar("T")


class _Ended:
    """A stream's last item on the queue: None when it ended well, else its exception."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None) -> None:
        self.error = error


async def merged(streams: Sequence[AsyncGenerator[T, None]], depth: int) -> AsyncGenerator[T, None]:
    """The items of `streams` as they come, interleaved; at most `depth` wait for the caller.

    Each stream runs in its own task. The first stream that raises ends the merge with its
    exception, once the other streams are cancelled and have ended (as a TaskGroup would);
    closing this generator, or cancelling the task iterating it, cancels them all.
    """
    queue: asyncio.Queue[T | _Ended] = asyncio.Queue(maxsize=depth)
    tasks = [asyncio.create_task(_pump(stream, queue)) for stream in streams]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if isinstance(item, _Ended):
                if item.error is not None:
                    raise item.error
                running -= 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _pump(stream: AsyncGenerator[T, None], queue: asyncio.Queue[T | _Ended]) -> None:
    """Move one stream's items onto the queue, then how it ended."""
    try:
        # aclosing: a pump cancelled while it waits on the queue closes its stream now.
        async with contextlib.aclosing(stream):
            async for item in stream:
                await queue.put(item)
    except Exception as exc:
        await queue.put(_Ended(exc))
    else:
        await queue.put(_Ended(None))
