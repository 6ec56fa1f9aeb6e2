"""A loopback TCP proxy that injects network faults: latency, and replies held back.

For reproducing what a slow or lossy network does to a client (a Redis 50 ms away,
a reply that arrives after the client's socket timeout) with the real server and
the real client on either side: point the client at the proxy's port instead of the
server's. This is the fault-injection seam, at the transport as httpx's MockTransport
is, but over a real socket so that the client's own timeouts and pools are what is
tested. Delays here are the fault being injected, never a way to wait for something:
tests still poll with a deadline.

    async with FaultProxy("127.0.0.1", redis.port, delay_s=0.05) as proxy:
        store = RedisSessionStore(StoreSettings(redis_url=f"redis://127.0.0.1:{proxy.port}/0"))
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

__all__ = ["FaultProxy", "Rule"]

Rule = Callable[[bytes], float]
"""Given a chunk the client sent, how long to hold back the server's next reply (0: not at all)."""


@dataclass
class _Link:
    hold_next_reply_s: float = 0.0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class FaultProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port`, chunk by chunk.

    - `delay_s`: every chunk, either way, is forwarded this long after it arrived
      (order kept): a network `delay_s` away.
    - `hold_reply`: called with every chunk the client sends; when it returns a positive
      number of seconds, the server's next chunk on that connection is held that long.
    - `on_client_chunk`: called with every chunk the client sends, as it arrives (before
      the delay): lets a test act at the exact moment a request is on the wire.

    `start()` listens on a free 127.0.0.1 port (`port`, 0 until then) and connects to the
    target once per accepted client (a refused target closes that client). `close()` stops
    listening and cuts every open link; `async with` does both.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        delay_s: float = 0.0,
        hold_reply: Rule | None = None,
        on_client_chunk: Callable[[bytes], None] | None = None,
    ) -> None:
        self.target = (target_host, target_port)
        self.delay_s = delay_s
        self.hold_reply = hold_reply
        self.on_client_chunk = on_client_chunk
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []

    async def start(self) -> int:
        """Listen; the port clients should connect to."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop listening and cut every link, whatever it was still forwarding."""
        if self._server is not None:
            self._server.close()
        tasks = [task for link in self._links for task in link.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        link = _Link()
        self._links.append(link)
        link.tasks = [
            asyncio.create_task(self._pump(client_reader, server_writer, link, upstream=True)),
            asyncio.create_task(self._pump(server_reader, client_writer, link, upstream=False)),
        ]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in link.tasks:
            task.cancel()
        for writer in (client_writer, server_writer):
            writer.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link, *, upstream: bool
    ) -> None:
        due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                at, chunk = await due.get()
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                if not chunk:  # the sender closed: everything before it has been delivered
                    return
                if not upstream and link.hold_next_reply_s > 0:
                    hold, link.hold_next_reply_s = link.hold_next_reply_s, 0.0
                    await asyncio.sleep(hold)
                writer.write(chunk)
                await writer.drain()

        forwarding = asyncio.create_task(forward())
        try:
            while chunk := await reader.read(65536):
                if upstream:
                    if self.on_client_chunk is not None:
                        self.on_client_chunk(chunk)
                    if self.hold_reply is not None:
                        link.hold_next_reply_s = max(link.hold_next_reply_s, self.hold_reply(chunk))
                due.put_nowait((time.monotonic() + self.delay_s, chunk))
            due.put_nowait((time.monotonic() + self.delay_s, b""))
            await forwarding  # deliver what is still on its way
        finally:
            forwarding.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await forwarding
