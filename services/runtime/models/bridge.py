"""Blocking generation in the process's one model thread, its output streamed to asyncio as it comes.

A model that runs in-process (llama.cpp, through llama-cpp-python) is blocking C code, and a
loaded model is one mutable object (its context, KV cache and sampler): two generations must
never run in it at once. So every generation of a process runs in ONE worker thread, one after
another in the order they were asked for; the others wait in the thread's queue. The event loop
never blocks: the worker hands each item to the loop (`call_soon_threadsafe`) as soon as it
has it, and the caller reads them from an async iterator.

Stopping: when the caller stops reading (it was cancelled, or closed the iterator), a
`threading.Event` is set. The worker checks it after every item, i.e. between two tokens,
and then closes the producing iterator, so a cancelled generation frees the thread after at
most the token being computed (plus, if it was still reading its prompt, the rest of that
one batch). A job cancelled while still queued never starts.

    thread = ModelThread()
    async for token in thread.stream(lambda: generate(prompt)):   # generate: Iterator[str]
        ...
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["ModelThread", "ThreadStats", "model_thread"]

T = TypeVar("T")


@dataclass
class ThreadStats:
    """How the jobs of a `ModelThread` ended (tests and logs read them)."""

    completed: int = 0
    """The producer ran to its end."""
    stopped: int = 0
    """The caller went away while the producer ran: stopped between two items."""
    skipped: int = 0
    """The caller went away while the job waited for the thread: it never ran."""
    failed: int = 0
    """The producer raised (the error went to the caller)."""


@dataclass(frozen=True, slots=True)
class _Item(Generic[T]):
    value: T


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


class _End:
    pass


_END = _End()


class ModelThread:
    """One worker thread that runs blocking producers one at a time, in submission order.

    `stream` is safe to call from any number of coroutines (of one or several event loops);
    the producers themselves always run in this one thread, never two at once.
    """

    def __init__(self, name: str = "meshscope-model") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.running: int | None = None
        """The id of the job in the thread right now (None when idle), for tests and logs."""
        self.waiting = 0
        """Jobs submitted and not started yet."""
        self.stats = ThreadStats()

    async def stream(self, produce: Callable[[], Iterator[T]]) -> AsyncGenerator[T, None]:
        """Run `produce()` in the model thread and yield its items as they come.

        An exception raised by the producer is raised here, after the items before it.
        Stopping early (cancellation, `aclose`, `break`) stops the producer between two items.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item[T] | _Failed | _End] = asyncio.Queue()
        stop = threading.Event()
        job = next(self._ids)

        def send(item: _Item[T] | _Failed | _End) -> bool:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is reading any more
                stop.set()
                return False
            return True

        def work() -> None:
            with self._lock:
                self.waiting -= 1
                self.running = job
            outcome = "completed"
            # What ends the caller's stream: sent after the job is counted, so that a caller who
            # has seen its stream end also sees the job in `stats`, and no longer `running`.
            last: _Failed | _End | None = _END
            try:
                if stop.is_set():  # cancelled while it waited for the thread
                    outcome, last = "skipped", None
                    return
                items = produce()
                try:
                    for value in items:
                        if stop.is_set() or not send(_Item(value)):
                            outcome, last = "stopped", None
                            return  # checked between two items: the next one is never computed
                finally:
                    close = getattr(items, "close", None)
                    if close is not None:
                        close()
            except BaseException as exc:
                outcome, last = "failed", _Failed(exc)
            finally:
                with self._lock:
                    self.running = None
                    setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
                if last is not None:
                    send(last)

        with self._lock:
            self.waiting += 1
        future = self._executor.submit(work)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _End):
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item.value
        finally:
            stop.set()
            if future.cancel():  # never started: it will not run at all
                with self._lock:
                    self.waiting -= 1
                    self.stats.skipped += 1


_THREAD: ModelThread | None = None
_THREAD_LOCK = threading.Lock()


def model_thread() -> ModelThread:
    """The process's one model thread (created on first use)."""
    global _THREAD
    with _THREAD_LOCK:
        if _THREAD is None:
            _THREAD = ModelThread()
        return _THREAD
