"""The load generator's clients: one checked, timed echo turn against each kind of system.

One process runs every client (`python -m bench.peers`), so the load generator's own cost is
paid the same way for every system it drives; its CPU per turn is reported beside the
servers' (HTTP+JSON costs a client more than gRPC+protobuf, and the client shares the cores).

Every client's `turn(session_id)` sends one request with INPUT_TEXT, reads the whole stream,
stamps the first and last content delta and the end of the stream (`Timing`), and checks the
reply (`bench.peers.checks`; `BadResponse` on anything wrong). Clients hold one connection
pool for all their calls: one gRPC channel (HTTP/2, every stream multiplexed on it), or one
aiohttp session (HTTP/1.1, one keep-alive connection per concurrent stream).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import grpc

from bench.echo_text import INPUT_TEXT
from bench.peers import tiny_pb2, tiny_pb2_grpc
from bench.peers.checks import BadResponse, Reply, check_reply
from meshscope.channels import ChannelSettings, open_channel
from meshscope.v1 import agent_pb2, agent_pb2_grpc, orchestrator_pb2, orchestrator_pb2_grpc
from meshscope.wire import user_message

ECHO_AGENT = "echo"
A2A_VERSION = "1.0"


@dataclass(frozen=True)
class Timing:
    """Seconds from sending the request to the first content delta, the last one, and the end."""

    first_s: float
    last_s: float
    end_s: float


class TurnClient(Protocol):
    """What the load generator drives: checked, timed turns, and `close()` once done."""

    async def turn(self, session_id: str) -> Timing: ...

    async def close(self) -> None: ...


class _Reading:
    """One turn as it is read: the `Reply` for the checks, and when its content came.

    `past_end()` first for every event (an event after the terminal one is only counted),
    then `delta(text)` for content, `end(final_text)` for the terminal event; `checked()`
    once the stream is read: the `Timing`, or `BadResponse`.
    """

    def __init__(self, system: str, *, joined: bool = False) -> None:
        self.system = system
        self.reply = Reply(joined=joined)
        self.start = time.perf_counter()
        self.first = 0.0
        self.last = 0.0

    def past_end(self) -> bool:
        if self.reply.ended:
            self.reply.after_end += 1
        return self.reply.ended

    def delta(self, text: str) -> None:
        self.last = time.perf_counter()
        if not self.first:
            self.first = self.last
        self.reply.deltas.append(text)

    def end(self, final_text: str | None) -> None:
        self.reply.ended, self.reply.final_text = True, final_text

    def checked(self) -> Timing:
        end = time.perf_counter()
        check_reply(self.system, self.reply)
        return Timing(self.first - self.start, self.last - self.start, end - self.start)


# ---------------------------------------------------------------- gRPC


class TinyClient:
    """The raw peers' `TinyEcho.Stream` (1 hop, or 2 through the relay)."""

    def __init__(self, system: str, address: str) -> None:
        self.system = system
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = tiny_pb2_grpc.TinyEchoStub(self._channel)
        self._prompt = tiny_pb2.Prompt(text=INPUT_TEXT)

    async def turn(self, session_id: str) -> Timing:
        reading = _Reading(self.system)
        async for chunk in self._stub.Stream(self._prompt):
            if reading.past_end():
                continue
            if chunk.done:
                reading.end(chunk.text)
            else:
                reading.delta(chunk.delta)
        return reading.checked()

    async def close(self) -> None:
        await self._channel.close()


class AgentClient:
    """meshscope direct: `AgentService.Invoke` on an agent process (echo agent).

    With `sessions`, every turn names a fresh session (the server locks, loads, saves and
    transcribes it); without, turns carry no session id and the server keeps nothing.
    """

    def __init__(self, system: str, address: str, *, sessions: bool) -> None:
        self.system = system
        self.sessions = sessions
        self._channel = open_channel(address, ChannelSettings())
        self._stub = agent_pb2_grpc.AgentServiceStub(self._channel)
        self._input = user_message(INPUT_TEXT)

    async def turn(self, session_id: str) -> Timing:
        request = agent_pb2.InvokeRequest(
            agent=ECHO_AGENT, input=self._input, session_id=session_id if self.sessions else ""
        )
        reading = _Reading(self.system)
        async for event in self._stub.Invoke(request):
            kind = event.WhichOneof("kind")
            if reading.past_end():
                continue
            if kind == "text_delta":
                reading.delta(event.text_delta.delta)
            elif kind == "reply_end":
                reading.end("".join(p.text for p in event.reply_end.message.parts))
            elif kind == "error":
                raise BadResponse(f"{self.system}: error event: {event.error.message}")
        return reading.checked()

    async def close(self) -> None:
        await self._channel.close()


class RunClient:
    """meshscope orchestrated: `Orchestrator.Run` with target `echo`, a fresh session per turn.

    The content is the relayed agent's text deltas; the terminal event is `run_end`, whose
    output is the whole reply.
    """

    def __init__(self, system: str, address: str) -> None:
        self.system = system
        self._channel = open_channel(address, ChannelSettings())
        self._stub = orchestrator_pb2_grpc.OrchestratorStub(self._channel)
        self._input = user_message(INPUT_TEXT)

    async def turn(self, session_id: str) -> Timing:
        request = orchestrator_pb2.RunRequest(target=ECHO_AGENT, input=self._input, session_id=session_id)
        reading = _Reading(self.system)
        async for event in self._stub.Run(request):
            kind = event.WhichOneof("kind")
            if reading.past_end():
                continue
            if kind == "agent_event" and event.agent_event.HasField("text_delta"):
                reading.delta(event.agent_event.text_delta.delta)
            elif kind == "run_end":
                reading.end("".join(p.text for p in event.run_end.output.parts))
            elif kind == "error":
                raise BadResponse(f"{self.system}: error event: {event.error.message}")
        return reading.checked()

    async def close(self) -> None:
        await self._channel.close()


# ---------------------------------------------------------------- HTTP + SSE


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[Any]:
    """The JSON value of each server-sent event's `data` field, as events complete.

    Raises ValueError (json.JSONDecodeError) on data that is not JSON.
    """
    data: list[bytes] = []
    async for line in response.content:
        line = line.rstrip(b"\r\n")
        if not line:
            if data:
                yield json.loads(b"\n".join(data))
                data = []
        elif line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
    if data:
        yield json.loads(b"\n".join(data))


def http_session(connections: int) -> aiohttp.ClientSession:
    """One aiohttp session for all of a system's calls: keep-alive, up to `connections` at once."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, limit_per_host=connections),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def _events(system: str, response: aiohttp.ClientResponse) -> AsyncIterator[Any]:
    """`sse_events`, with data that is not JSON reported as a `BadResponse` of `system`."""
    try:
        async for event in sse_events(response):
            yield event
    except ValueError as exc:
        raise BadResponse(f"{system}: an event's data is not JSON: {exc}") from None


async def _post_stream(
    system: str, session: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]
) -> aiohttp.ClientResponse:
    response = await session.post(url, json=body, headers={"Accept": "text/event-stream", **headers})
    if response.status != 200:
        text = (await response.text())[:200]
        response.release()
        raise BadResponse(f"{system}: HTTP {response.status}: {text}")
    return response


class AgentAppClient:
    """AgentScope Runtime: `POST /process` with an `AgentRequest`, SSE back.

    Content is each `content` event with `delta: true`; the terminal event is the `response`
    object reaching `completed`, whose last output message holds the whole text.
    """

    def __init__(self, system: str, address: str, connections: int) -> None:
        self.system = system
        self._url = f"http://{address}/process"
        self._session = http_session(connections)

    async def turn(self, session_id: str) -> Timing:
        body = {
            "input": [{"role": "user", "content": [{"type": "text", "text": INPUT_TEXT}]}],
            "session_id": session_id,
        }
        reading = _Reading(self.system)
        response = await _post_stream(self.system, self._session, self._url, body, {})
        try:
            async for event in _events(self.system, response):
                kind, status = event.get("object"), event.get("status")
                if reading.past_end():
                    continue
                if event.get("error") or status == "failed":
                    raise BadResponse(f"{self.system}: error event: {event.get('error')}")
                if kind == "content" and event.get("delta"):
                    reading.delta(event.get("text", ""))
                elif kind == "response" and status == "completed":
                    reading.end(_agentapp_output_text(event))
        finally:
            response.release()
        return reading.checked()

    async def close(self) -> None:
        await self._session.close()


def _agentapp_output_text(event: dict[str, Any]) -> str:
    """The text of the completed response's last output message."""
    output = event.get("output") or []
    if not output:
        return ""
    return "".join(c.get("text") or "" for c in output[-1].get("content") or [])


class A2aClient:
    """A2A 1.0 over JSON-RPC: `SendStreamingMessage`, SSE back (header `A2A-Version: 1.0`).

    Content is each `artifactUpdate`'s text parts; the terminal event is the `statusUpdate`
    reaching TASK_STATE_COMPLETED. The bare server's carries no text (the artifact chunks are the
    reply); the meshscope bridge's carries the run's final message, checked against the chunks
    when `final_text` is set. `path` is where the agent's JSON-RPC endpoint is (`/agents/echo/`
    on the bridge); `joined` accepts deltas joined into fewer chunks (the bridge's coalescing).
    """

    def __init__(
        self,
        system: str,
        address: str,
        connections: int,
        *,
        path: str = "/",
        final_text: bool = False,
        joined: bool = False,
    ) -> None:
        self.system = system
        self._url = f"http://{address}{path}"
        self._final_text = final_text
        self._joined = joined
        self._session = http_session(connections)

    async def turn(self, session_id: str) -> Timing:
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendStreamingMessage",
            "params": {
                "message": {
                    "messageId": uuid.uuid4().hex,
                    "role": "ROLE_USER",
                    "parts": [{"text": INPUT_TEXT}],
                }
            },
        }
        reading = _Reading(self.system, joined=self._joined)
        headers = {"A2A-Version": A2A_VERSION}
        response = await _post_stream(self.system, self._session, self._url, body, headers)
        try:
            async for event in _events(self.system, response):
                if "error" in event:
                    raise BadResponse(f"{self.system}: JSON-RPC error: {event['error']}")
                result = event.get("result", {})
                if reading.past_end():
                    continue
                if "artifactUpdate" in result:
                    parts = result["artifactUpdate"]["artifact"].get("parts", [])
                    reading.delta("".join(p.get("text", "") for p in parts))
                elif result.get("statusUpdate", {}).get("status", {}).get("state") == "TASK_STATE_COMPLETED":
                    status = result["statusUpdate"]["status"]
                    final = status.get("message", {}).get("parts", [])
                    reading.end("".join(p.get("text", "") for p in final) if self._final_text else None)
        finally:
            response.release()
        return reading.checked()

    async def close(self) -> None:
        await self._session.close()
