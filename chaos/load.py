"""The load a chaos run holds: A2A clients streaming runs through the bridge, every run recorded.

Each client is one A2A context (one mesh session) and sends one streaming message after another
(`message/stream` over JSON-RPC, a2a-sdk's own client), each text unique (`c<client> t<turn>`) so
that its transcript line can be found later. A run is recorded with what the client saw: its task
id, the artifact text chunks in order, and how it ended (completed, failed with the task's reason,
or its stream broke). While the bridge cannot be reached, clients retry every 0.2 s: those attempts
are not runs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import httpx
from a2a.client import ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.types import a2a_pb2

__all__ = ["Load", "RunRecord"]

WORDS = 12
"""Words per reply: the scripted model streams one every 50 ms with `#slow=`, so a run lasts ~0.6 s and a
fault always finds runs in flight."""


@dataclass
class RunRecord:
    client: int
    turn: int
    text: str
    context_id: str
    started: float
    ended: float = 0.0
    task_id: str = ""
    chunks: list[str] = field(default_factory=list)
    outcome: str = ""
    """completed, failed, or broken (the stream ended without the task's end)."""
    reason: str = ""
    message: str = ""
    """The task's failure message, or the broken stream's exception."""
    agent_streamed: bool = False
    """The bridge's `meshscope.streamed` of a failed task: an agent event of the run had arrived."""

    @property
    def streamed(self) -> bool:
        """Whether the run had streamed before it ended: the client got text, or the bridge says an
        agent event had arrived (after which the orchestrator cannot move the step elsewhere)."""
        return bool(self.chunks) or self.agent_streamed


def _unreachable(exc: BaseException) -> bool:
    """Whether the bridge could not be connected to at all (a2a-sdk wraps httpx's errors)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, httpx.ConnectError | ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Load:
    """`clients` A2A clients sending runs until `stop` (see the module docstring)."""

    def __init__(self, bridge_url: str, target: str, clients: int) -> None:
        self.bridge_url = bridge_url
        self.target = target
        self.clients = clients
        self.runs: list[RunRecord] = []
        """Every run that ended, in the order they ended."""
        self.in_flight: dict[int, RunRecord] = {}
        """Each client's run in progress."""
        self.contexts = [uuid.uuid4().hex for _ in range(clients)]
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._http = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients * 2))

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._client(i)) for i in range(self.clients)]

    async def stop(self) -> None:
        """Let every client finish its run in progress, then stop."""
        self._stopping = True
        await asyncio.gather(*self._tasks)
        await self._http.aclose()

    def completed_between(self, start: float, end: float) -> int:
        return sum(1 for r in self.runs if r.outcome == "completed" and start <= r.ended < end)

    def overlapping(self, start: float, end: float) -> list[RunRecord]:
        """Runs in flight at some moment of [start, end)."""
        return [r for r in self.runs if r.started < end and (r.ended or time.monotonic()) >= start]

    async def _connect(self) -> Client:
        config = ClientConfig(streaming=True, httpx_client=self._http)
        while True:
            try:
                return await ClientFactory(config).create_from_url(f"{self.bridge_url}/agents/{self.target}")
            except Exception:  # the bridge is down: wait for it, as a client would
                await asyncio.sleep(0.2)

    async def _client(self, index: int) -> None:
        client = await self._connect()
        turn = 0
        while not self._stopping:
            turn += 1
            record = RunRecord(
                index, turn, f"c{index} t{turn} #slow={WORDS}", self.contexts[index], time.monotonic()
            )
            self.in_flight[index] = record
            try:
                await self._run(client, record)
            except Exception as exc:  # what the client library raises for a broken stream, or none
                if not record.task_id and not record.chunks and _unreachable(exc):
                    del self.in_flight[index]
                    await asyncio.sleep(0.2)  # never reached the bridge: not a run
                    turn -= 1
                    continue
                record.outcome, record.reason = "broken", type(exc).__name__
                record.message = str(exc)[:300]
            record.ended = time.monotonic()
            self.runs.append(record)
            del self.in_flight[index]

    async def _run(self, client: Client, record: RunRecord) -> None:
        message = a2a_pb2.Message(
            message_id=uuid.uuid4().hex,
            role=a2a_pb2.ROLE_USER,
            context_id=record.context_id,
            parts=[a2a_pb2.Part(text=record.text)],
        )
        async for item in client.send_message(a2a_pb2.SendMessageRequest(message=message)):
            if item.HasField("task"):
                record.task_id = item.task.id
            elif item.HasField("artifact_update"):
                record.chunks.append("".join(p.text for p in item.artifact_update.artifact.parts))
            elif item.HasField("status_update"):
                state = item.status_update.status.state
                if state == a2a_pb2.TASK_STATE_COMPLETED:
                    record.outcome = "completed"
                elif state in (
                    a2a_pb2.TASK_STATE_FAILED,
                    a2a_pb2.TASK_STATE_REJECTED,
                    a2a_pb2.TASK_STATE_CANCELED,
                ):
                    record.outcome = "failed"
                    metadata = item.status_update.metadata
                    if "meshscope.reason" in metadata:
                        record.reason = str(metadata["meshscope.reason"])
                    if "meshscope.streamed" in metadata:
                        record.agent_streamed = bool(metadata["meshscope.streamed"])
                    parts = item.status_update.status.message.parts
                    record.message = "".join(p.text for p in parts)[:300]
        if not record.outcome:
            record.outcome, record.reason = "broken", "the stream ended without the task's end"
