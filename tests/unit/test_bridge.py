"""The bridge's parts on their own: the part mapping, its settings, the edge guard (a real ASGI
app behind it, called through httpx), the push-URL policy, and the follow-up context fix over a
real SQLite task store."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from a2a.server.cluster import TaskVersion, VersionedTaskStore
from a2a.server.context import ServerCallContext
from a2a.types import a2a_pb2
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from meshscope.config import ConfigError
from meshscope.orchestrator.bridge.app import _KeepTaskContext
from meshscope.orchestrator.bridge.config import BridgeSettings, rate_limit_storage
from meshscope.orchestrator.bridge.parts import (
    KIND_KEY,
    PartError,
    to_a2a_message,
    to_a2a_part,
    to_mesh_message,
    to_mesh_part,
)
from meshscope.orchestrator.bridge.security import Guard, PushUrlPolicy, RateLimit
from meshscope.orchestrator.bridge.stores import open_stores
from meshscope.v1 import common_pb2

# --- parts -------------------------------------------------------------------------------------


def _with_metadata(part: a2a_pb2.Part, **values: str | float) -> a2a_pb2.Part:
    part.metadata.update(values)
    return part


A2A_PARTS = [
    a2a_pb2.Part(text="plain"),
    _with_metadata(a2a_pb2.Part(text="with metadata"), lang="en", n=2),
    a2a_pb2.Part(text="# title", media_type="text/markdown"),
    a2a_pb2.Part(raw=b"\x00\x01binary\xff", media_type="image/png", filename="dot.png"),
    a2a_pb2.Part(url="https://example.com/a.pdf", media_type="application/pdf", filename="a.pdf"),
    json_format.ParseDict(
        {"data": {"a": [1, 2, {"b": None}], "c": "d"}, "filename": "x.json"}, a2a_pb2.Part()
    ),
    json_format.ParseDict({"data": [1, "two", True]}, a2a_pb2.Part()),
    _with_metadata(json_format.ParseDict({"data": "just a string"}, a2a_pb2.Part()), source="form"),
]


@pytest.mark.parametrize("part", A2A_PARTS, ids=lambda p: p.WhichOneof("content"))
def test_an_a2a_part_comes_back_from_the_mesh_unchanged(part: a2a_pb2.Part) -> None:
    assert to_a2a_part(to_mesh_part(part)) == part


def test_a_message_maps_both_ways_with_its_metadata() -> None:
    message = a2a_pb2.Message(message_id="m1", role=a2a_pb2.ROLE_USER, parts=A2A_PARTS)
    message.metadata.update({"trace": "t-1"})
    mesh = to_mesh_message(message)
    assert mesh.role == common_pb2.ROLE_USER
    assert mesh.id == "m1"
    back = to_a2a_message(mesh, task_id="t", context_id="c")
    assert list(back.parts) == A2A_PARTS
    assert back.metadata["trace"] == "t-1"


def test_mesh_only_kinds_become_marked_a2a_parts() -> None:
    thinking = to_a2a_part(common_pb2.Part(thinking="hmm"))
    assert (thinking.text, thinking.metadata[KIND_KEY]) == ("hmm", "thinking")
    call = to_a2a_part(
        common_pb2.Part(tool_call=common_pb2.ToolCall(id="c1", name="search", input='{"q": 1}'))
    )
    assert call.metadata[KIND_KEY] == "tool_call"
    assert json_format.MessageToDict(call.data) == {"id": "c1", "name": "search", "input": '{"q": 1}'}
    result = to_a2a_part(
        common_pb2.Part(
            tool_result=common_pb2.ToolResult(
                id="c1",
                name="search",
                output=[common_pb2.Part(text="found")],
                state=common_pb2.TOOL_RESULT_STATE_SUCCESS,
            )
        )
    )
    assert json_format.MessageToDict(result.data)["output"] == [{"text": "found"}]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (a2a_pb2.Message(message_id="m", role=a2a_pb2.ROLE_USER), "the message has no parts"),
        (
            a2a_pb2.Message(message_id="m", role=a2a_pb2.ROLE_USER, parts=[a2a_pb2.Part()]),
            "part 0 has no content",
        ),
    ],
)
def test_a_message_the_mesh_cannot_carry_is_a_part_error(message: a2a_pb2.Message, error: str) -> None:
    with pytest.raises(PartError, match=error):
        to_mesh_message(message)


# --- settings ----------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = BridgeSettings.from_env({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.database_url == "sqlite+aiosqlite:///.meshscope/bridge.db"
    assert settings.rate_limit == "600/minute"
    assert settings.rate_limit_storage == "async+memory://"
    assert settings.api_keys == {}
    assert settings.base_url(8080) == "http://127.0.0.1:8080"


def test_settings_read_keys_and_redis() -> None:
    settings = BridgeSettings.from_env(
        {
            "MESHSCOPE_BRIDGE_API_KEYS": "alice=0123456789abcdef, bob=fedcba9876543210",
            "REDIS_URL": "redis://127.0.0.1:6390/0",
            "MESHSCOPE_BRIDGE_RATE_LIMIT": "off",
            "MESHSCOPE_BRIDGE_PUBLIC_URL": "https://a2a.example.com/",
        }
    )
    assert settings.api_keys == {"0123456789abcdef": "alice", "fedcba9876543210": "bob"}
    assert settings.rate_limit is None
    assert settings.rate_limit_storage == "async+redis://127.0.0.1:6390/0"
    assert settings.base_url(1) == "https://a2a.example.com"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MESHSCOPE_BRIDGE_PORT": "99999"}, "MESHSCOPE_BRIDGE_PORT='99999' is not valid"),
        (
            {"MESHSCOPE_BRIDGE_DATABASE_URL": "mysql://x"},
            "MESHSCOPE_BRIDGE_DATABASE_URL='mysql://x' is not valid",
        ),
        ({"MESHSCOPE_BRIDGE_API_KEYS": "alice"}, "'alice' is not name=key"),
        ({"MESHSCOPE_BRIDGE_API_KEYS": "alice=short"}, "the key of 'alice' is shorter than 16"),
        (
            {"MESHSCOPE_BRIDGE_API_KEYS": "a=0123456789abcdef,a=0123456789abcdeg"},
            "'a' or its key is given twice",
        ),
        ({"MESHSCOPE_BRIDGE_RATE_LIMIT": "lots"}, "MESHSCOPE_BRIDGE_RATE_LIMIT='lots' is not valid"),
        ({"MESHSCOPE_BRIDGE_PUSH_ALLOWED_HOSTS": "ok.example.com,bad host"}, "'bad host' is not a host name"),
        ({"MESHSCOPE_BRIDGE_MAX_BODY_BYTES": "0"}, "MESHSCOPE_BRIDGE_MAX_BODY_BYTES='0' is not valid"),
        (
            {"MESHSCOPE_BRIDGE_RATE_LIMIT_STORAGE": "bogus://"},
            "MESHSCOPE_BRIDGE_RATE_LIMIT_STORAGE='bogus://' is not",
        ),
        (
            {"MESHSCOPE_BRIDGE_RATE_LIMIT_STORAGE": "redis://x"},
            "MESHSCOPE_BRIDGE_RATE_LIMIT_STORAGE='redis://x' is not",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BridgeSettings.from_env(environ)


# --- the guard -----------------------------------------------------------------------------------


async def _whoami(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"user": request.user.display_name, "bytes": len(body)})


def guarded(**options: object) -> httpx.AsyncClient:
    app = Starlette(
        routes=[
            Route("/agents/a/", _whoami, methods=["POST"]),
            Route("/agents/a/tasks", _whoami, methods=["GET"]),
            Route("/agents/a/.well-known/agent-card.json", _whoami, methods=["GET"]),
        ]
    )
    settings: dict[str, object] = {"max_body_bytes": 100, "api_keys": {}, "rate_limit": None, **options}
    guard = Guard(app, **settings)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://bridge")


async def test_the_guard_passes_a_small_json_body_whole() -> None:
    async with guarded() as http:
        response = await http.post(
            "/agents/a/", content=b'{"x": 1}', headers={"content-type": "application/json"}
        )
    assert response.json() == {"user": "", "bytes": 8}


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [(b"x" * 101, "application/json", 413), (b"{}", "text/plain", 415), (b"{}", "", 415)],
)
async def test_the_guard_refuses_big_or_untyped_bodies(body: bytes, content_type: str, status: int) -> None:
    async with guarded() as http:
        response = await http.post("/agents/a/", content=body, headers={"content-type": content_type})
    assert response.status_code == status
    assert response.json()["error"]["code"] == -32600  # a JSON-RPC endpoint: JSON-RPC's shape


@pytest.mark.parametrize("body", [b"\xff\xfe{", b'{\x00"a": 1}', b'\x00{"a": 1}', b'{"text": "\xc3\x28"}'])
async def test_a_body_json_would_not_read_as_utf8_is_a_parse_error(body: bytes) -> None:
    """Found by `make fuzz`: json.loads guesses UTF-16 from a NUL or a BOM, and its decode error
    reached the client as a -32603 internal error with a traceback in the bridge's log."""
    async with guarded() as http:
        response = await http.post("/agents/a/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700  # JSON-RPC's parse error


@pytest.mark.parametrize("version", ["1.0", "junk", "2"])
async def test_a_0_3_method_under_another_a2a_version_is_an_invalid_request(version: str) -> None:
    """Found by `make fuzz`: a2a-sdk answered this contradiction -32603, an internal error."""
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "tasks/resubscribe", "params": {"id": "x"}}'
    headers = {"content-type": "application/json", "A2A-Version": version}
    async with guarded() as http:
        refused = await http.post("/agents/a/", content=body, headers=headers)
        passed = await http.post("/agents/a/", content=body, headers={**headers, "A2A-Version": "0.3"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == -32600
    assert "tasks/resubscribe" in refused.json()["error"]["message"]
    assert passed.status_code == 200  # 0.3 with its own version goes through


async def test_the_guard_names_the_key_holder_and_refuses_others() -> None:
    async with guarded(api_keys={"k" * 16: "alice"}) as http:
        ok = await http.get("/agents/a/tasks", headers={"Authorization": f"Bearer {'k' * 16}"})
        header = await http.get("/agents/a/tasks", headers={"X-API-Key": "k" * 16})
        wrong = await http.get("/agents/a/tasks", headers={"Authorization": "Bearer nope"})
        card = await http.get("/agents/a/.well-known/agent-card.json")
    assert ok.json()["user"] == header.json()["user"] == "alice"
    assert (wrong.status_code, wrong.json()["error"]["status"]) == (401, "UNAUTHENTICATED")
    assert card.status_code == 200


async def test_the_guard_limits_each_key() -> None:
    limit = RateLimit("2/minute", rate_limit_storage("async+memory://"))
    async with guarded(api_keys={"a" * 16: "alice", "b" * 16: "bob"}, rate_limit=limit) as http:
        statuses = [
            (await http.get("/agents/a/tasks", headers={"X-API-Key": "a" * 16})).status_code for _ in range(3)
        ]
        bob = await http.get("/agents/a/tasks", headers={"X-API-Key": "b" * 16})
    assert statuses == [200, 200, 429]
    assert bob.status_code == 200


async def test_a_rate_limit_storage_that_fails_is_a_503_not_a_traceback() -> None:
    from meshscope.testing import free_port

    down = RateLimit("5/minute", rate_limit_storage(f"async+redis://127.0.0.1:{free_port()}/0"))
    async with guarded(rate_limit=down) as http:
        response = await http.get("/agents/a/tasks")
    assert response.status_code == 503
    assert response.json()["error"]["message"] == "the rate-limit storage is unavailable; try again"


# --- push URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "hosts", "private", "allowed"),
    [
        ("http://127.0.0.1:8000/hook", (), False, False),
        ("http://10.1.2.3/hook", (), False, False),
        ("http://169.254.169.254/latest", (), False, False),
        ("ftp://8.8.8.8/hook", (), True, False),
        ("http://127.0.0.1:8000/hook", (), True, True),
        ("https://hooks.example.com/x", ("*.example.com",), True, True),
        ("https://evil.com/x", ("*.example.com",), True, False),
        ("https://example.com.evil.com/x", ("example.com",), True, False),
        ("http://[::1]:99999/x", (), True, False),
    ],
)
async def test_push_urls_are_screened(url: str, hosts: tuple[str, ...], private: bool, allowed: bool) -> None:
    assert await PushUrlPolicy(hosts, private)(url) is allowed


# --- a follow-up naming a task but no context (upstream a2a-python #1206) ------------------------


async def test_a_follow_up_naming_only_its_task_keeps_the_tasks_context(tmp_path: Path) -> None:
    stores = await open_stores(f"sqlite+aiosqlite:///{tmp_path / 'tasks.db'}", poll_interval_s=0.1)
    try:
        context = ServerCallContext()
        task = a2a_pb2.Task(
            id="t-1", context_id="session-7", status=a2a_pb2.TaskStatus(state=a2a_pb2.TASK_STATE_WORKING)
        )
        tasks = stores.tasks
        assert isinstance(tasks, VersionedTaskStore)  # the database stores are versioned
        await tasks.save(task, event=None, prev=None, prev_version=TaskVersion.MISSING, context=context)
        params = a2a_pb2.SendMessageRequest(
            message=a2a_pb2.Message(
                message_id="m", task_id="t-1", role=a2a_pb2.ROLE_USER, parts=[a2a_pb2.Part(text="hi")]
            )
        )
        built = await _KeepTaskContext(tasks).build(context, params, task_id="t-1", context_id=None)
    finally:
        await stores.close()
    assert built.context_id == "session-7"
