"""Polling with a deadline: how a test waits for something that happens "soon".

A test never sleeps a guessed time to let something happen; it polls a condition until it
holds or a deadline passes, and then fails with what it saw last. Three shapes:

- `wait_for(probe, until)` (async): the value `probe` returned once `until(value)` held.
- `eventually(check)` (async): `check` is a block of asserts, retried until it stops raising
  AssertionError; at the deadline its last AssertionError is raised.
- `wait_until(condition)` (sync, for threads and scripts): the seconds it took.

Every timeout is in seconds, measured on the monotonic clock; the probe always runs once
more after the deadline has passed, so a slow probe cannot lose a race it already won.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["eventually", "wait_for", "wait_until"]

T = TypeVar("T")


async def wait_for(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
) -> T:
    """Poll `probe` until `until(result)` holds, and return that result.

    Raises AssertionError naming the last result once `timeout` seconds have passed; an
    exception from `probe` or `until` propagates at once (catch it in the probe to retry it).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {result!r}")
        await asyncio.sleep(interval)


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.02
) -> T:
    """Run `check` until it returns without an AssertionError, and return what it returned.

    Once `timeout` seconds have passed, the last AssertionError is raised as it was (pytest
    shows its assert rewriting), with a note saying how long it kept failing. Any other
    exception from `check` propagates at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError as exc:
            if time.monotonic() > deadline:
                exc.add_note(f"still failing after {timeout}s")
                raise
        await asyncio.sleep(interval)


def wait_until(condition: Callable[[], bool], *, timeout: float = 10.0, interval: float = 0.01) -> float:
    """Block until `condition()` is true; the seconds that took (a measurement, for benchmarks).

    Raises AssertionError once `timeout` seconds have passed. For code without an event loop
    (a benchmark script, a thread); in async code use `wait_for`, which does not block the loop.
    """
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
    return time.monotonic() - start
