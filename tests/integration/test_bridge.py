"""The A2A bridge against real processes: agents (scripted model), the orchestrator and the
bridge, each `meshscope serve ...`, talked to by a2a-sdk's own client over JSON-RPC and
HTTP+JSON, by raw A2A 0.3 JSON, and by AgentScope's `A2AAgent`.

Every bridge this module starts is checked at the end for tracebacks in its log: bad input gets
a precise error, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import uvicorn
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.types import a2a_pb2
from a2a.utils.constants import TransportProtocol
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshscope.cli.launch import ServiceProcess, launch, meshscope_command
from meshscope.testing import child_env, wait_for
from tests.support import REPO, start_agents, start_orchestrator

pytestmark = pytest.mark.integration

MESH = """
agents: [analyst, writer]
pipelines:
  analysis: {kind: sequential, steps: [analyst, writer]}
"""
A2A_1 = {"A2A-Version": "1.0"}
TRANSPORTS = [TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON]


@dataclass
class Mesh:
    agents: ServiceProcess
    orchestrator: ServiceProcess
    folder: Path
    bridges: list[ServiceProcess] = field(default_factory=list)

    def start_bridge(
        self, env: Mapping[str, str] | None = None, *, database: str | None = None, port: int = 0
    ) -> ServiceProcess:
        """`meshscope serve bridge --port PORT` in front of this mesh (SQLite in its folder by default)."""
        bridge = launch(
            meshscope_command("serve", "bridge", "--port", str(port)),
            child_env(
                {
                    "MESHSCOPE_ORCHESTRATOR": self.orchestrator.address,
                    "MESHSCOPE_BRIDGE_DATABASE_URL": database
                    or f"sqlite+aiosqlite:///{self.folder / f'bridge-{len(self.bridges)}.db'}",
                    "MESHSCOPE_BRIDGE_RATE_LIMIT": "off",
                    **(env or {}),
                }
            ),
            cwd=REPO,
            timeout=60,
        )
        self.bridges.append(bridge)
        return bridge


def assert_no_traceback(process: ServiceProcess) -> None:
    text = "\n".join(process.log)
    assert "Traceback" not in text, text[-3000:]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    folder = tmp_path_factory.mktemp("bridge")
    agents = start_agents(["--agents", "analyst,writer", "--model", "scripted"])
    orchestrator = start_orchestrator(
        folder / "mesh.yaml", MESH, {"analyst": agents.address, "writer": agents.address}
    )
    built = Mesh(agents, orchestrator, folder)
    try:
        yield built
    finally:
        for bridge in built.bridges:
            bridge.stop()
        orchestrator.stop()
        agents.stop()
    for bridge in built.bridges:
        assert_no_traceback(bridge)


@pytest.fixture(scope="module")
def bridge(mesh: Mesh) -> ServiceProcess:
    """An open bridge (no keys) that may push to loopback (the test's webhook)."""
    return mesh.start_bridge({"MESHSCOPE_BRIDGE_PUSH_ALLOW_PRIVATE": "true"})


async def client_for(
    url: str,
    transport: str = TransportProtocol.JSONRPC,
    *,
    streaming: bool = True,
    headers: Mapping[str, str] = {},
) -> Client:
    """a2a-sdk's client for the agent whose card is at `url`, on `transport`."""
    config = ClientConfig(
        streaming=streaming,
        supported_protocol_bindings=[transport],
        httpx_client=httpx.AsyncClient(timeout=30, headers=dict(headers)),
    )
    return await ClientFactory(config).create_from_url(url)


def user_message(text: str, **fields: Any) -> a2a_pb2.SendMessageRequest:
    return a2a_pb2.SendMessageRequest(
        message=a2a_pb2.Message(
            message_id=uuid.uuid4().hex, role=a2a_pb2.ROLE_USER, parts=[a2a_pb2.Part(text=text)], **fields
        )
    )


def text_of(parts: Any) -> str:
    return "".join(p.text for p in parts)


async def send(client: Client, request: a2a_pb2.SendMessageRequest) -> list[a2a_pb2.StreamResponse]:
    return [item async for item in client.send_message(request)]


def final_task(items: list[a2a_pb2.StreamResponse]) -> a2a_pb2.Task:
    tasks = [i.task for i in items if i.HasField("task")]
    assert tasks, items
    return tasks[-1]


# --- cards ------------------------------------------------------------------------------------


async def test_every_pipeline_and_agent_has_its_card_and_the_root_serves_the_default(
    bridge: ServiceProcess,
) -> None:
    async with httpx.AsyncClient() as http:
        root = (await http.get(f"{bridge.address}/.well-known/agent-card.json")).json()
        analyst = await http.get(f"{bridge.address}/agents/analyst/.well-known/agent-card.json")
        missing = await http.get(f"{bridge.address}/agents/nobody/.well-known/agent-card.json")
    assert root["name"] == "analysis"  # the first pipeline: the default
    assert [s["id"] for s in root["skills"]] == ["analysis"]
    card = analyst.json()
    assert card["name"] == "analyst"
    assert card["capabilities"] == {"streaming": True, "pushNotifications": True}
    interfaces = {(i["protocolBinding"], i["protocolVersion"]): i["url"] for i in card["supportedInterfaces"]}
    base = f"{bridge.address}/agents/analyst"
    assert interfaces == {
        ("JSONRPC", "1.0"): f"{base}/",
        ("HTTP+JSON", "1.0"): base,
        ("JSONRPC", "0.3"): f"{base}/",
        ("HTTP+JSON", "0.3"): base,
    }
    # The 0.3 fields a 0.3 client reads (upstream a2a-python #1111).
    assert (card["protocolVersion"], card["url"], card["preferredTransport"]) == (
        "0.3",
        f"{base}/",
        "JSONRPC",
    )
    assert "securitySchemes" not in card  # an open bridge asks for no key
    assert analyst.headers["cache-control"] == "public, max-age=60"
    assert missing.status_code == 404
    assert "no agent or pipeline named 'nobody'" in missing.json()["error"]["message"]


async def test_a_card_revalidates_with_its_etag(bridge: ServiceProcess) -> None:
    url = f"{bridge.address}/agents/writer/.well-known/agent-card.json"
    async with httpx.AsyncClient() as http:
        first = await http.get(url)
        again = await http.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert first.status_code == 200
    assert again.status_code == 304


# --- send, stream, get, list -----------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_send_returns_the_completed_task_with_each_steps_reply(
    bridge: ServiceProcess, transport: str
) -> None:
    client = await client_for(f"{bridge.address}/agents/analysis", transport, streaming=False)
    try:
        task = final_task(await send(client, user_message("Compare gRPC and REST")))
    finally:
        await client.close()
    assert task.status.state == a2a_pb2.TASK_STATE_COMPLETED
    final = text_of(task.status.message.parts)
    assert final.startswith("writer: turn 1.")
    assert "analyst: turn 1. You said: Compare gRPC and REST." in final  # the writer got the analyst's reply
    by_step = {a.metadata["meshscope.step"]: a for a in task.artifacts}
    assert set(by_step) == {"analyst", "writer"}
    assert text_of(by_step["writer"].parts) == final
    assert by_step["analyst"].metadata["meshscope.agent"] == "analyst"
    assert str(by_step["analyst"].metadata["meshscope.replica"]).startswith("analyst@")
    assert task.metadata["meshscope.target"] == "analysis"
    assert task.history[0].parts[0].text == "Compare gRPC and REST"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_stream_starts_with_the_task_and_streams_text_as_artifact_updates(
    bridge: ServiceProcess, transport: str
) -> None:
    client = await client_for(f"{bridge.address}/agents/analyst", transport)
    try:
        items = await send(client, user_message("stream this please #slow=8"))
    finally:
        await client.close()
    kinds = [i.WhichOneof("payload") for i in items]
    assert kinds[0] == "task"  # the task first, created once the run started
    assert items[0].task.status.state == a2a_pb2.TASK_STATE_WORKING
    assert items[0].task.metadata["meshscope.kind"] == "agent"
    assert items[-1].status_update.status.state == a2a_pb2.TASK_STATE_COMPLETED
    assert kinds[1:-1] == ["artifact_update"] * (len(kinds) - 2)
    updates = [i.artifact_update for i in items if i.HasField("artifact_update")]
    assert len(updates) >= 8  # word by word, as the model streamed it (one word every 50 ms)
    assert not updates[0].append
    assert all(u.append for u in updates[1:])
    assert text_of(p for u in updates for p in u.artifact.parts) == text_of(
        items[-1].status_update.status.message.parts
    )


async def test_text_faster_than_the_flush_interval_is_sent_in_fewer_chunks(bridge: ServiceProcess) -> None:
    client = await client_for(f"{bridge.address}/agents/analyst")
    try:
        items = await send(client, user_message("a quick reply of many words, streamed at once"))
    finally:
        await client.close()
    updates = [i.artifact_update for i in items if i.HasField("artifact_update")]
    final = text_of(items[-1].status_update.status.message.parts)
    assert len(final.split()) >= 12  # the model streamed a chunk per word...
    assert len(updates) <= 3  # ...that came faster than MESHSCOPE_BRIDGE_FLUSH_MS (50 ms): coalesced
    assert updates[0].artifact.parts[0].text == "analyst:"  # the first word is not held back
    assert text_of(p for u in updates for p in u.artifact.parts) == final


async def test_get_and_list_find_the_task(bridge: ServiceProcess) -> None:
    client = await client_for(f"{bridge.address}/agents/analyst", streaming=False)
    try:
        task = final_task(await send(client, user_message("remember me")))
        got = await client.get_task(a2a_pb2.GetTaskRequest(id=task.id))
        listed = await client.list_tasks(a2a_pb2.ListTasksRequest(context_id=task.context_id))
    finally:
        await client.close()
    assert got.id == task.id
    assert got.status.state == a2a_pb2.TASK_STATE_COMPLETED
    assert [t.id for t in listed.tasks] == [task.id]


async def test_a_follow_up_in_the_same_context_continues_the_session(bridge: ServiceProcess) -> None:
    client = await client_for(f"{bridge.address}/agents/analyst", streaming=False)
    try:
        first = final_task(await send(client, user_message("my name is Ada")))
        second = final_task(await send(client, user_message("what is my name?", context_id=first.context_id)))
        elsewhere = final_task(await send(client, user_message("what is my name?")))
    finally:
        await client.close()
    assert second.context_id == first.context_id
    assert text_of(second.status.message.parts).startswith("analyst: turn 2.")
    assert "my name is Ada" in text_of(second.status.message.parts)
    assert text_of(elsewhere.status.message.parts).startswith("analyst: turn 1.")


# --- subscribe, resubscribe, cancel ------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_client_whose_stream_broke_resubscribes_and_misses_nothing(
    bridge: ServiceProcess, transport: str
) -> None:
    client = await client_for(f"{bridge.address}/agents/analyst", transport)
    try:
        seen: list[str] = []
        task_id = ""
        stream = cast(
            AsyncGenerator[a2a_pb2.StreamResponse, None], client.send_message(user_message("go on #slow=30"))
        )
        async for item in stream:
            if item.HasField("task"):
                task_id = item.task.id
            if item.HasField("artifact_update"):
                seen.extend(p.text for p in item.artifact_update.artifact.parts)
                if len(seen) == 3:
                    break
        await stream.aclose()  # the connection drops mid-run

        resumed = [item async for item in client.subscribe(a2a_pb2.SubscribeToTaskRequest(id=task_id))]
        done = await client.get_task(a2a_pb2.GetTaskRequest(id=task_id))
    finally:
        await client.close()
    assert resumed[0].HasField("task")  # the task as it is now...
    snapshot = text_of(p for a in resumed[0].task.artifacts for p in a.parts)
    assert snapshot.startswith("".join(seen))  # ...holds everything streamed before the break
    after = text_of(
        p for i in resumed[1:] if i.HasField("artifact_update") for p in i.artifact_update.artifact.parts
    )
    full = text_of(p for a in done.artifacts for p in a.parts)
    assert snapshot + after == full  # then every later piece, once: nothing lost, nothing repeated
    assert full == text_of(done.status.message.parts)  # the reply as the agent ended it
    assert full.endswith(" ".join(f"w{i}" for i in range(30)))
    assert resumed[-1].status_update.status.state == a2a_pb2.TASK_STATE_COMPLETED


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancelling_a_finished_task_is_refused(bridge: ServiceProcess, transport: str) -> None:
    client = await client_for(f"{bridge.address}/agents/analyst", transport, streaming=False)
    try:
        task = final_task(await send(client, user_message("quick")))
        with pytest.raises(Exception, match="cannot be canceled"):
            await client.cancel_task(a2a_pb2.CancelTaskRequest(id=task.id))
    finally:
        await client.close()


# --- push notifications -------------------------------------------------------------------------


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], dict[str, Any]]]]]:
    """An HTTP receiver on loopback; yields its URL and the (headers, body) of each POST."""
    received: list[tuple[dict[str, str], dict[str, Any]]] = []

    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), json.loads(await request.body())))
        return Response(status_code=200)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), log_level="warning")
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook", received
    server.should_exit = True
    await serving
    sock.close()


async def test_push_notifications_reach_the_registered_webhook(
    bridge: ServiceProcess, webhook: tuple[str, list[tuple[dict[str, str], dict[str, Any]]]]
) -> None:
    url, received = webhook
    client = await client_for(f"{bridge.address}/agents/analyst", streaming=False)
    try:
        request = user_message("tell the hook")
        request.configuration.task_push_notification_config.url = url
        request.configuration.task_push_notification_config.token = "secret-token"
        task = final_task(await send(client, request))
    finally:
        await client.close()

    async def states() -> list[str]:
        return [b["statusUpdate"]["status"]["state"] for _, b in received if "statusUpdate" in b]

    await wait_for(states, lambda s: "TASK_STATE_COMPLETED" in s, timeout=10)
    assert {h.get("x-a2a-notification-token") for h, _ in received} == {"secret-token"}
    assert all(
        next(iter(b.values())).get("taskId", next(iter(b.values())).get("id")) == task.id for _, b in received
    )


# --- A2A 0.3 and AgentScope's client ---------------------------------------------------------------


async def test_an_a2a_0_3_client_sends_streams_and_reads_tasks(bridge: ServiceProcess) -> None:
    url = f"{bridge.address}/agents/analyst/"
    message = {
        "kind": "message",
        "messageId": "m-03",
        "role": "user",
        "parts": [{"kind": "text", "text": "hi from 0.3"}],
    }
    async with httpx.AsyncClient(timeout=30) as http:
        sent = (await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "message/send",
                                           "params": {"message": message}})).json()  # fmt: skip
        task = sent["result"]
        got = (await http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tasks/get",
                                          "params": {"id": task["id"]}})).json()  # fmt: skip
        frames: list[dict[str, Any]] = []
        async with http.stream(
            "POST", url, json={"jsonrpc": "2.0", "id": 3, "method": "message/stream",
                               "params": {"message": {**message, "messageId": "m-03b"}}},
        ) as response:  # fmt: skip
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    frames.append(json.loads(line[5:])["result"])
    assert task["kind"] == "task"
    assert task["status"]["state"] == "completed"
    assert task["status"]["message"]["parts"] == [
        {"kind": "text", "text": "analyst: turn 1. You said: hi from 0.3."}
    ]
    assert got["result"]["id"] == task["id"]
    kinds = [f["kind"] for f in frames]
    assert kinds[0] == "task"
    assert "artifact-update" in kinds
    assert frames[-1]["kind"] == "status-update"
    assert frames[-1]["status"]["state"] == "completed"


async def test_agentscopes_a2a_agent_holds_a_two_turn_conversation_with_a_pipeline(
    bridge: ServiceProcess,
) -> None:
    from a2a.client import A2ACardResolver
    from agentscope.agent import A2AAgent
    from agentscope.message import UserMsg

    async with httpx.AsyncClient(timeout=30) as http:
        card = await A2ACardResolver(http, f"{bridge.address}/agents/analysis").get_agent_card()
    async with A2AAgent(card) as agent:
        first = await agent.reply(UserMsg("user", "I am planning a migration"))
        second = await agent.reply(UserMsg("user", "and what did I say before?"))
    # A2AAgent joins every artifact (each step's streamed reply) and the final status message.
    assert "writer: turn 1." in (first.get_text_content() or "")
    second_text = second.get_text_content() or ""
    assert second_text.startswith("analyst: turn 2.")
    writer_said = second_text.split("writer: turn 2.", 1)[1]
    assert "I am planning a migration" in writer_said  # the second turn saw the first


# --- bad input ------------------------------------------------------------------------------------


def _rpc(method: str, params: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).encode()


BAD_JSONRPC = [
    ("malformed JSON", b"{nope", {}, -32700),
    ("not a request", b"[1, 2]", {}, -32600),
    ("unknown method", _rpc("Nope", {}), {}, -32601),
    ("invalid params", _rpc("SendMessage", {"message": 5}), {}, -32602),
    (
        "no parts",
        _rpc("SendMessage", {"message": {"messageId": "x", "role": "ROLE_USER", "parts": []}}),
        {},
        -32602,
    ),
    ("unknown task", _rpc("GetTask", {"id": "no-such-task"}), {}, -32001),
    ("unsupported version", _rpc("GetTask", {"id": "x"}), {"A2A-Version": "9.0"}, -32009),
]


@pytest.mark.parametrize(("case", "body", "headers", "code"), BAD_JSONRPC, ids=[c[0] for c in BAD_JSONRPC])
async def test_bad_jsonrpc_requests_get_their_a2a_error_code(
    bridge: ServiceProcess, case: str, body: bytes, headers: dict[str, str], code: int
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{bridge.address}/agents/analyst/",
            content=body,
            headers={"content-type": "application/json", **A2A_1, **headers},
        )
    assert response.status_code == 200
    assert response.json()["error"]["code"] == code


BAD_HTTP = [
    ("wrong content type", "POST", "/agents/analyst/", b"{}", {"content-type": "text/plain"}, 415),
    (
        "oversized body",
        "POST",
        "/agents/analyst/",
        b"x" * (4 * 1024 * 1024 + 1),
        {"content-type": "application/json"},
        413,
    ),
    (
        "REST malformed JSON",
        "POST",
        "/agents/analyst/message:send",
        b"{x",
        {"content-type": "application/json"},
        400,
    ),
    ("REST unknown task", "GET", "/agents/analyst/tasks/no-such-task", b"", {}, 404),
    ("unknown agent", "POST", "/agents/nobody/", b"{}", {"content-type": "application/json"}, 404),
]


@pytest.mark.parametrize(
    ("case", "method", "path", "body", "headers", "status"), BAD_HTTP, ids=[c[0] for c in BAD_HTTP]
)
async def test_bad_http_requests_get_a_precise_status(
    bridge: ServiceProcess,
    case: str,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.request(
            method, f"{bridge.address}{path}", content=body, headers={**A2A_1, **headers}
        )
    assert response.status_code == status
    payload = response.json()
    assert "error" in payload
    if path.endswith("/") and method == "POST" and status != 404:
        assert payload["error"]["code"] == -32600  # JSON-RPC's shape on a JSON-RPC endpoint


# --- restarts, replicas, auth ----------------------------------------------------------------------


async def test_tasks_survive_a_bridge_restart_with_the_sqlite_store(mesh: Mesh) -> None:
    database = f"sqlite+aiosqlite:///{mesh.folder / 'restart.db'}"
    first = mesh.start_bridge(database=database)
    client = await client_for(f"{first.address}/agents/analyst", streaming=False)
    try:
        task = final_task(await send(client, user_message("keep this")))
    finally:
        await client.close()
    assert first.stop() == 0
    second = mesh.start_bridge(database=database)
    client = await client_for(f"{second.address}/agents/analyst", streaming=False)
    try:
        got = await client.get_task(a2a_pb2.GetTaskRequest(id=task.id))
        listed = await client.list_tasks(a2a_pb2.ListTasksRequest())
    finally:
        await client.close()
    assert got.status.state == a2a_pb2.TASK_STATE_COMPLETED
    assert text_of(got.status.message.parts) == text_of(task.status.message.parts)
    assert task.id in [t.id for t in listed.tasks]


KEYS = "alice=alice-key-0123456789,bob=bob-key-0123456789abc"


async def test_api_keys_are_required_declared_and_scope_the_tasks(mesh: Mesh) -> None:
    bridge = mesh.start_bridge({"MESHSCOPE_BRIDGE_API_KEYS": KEYS})
    url = f"{bridge.address}/agents/analyst"
    async with httpx.AsyncClient() as http:
        card = (await http.get(f"{url}/.well-known/agent-card.json")).json()  # cards stay public
        anonymous = await http.post(f"{url}/", content=_rpc("GetTask", {"id": "x"}),
                                    headers={"content-type": "application/json", **A2A_1})  # fmt: skip
        wrong = await http.get(f"{url}/tasks", headers={"Authorization": "Bearer not-a-key-at-all", **A2A_1})
    assert set(card["securitySchemes"]) == {"bearer", "apiKey"}
    assert card["securitySchemes"]["apiKey"]["apiKeySecurityScheme"] == {
        "location": "header", "name": "X-API-Key", "description": "An API key.",
    }  # fmt: skip
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401

    alice = await client_for(url, streaming=False, headers={"Authorization": "Bearer alice-key-0123456789"})
    bob = await client_for(url, streaming=False, headers={"X-API-Key": "bob-key-0123456789abc"})
    try:
        task = final_task(await send(alice, user_message("mine")))
        assert (await alice.get_task(a2a_pb2.GetTaskRequest(id=task.id))).id == task.id
        with pytest.raises(Exception, match="not found"):
            await bob.get_task(
                a2a_pb2.GetTaskRequest(id=task.id)
            )  # another key's task does not exist for bob
        assert task.id not in [t.id for t in (await bob.list_tasks(a2a_pb2.ListTasksRequest())).tasks]
    finally:
        await alice.close()
        await bob.close()


async def test_a_key_over_its_rate_limit_gets_429_with_retry_after(mesh: Mesh) -> None:
    bridge = mesh.start_bridge({"MESHSCOPE_BRIDGE_API_KEYS": KEYS, "MESHSCOPE_BRIDGE_RATE_LIMIT": "3/minute"})
    url = f"{bridge.address}/agents/analyst/tasks"
    async with httpx.AsyncClient() as http:
        alice = [
            (
                await http.get(url, headers={"Authorization": "Bearer alice-key-0123456789", **A2A_1})
            ).status_code
            for _ in range(4)
        ]
        limited = await http.get(url, headers={"Authorization": "Bearer alice-key-0123456789", **A2A_1})
        bob = await http.get(url, headers={"X-API-Key": "bob-key-0123456789abc", **A2A_1})
    assert alice == [200, 200, 200, 429]
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert bob.status_code == 200  # per key


async def test_a_push_url_into_the_bridges_own_network_is_refused_by_default(mesh: Mesh) -> None:
    bridge = mesh.start_bridge()
    client = await client_for(f"{bridge.address}/agents/analyst", streaming=False)
    try:
        request = user_message("push to loopback")
        request.configuration.task_push_notification_config.url = "http://127.0.0.1:9/hook"
        with pytest.raises(Exception, match="Invalid push notification URL"):
            await send(client, request)
    finally:
        await client.close()


async def a_long_task_streaming(
    client: Client, chunks: int
) -> tuple[AsyncGenerator[a2a_pb2.StreamResponse, None], str, list[str]]:
    """A task 20 s long (400 words), streamed until its first `chunks` artifact chunks arrived: the
    stream (still open), the task id, and the chunks' texts."""
    stream = cast(
        AsyncGenerator[a2a_pb2.StreamResponse, None], client.send_message(user_message("long #slow=400"))
    )
    task_id = ""
    seen: list[str] = []
    async for item in stream:
        if item.HasField("task"):
            task_id = item.task.id
        if item.HasField("artifact_update"):
            seen.append(text_of(item.artifact_update.artifact.parts))
            if len(seen) == chunks:
                break
    return stream, task_id, seen


async def test_a_stopped_bridge_ends_its_running_tasks_failed_and_exits_cleanly(mesh: Mesh) -> None:
    database = f"sqlite+aiosqlite:///{mesh.folder / 'stop.db'}"
    bridge = mesh.start_bridge({"MESHSCOPE_SHUTDOWN_GRACE_S": "2"}, database=database)
    client = await client_for(f"{bridge.address}/agents/analyst")
    try:
        stream, task_id, _ = await a_long_task_streaming(client, chunks=1)
        bridge.terminate()  # SIGTERM while the task runs: 20 s of words are left
        rest = [item async for item in stream]
    finally:
        await client.close()
    assert bridge.stop() == 0
    last = rest[-1].status_update
    assert last.status.state == a2a_pb2.TASK_STATE_FAILED  # the stream ends with the task's fate...
    assert last.metadata["meshscope.reason"] == "ERROR_REASON_DRAINING"
    assert last.metadata["meshscope.retryable"] is True
    again = mesh.start_bridge(database=database)
    client = await client_for(f"{again.address}/agents/analyst", streaming=False)
    try:
        stored = await client.get_task(a2a_pb2.GetTaskRequest(id=task_id))
    finally:
        await client.close()
    assert stored.status.state == a2a_pb2.TASK_STATE_FAILED  # ...and the store holds it: nothing left WORKING


async def test_a_killed_bridge_leaves_no_task_running_and_its_streams_resume_without_loss(mesh: Mesh) -> None:
    database = f"sqlite+aiosqlite:///{mesh.folder / 'killed.db'}"
    bridge = mesh.start_bridge(database=database)
    port = int(bridge.address.rsplit(":", 1)[1])
    client = await client_for(f"{bridge.address}/agents/analyst")
    finished = final_task(await send(client, user_message("done before the crash")))
    try:
        stream, task_id, seen = await a_long_task_streaming(client, chunks=3)
        bridge.proc.kill()  # SIGKILL: no drain, the task is left WORKING in the store
        bridge.proc.wait()
        with pytest.raises(Exception):  # noqa: B017, PT011 - the stream breaks, however the transport says so
            async for _ in stream:
                pass
    finally:
        await client.close()
    again = mesh.start_bridge(database=database, port=port)  # the same address: the same bridge, restarted
    client = await client_for(f"{again.address}/agents/analyst", streaming=False)
    try:
        stored = await client.get_task(a2a_pb2.GetTaskRequest(id=task_id))
        still = await client.get_task(a2a_pb2.GetTaskRequest(id=finished.id))
    finally:
        await client.close()
    assert stored.status.state == a2a_pb2.TASK_STATE_FAILED  # not WORKING forever
    assert stored.metadata["meshscope.reason"] == "ERROR_REASON_CUT_OFF"
    assert stored.metadata["meshscope.retryable"] is True
    # Every chunk the client saw before the crash is in the stored artifact, in order, once.
    assert text_of(stored.artifacts[0].parts).startswith("".join(seen))
    assert still.status.state == a2a_pb2.TASK_STATE_COMPLETED  # finished tasks are left as they are
    assert any("ended 1 task(s) an earlier bridge" in line for line in again.log), again.log
