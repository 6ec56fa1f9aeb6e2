"""A typed asyncio client for `AgentService`.

    async with AgentClient("127.0.0.1:50051") as client:
        async for event in client.invoke("analyst", "hello", session_id="s1"):
            ...
        reply = await client.reply("analyst", "and now?", session_id="s1")
        print(reply.text)
        async for line in client.history("s1"):  # this process's store, a page at a time
            print(line.name, line.text)

Replies are collected with `meshscope.codec.Reply`, so importing this client does not
load AgentScope (tests/unit/test_codec.py checks).

Failures surface as `grpc.aio.AioRpcError` with the server's status code and
message (a stream that failed after it began also carried an `error` event).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

from meshscope.clients import SessionClient
from meshscope.codec import Reply, to_struct
from meshscope.v1 import agent_pb2, agent_pb2_grpc, common_pb2
from meshscope.wire import user_message


class AgentClient(SessionClient):
    """One channel to one agent-service process."""

    _stub_type = agent_pb2_grpc.AgentServiceStub

    async def invoke(
        self,
        agent: str,
        content: str | common_pb2.Message,
        *,
        session_id: str = "",
        user_id: str = "",
        timeout: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AsyncGenerator[agent_pb2.AgentEvent, None]:
        """Run one turn and yield its events as they arrive.

        Leaving the loop early (break, exception, task cancellation) cancels
        the call, and the server cancels the agent's turn.
        """
        request = agent_pb2.InvokeRequest(
            agent=agent, input=user_message(content), session_id=session_id, user_id=user_id
        )
        struct = to_struct(metadata)
        if struct is not None:
            request.metadata.CopyFrom(struct)
        call = self._stub.Invoke(request, timeout=timeout)
        try:
            async for event in call:
                yield event
        finally:
            call.cancel()

    async def reply(
        self,
        agent: str,
        content: str | common_pb2.Message,
        *,
        session_id: str = "",
        user_id: str = "",
        timeout: float | None = None,
    ) -> Reply:
        """Run one turn and collect it (see `meshscope.codec.Reply`)."""
        reply = Reply()
        async for event in self.invoke(
            agent, content, session_id=session_id, user_id=user_id, timeout=timeout
        ):
            reply.add(event)
        return reply

    async def get_card(self, agent: str = "", *, timeout: float | None = 10.0) -> common_pb2.AgentCard:
        """The card of a hosted agent."""
        card: common_pb2.AgentCard = await self._stub.GetCard(
            agent_pb2.GetCardRequest(agent=agent), timeout=timeout
        )
        return card
