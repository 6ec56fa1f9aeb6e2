"""The channel lifecycle every typed meshscope client shares."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import grpc


class ChannelClient:
    """One insecure grpc.aio channel to `target`, closed by `close` or `async with`."""

    def __init__(self, target: str, *, options: list[tuple[str, Any]] | None = None) -> None:
        self.target = target
        self._channel = grpc.aio.insecure_channel(target, options=options or [])

    @property
    def channel(self) -> grpc.aio.Channel:
        return self._channel

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()
