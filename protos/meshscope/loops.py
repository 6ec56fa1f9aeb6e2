"""Which event loop a server process runs on: uvloop when installed, asyncio's own otherwise.

MESHSCOPE_EVENT_LOOP picks it, read once at start by `serve_process` (every `meshscope serve
...` and `python -m meshscope.services.<agent>` process):

- `auto` (the default): uvloop when the `uvloop` package is installed (`pip install
  'meshscope[uvloop]'`), asyncio's default loop otherwise;
- `uvloop`: uvloop, and a configuration error (exit 2) when it is not installed;
- `asyncio`: asyncio's default loop, whatever is installed (the knob to turn uvloop off).

Why: grpc.aio runs its completion queue's callbacks and every servicer's coroutines on the
loop, so the loop's own cost per wakeup is paid per event streamed; uvloop's is lower
(docs/benchmarks.md has the figures). Clients (the CLI's `run`, tests) keep asyncio's loop.

Stdlib only at import: uvloop is imported when chosen.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from meshscope.config import Config, ConfigError

__all__ = ["EVENT_LOOP_VARIABLE", "LOOPS", "event_loop_choice", "loop_factory", "loop_name", "run"]

EVENT_LOOP_VARIABLE = "MESHSCOPE_EVENT_LOOP"
LOOPS = ("auto", "asyncio", "uvloop")
"""The values MESHSCOPE_EVENT_LOOP takes (any case)."""

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def _uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def event_loop_choice(config: Config | None = None) -> str:
    """The loop to run, "asyncio" or "uvloop", from MESHSCOPE_EVENT_LOOP (`auto` resolved).

    Raises ConfigError (one line naming the variable) for a value not in `LOOPS`, and for
    `uvloop` when the package is not installed.
    """
    config = config or Config()
    chosen = config.choice(EVENT_LOOP_VARIABLE, "auto", LOOPS)
    installed = _uvloop_installed()
    if chosen == "auto":
        return "uvloop" if installed else "asyncio"
    if chosen == "uvloop" and not installed:
        raise ConfigError(
            f"{EVENT_LOOP_VARIABLE}=uvloop, but uvloop is not installed "
            "(pip install 'meshscope[uvloop]', or set it to auto or asyncio)"
        )
    return chosen


def loop_factory(choice: str) -> LoopFactory | None:
    """What builds the loop `choice` names ("asyncio" or "uvloop"); None: asyncio's default."""
    if choice == "uvloop":
        import uvloop

        factory: LoopFactory = uvloop.new_event_loop
        return factory
    return None


def run(main: Coroutine[Any, Any, T], choice: str) -> T:
    """`asyncio.run(main)` on the loop `choice` names ("asyncio" or "uvloop")."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """ "uvloop" or "asyncio" (the top package of the loop's class): for the start log line."""
    return type(loop).__module__.partition(".")[0]
