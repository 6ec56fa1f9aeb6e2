"""The bridge's tasks across processes: a cancel that reaches the model call, and two bridge
replicas sharing one PostgreSQL task store (started by the test) — a task sent on one is read,
listed, subscribed to and cancelled on the other.

The agents run in this test's process (real gRPC servers on loopback) so that the test can see
the model call itself being cancelled; the orchestrator and the bridges are real processes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.types import a2a_pb2
from a2a.utils.constants import TransportProtocol

from meshscope.cli.launch import ServiceProcess, launch, meshscope_command
from meshscope.services.runtime.server import AgentServer
from meshscope.testing import PostgresDevServer, child_env, wait_for
from tests.conftest import StartServer
from tests.support import REPO, start_orchestrator

pytestmark = pytest.mark.integration

MESH = "agents: [analyst]\n"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresDevServer]:
    with PostgresDevServer() as server:
        yield server


def start_bridge(orchestrator: ServiceProcess, database: str) -> ServiceProcess:
    return launch(
        meshscope_command("serve", "bridge", "--port", "0"),
        child_env(
            {
                "MESHSCOPE_ORCHESTRATOR": orchestrator.address,
                "MESHSCOPE_BRIDGE_DATABASE_URL": database,
                "MESHSCOPE_BRIDGE_RATE_LIMIT": "off",
                "MESHSCOPE_BRIDGE_POLL_INTERVAL_S": "0.05",
            }
        ),
        cwd=REPO,
        timeout=60,
    )


async def client_for(bridge: ServiceProcess) -> Client:
    config = ClientConfig(
        streaming=True,
        supported_protocol_bindings=[TransportProtocol.JSONRPC],
        httpx_client=httpx.AsyncClient(timeout=30),
    )
    return await ClientFactory(config).create_from_url(f"{bridge.address}/agents/analyst")


def user_message(text: str) -> a2a_pb2.SendMessageRequest:
    return a2a_pb2.SendMessageRequest(
        message=a2a_pb2.Message(
            message_id=uuid.uuid4().hex, role=a2a_pb2.ROLE_USER, parts=[a2a_pb2.Part(text=text)]
        )
    )


async def start_slow_task(client: Client, words: int) -> str:
    """Send a long streaming task; return its id once its first text has streamed (the run is live)."""
    stream = cast(
        AsyncGenerator[a2a_pb2.StreamResponse, None],
        client.send_message(user_message(f"talk for a while #slow={words}")),
    )
    task_id = ""
    async for item in stream:
        if item.HasField("task"):
            task_id = item.task.id
        if item.HasField("artifact_update"):
            break
    await stream.aclose()
    return task_id


async def model_cancelled(agents: AgentServer) -> int:
    return int(getattr(agents.agents["analyst"].model, "cancelled_calls", 0))


async def test_cancel_task_stops_the_agents_model_call(start_server: StartServer, tmp_path: Path) -> None:
    agents = await start_server(["analyst"])
    orchestrator = start_orchestrator(tmp_path / "mesh.yaml", MESH, {"analyst": f"127.0.0.1:{agents.port}"})
    bridge = start_bridge(orchestrator, f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}")
    client = await client_for(bridge)
    try:
        task_id = await start_slow_task(client, 400)  # 20 s of words unless cancelled
        cancelled = await client.cancel_task(a2a_pb2.CancelTaskRequest(id=task_id))
        assert cancelled.status.state == a2a_pb2.TASK_STATE_CANCELED
        await wait_for(lambda: model_cancelled(agents), lambda n: n == 1, timeout=5)
        assert agents.stats.in_flight == 0
        stored = await client.get_task(a2a_pb2.GetTaskRequest(id=task_id))
        assert stored.status.state == a2a_pb2.TASK_STATE_CANCELED
    finally:
        await client.close()
        assert bridge.stop() == 0
        orchestrator.stop()
    assert "Traceback" not in "\n".join(bridge.log)


async def test_two_bridge_replicas_share_tasks_through_postgresql(
    start_server: StartServer, tmp_path: Path, postgres: PostgresDevServer
) -> None:
    agents = await start_server(["analyst"])
    orchestrator = start_orchestrator(tmp_path / "mesh.yaml", MESH, {"analyst": f"127.0.0.1:{agents.port}"})
    first = start_bridge(orchestrator, postgres.url)
    second = start_bridge(orchestrator, postgres.url)
    on_first, on_second = await client_for(first), await client_for(second)
    try:
        # Sent on the first replica, subscribed to on the second: the stored task, then every
        # later event through the shared event table, until the end.
        task_id = await start_slow_task(on_first, 20)
        seen = await on_second.get_task(a2a_pb2.GetTaskRequest(id=task_id))
        assert seen.status.state == a2a_pb2.TASK_STATE_WORKING
        listed = await on_second.list_tasks(a2a_pb2.ListTasksRequest(context_id=seen.context_id))
        assert [t.id for t in listed.tasks] == [task_id]
        events = [item async for item in on_second.subscribe(a2a_pb2.SubscribeToTaskRequest(id=task_id))]
        assert events[0].HasField("task")
        snapshot = "".join(p.text for a in events[0].task.artifacts for p in a.parts)
        later = "".join(
            p.text
            for e in events[1:]
            if e.HasField("artifact_update")
            for p in e.artifact_update.artifact.parts
        )
        done = await on_first.get_task(a2a_pb2.GetTaskRequest(id=task_id))
        assert done.status.state == a2a_pb2.TASK_STATE_COMPLETED
        assert events[-1].status_update.status.state == a2a_pb2.TASK_STATE_COMPLETED
        assert snapshot + later == "".join(
            p.text for p in done.status.message.parts
        )  # nothing lost or repeated

        # Running on the first replica, cancelled on the second: the first stops the run.
        task_id = await start_slow_task(on_first, 400)
        cancelled = await on_second.cancel_task(a2a_pb2.CancelTaskRequest(id=task_id))
        assert cancelled.status.state == a2a_pb2.TASK_STATE_CANCELED
        await wait_for(lambda: model_cancelled(agents), lambda n: n == 1, timeout=10)
        assert (await on_first.get_task(a2a_pb2.GetTaskRequest(id=task_id))).status.state == (
            a2a_pb2.TASK_STATE_CANCELED
        )
    finally:
        await on_first.close()
        await on_second.close()
        for bridge in (first, second):
            assert bridge.stop() == 0
        orchestrator.stop()
    for bridge in (first, second):
        assert "Traceback" not in "\n".join(bridge.log)
