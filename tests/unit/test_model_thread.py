"""The model thread: blocking producers run one at a time in one thread, their items streamed to asyncio.

Real threads, no model: each producer is gated by threading primitives the test controls, so
every step is observed, never waited out.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from meshscope.services.runtime.models.bridge import ModelThread
from meshscope.testing import wait_until


async def test_items_arrive_as_they_are_produced_and_the_stream_ends() -> None:
    thread = ModelThread()
    second = threading.Event()

    def produce() -> Iterator[str]:
        yield "first"
        second.wait(timeout=10)
        yield "second"

    items = thread.stream(produce)
    assert await anext(items) == "first"  # before the producer may go on: streamed, not batched
    second.set()
    assert [item async for item in items] == ["second"]
    assert thread.stats.completed == 1


async def test_a_producer_error_reaches_the_caller_after_its_items() -> None:
    thread = ModelThread()

    def produce() -> Iterator[str]:
        yield "partial"
        raise ValueError("the model broke")

    received: list[str] = []
    with pytest.raises(ValueError, match="the model broke"):
        async for item in thread.stream(produce):
            received.append(item)
    assert received == ["partial"]
    assert thread.stats.failed == 1


async def test_a_caller_that_stops_reading_stops_the_producer_between_two_items() -> None:
    thread = ModelThread()
    allow = threading.Semaphore(0)
    computed: list[int] = []
    closed = threading.Event()

    def produce() -> Iterator[int]:
        try:
            for i in range(100):
                allow.acquire(timeout=10)
                computed.append(i)
                yield i
        finally:
            closed.set()

    items = thread.stream(produce)
    for expected in range(3):
        allow.release()
        assert await anext(items) == expected
    await items.aclose()  # the caller goes away while the producer waits to compute item 3
    for _ in range(20):
        allow.release()  # the producer could go on now: only the item in progress is finished
    await asyncio.to_thread(wait_until, lambda: closed.is_set() and thread.running is None, timeout=10)
    assert computed == [0, 1, 2, 3]
    assert thread.stats.stopped == 1 and thread.stats.completed == 0


def _gated(started: list[str], name: str, gate: threading.Event | None) -> Iterator[str]:
    """A producer that notes its start in `started`, waits for `gate` (if any), then yields `name`."""
    started.append(name)
    if gate is not None:
        gate.wait(timeout=10)
    yield name


async def _collect(
    thread: ModelThread, started: list[str], name: str, gate: threading.Event | None
) -> list[str]:
    return [item async for item in thread.stream(lambda: _gated(started, name, gate))]


async def test_jobs_run_one_at_a_time_in_the_order_they_came() -> None:
    thread = ModelThread()
    release_first = threading.Event()
    started: list[str] = []
    first = asyncio.create_task(_collect(thread, started, "first", release_first))
    await asyncio.to_thread(wait_until, lambda: started == ["first"], timeout=10)
    second = asyncio.create_task(_collect(thread, started, "second", None))
    await asyncio.to_thread(wait_until, lambda: thread.waiting == 1, timeout=10)
    assert started == ["first"]  # the second waits while the first holds the thread
    release_first.set()
    assert await first == ["first"]
    assert await second == ["second"]
    assert started == ["first", "second"]


async def test_a_job_cancelled_while_it_waits_never_runs() -> None:
    thread = ModelThread()
    release_first = threading.Event()
    ran: list[str] = []
    first = asyncio.create_task(_collect(thread, ran, "first", release_first))
    await asyncio.to_thread(wait_until, lambda: ran == ["first"], timeout=10)
    queued = asyncio.create_task(_collect(thread, ran, "queued", None))
    await asyncio.to_thread(wait_until, lambda: thread.waiting == 1, timeout=10)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    release_first.set()
    assert await first == ["first"]
    assert thread.waiting == 0
    assert ran == ["first"]
    assert thread.stats.skipped == 1 and thread.stats.completed == 1
