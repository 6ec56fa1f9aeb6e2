"""Stopping a run from outside: at its deadline, or when the orchestrator cuts its runs off.

A run's steps execute in its caller's task, as a chain of async generators relaying the
agents' streams (no producer task: see `orchestrator.runs`). So a run is stopped the way
`asyncio.timeout` stops a block: the task is cancelled at the await the steps are waiting
on (an agent's next event, a replica's pending slot, a back-off), and that cancellation,
taken back, becomes the run's failure. Only while the steps run, though: between two
events the task belongs to the caller (gRPC is writing the last event to the client), and
a cancellation there would end the call with no reason given. A stop that comes then is
kept, and the run fails before its next step instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import grpc

from meshscope.orchestrator.failures import Failed
from meshscope.v1 import common_pb2


def expired() -> Failed:
    """The failure of a run whose deadline passed."""
    return Failed(
        grpc.StatusCode.DEADLINE_EXCEEDED, "the run's deadline passed", common_pb2.ERROR_REASON_DEADLINE
    )


def cut_off(message: str) -> Failed:
    """The failure of a run the orchestrator cut off (its shutdown's grace ran out), saying why."""
    return Failed(grpc.StatusCode.UNAVAILABLE, message, common_pb2.ERROR_REASON_CUT_OFF)


class RunStop:
    """The stop of one run's steps: fires `expired()` at `deadline`, or whatever `stop` is given.

    `deadline` is a time.monotonic() value. Use: `watch` the steps' generator from the task
    that iterates it; when iterating raises CancelledError, `taken_back()` says whether it
    was this stop's (then the run fails with `failure`); check `failure` before each next
    step; `close` when the steps are over (it cancels the timer).
    """

    __slots__ = ("_cancelled", "_steps", "_task", "_timer", "failure")

    def __init__(self, deadline: float) -> None:
        self.failure: Failed | None = None
        """Why the run stopped (None while it has not)."""
        self._task: asyncio.Task[Any] | None = None
        self._steps: AsyncGenerator[Any, None] | None = None
        self._cancelled = False
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, deadline - time.monotonic()), self._expire)

    def watch(self, steps: AsyncGenerator[Any, None]) -> None:
        """Stop `steps`, which the current task iterates, when the run stops."""
        self._task = asyncio.current_task()
        self._steps = steps

    def stop(self, failure: Failed) -> None:
        """Stop the run with `failure` (a run stops once: a later stop changes nothing).

        While the steps are running, the task is cancelled where they wait; otherwise they
        are at a `yield` and stop before their next step (the caller checks `failure`).
        """
        if self.failure is not None:
            return
        self.failure = failure
        self._timer.cancel()
        # An async generator is "running" from the moment it is resumed until it yields,
        # awaits included: then the task waits inside the steps.
        if self._task is not None and getattr(self._steps, "ag_running", False):
            self._cancelled = True
            self._task.cancel()

    def taken_back(self) -> bool:
        """Whether the CancelledError the steps raised was this stop's: then it is taken back
        (the task is no longer cancelling) and the run fails with `failure`. False when
        someone else cancelled the task too (the caller left): that cancellation goes on."""
        if not self._cancelled or self._task is None:
            return False
        self._cancelled = False
        return self._task.uncancel() == 0

    def close(self) -> None:
        """The steps are over: the deadline no longer applies."""
        self._timer.cancel()

    def _expire(self) -> None:
        self.stop(expired())
