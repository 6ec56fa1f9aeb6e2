"""What every typed meshscope client shares: the channel lifecycle and the paged session API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from meshscope.channels import ChannelSettings, open_channel
from meshscope.v1 import common_pb2


class ChannelClient:
    """One channel to `target` from the channel factory, closed by `close` or `async with`.

    `settings` say how channels are made (limits, keepalive, TLS, the mesh token; None: read
    from the environment, MESHSCOPE_GRPC_* and MESHSCOPE_TLS_*, raising ConfigError on a bad
    variable); `options` are further gRPC channel arguments, which win over the settings'.
    A subclass names its generated stub class in `_stub_type`; `_stub` is made on the channel.
    """

    _stub_type: Callable[[grpc.aio.Channel], Any] = staticmethod(lambda channel: None)

    def __init__(
        self,
        target: str,
        *,
        options: list[tuple[str, Any]] | None = None,
        settings: ChannelSettings | None = None,
    ) -> None:
        self.target = target
        channels = settings if settings is not None else ChannelSettings.from_env()
        self._channel = open_channel(target, channels, options=options or ())
        self._stub = self._stub_type(self._channel)

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


class SessionClient(ChannelClient):
    """The session API both services serve (AgentService and Orchestrator), paged (AIP-158).

    A subclass sets `_stub_type` to its service's stub class. `get_session` and `list_sessions` read
    one page; `history` and `sessions` walk every page, one request per page, so a
    transcript of any length is read without any one message growing with it.
    """

    async def get_session(
        self, session_id: str, *, page_size: int = 0, page_token: str = "", timeout: float | None = 10.0
    ) -> common_pb2.Session:
        """One page of a session: its summary and up to `page_size` transcript lines (0: the
        server's default), from `page_token` (a previous page's `next_page_token`)."""
        request = common_pb2.GetSessionRequest(
            session_id=session_id, page_size=page_size, page_token=page_token
        )
        response: common_pb2.Session = await self._stub.GetSession(request, timeout=timeout)
        return response

    async def history(
        self, session_id: str, *, page_size: int = 0, timeout: float | None = 10.0
    ) -> AsyncIterator[common_pb2.HistoryLine]:
        """Every line of a session's transcript, oldest first, read a page at a time
        (`timeout` applies to each page's call)."""
        async for page in _pages(
            lambda token: self.get_session(session_id, page_size=page_size, page_token=token, timeout=timeout)
        ):
            for line in page.history:
                yield line

    async def list_sessions(
        self, user_id: str = "", *, page_size: int = 0, page_token: str = "", timeout: float | None = 10.0
    ) -> common_pb2.ListSessionsResponse:
        """One page of a user's sessions, most recently updated first."""
        request = common_pb2.ListSessionsRequest(user_id=user_id, page_size=page_size, page_token=page_token)
        response: common_pb2.ListSessionsResponse = await self._stub.ListSessions(request, timeout=timeout)
        return response

    async def sessions(
        self, user_id: str = "", *, page_size: int = 0, timeout: float | None = 10.0
    ) -> AsyncIterator[common_pb2.SessionSummary]:
        """Every session of a user, most recently updated first, read a page at a time."""
        async for page in _pages(
            lambda token: self.list_sessions(user_id, page_size=page_size, page_token=token, timeout=timeout)
        ):
            for summary in page.sessions:
                yield summary

    async def delete_session(self, session_id: str, *, timeout: float | None = 10.0) -> bool:
        """Delete a session everywhere; False when there was no such session."""
        response: common_pb2.DeleteSessionResponse = await self._stub.DeleteSession(
            common_pb2.DeleteSessionRequest(session_id=session_id), timeout=timeout
        )
        return response.deleted


_Page = TypeVar("_Page", common_pb2.Session, common_pb2.ListSessionsResponse)


async def _pages(read: Callable[[str], Awaitable[_Page]]) -> AsyncIterator[_Page]:
    """Every page `read(page_token)` returns, from the first until one has no `next_page_token`."""
    token = ""
    while True:
        page = await read(token)
        yield page
        token = page.next_page_token
        if not token:
            return
