"""Hypothesis strategies for HTTP requests to the A2A bridge: JSON-RPC and HTTP+JSON, bodies and headers.

a2a-sdk serves no OpenAPI description of its HTTP+JSON routes, so schemathesis has nothing to read;
these strategies follow the A2A routes and JSON-RPC methods instead: known methods and made-up
ones, parameters shaped like A2A messages (parts of every kind, ids, metadata) or any JSON at all,
the versions of the A2A-Version header and junk, content types right and wrong, bodies that are
not JSON, not UTF-8, or empty, and paths under every target and none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

__all__ = ["HttpRequest", "http_requests"]

METHODS = [
    "SendMessage",
    "SendStreamingMessage",
    "GetTask",
    "ListTasks",
    "CancelTask",
    "SubscribeToTask",
    "CreateTaskPushNotificationConfig",
    "GetTaskPushNotificationConfig",
    "ListTaskPushNotificationConfigs",
    "DeleteTaskPushNotificationConfig",
    "GetExtendedAgentCard",
    "message/send",
    "message/stream",
    "tasks/get",
    "tasks/cancel",
    "tasks/resubscribe",
    "tasks/pushNotificationConfig/set",
    "tasks/pushNotificationConfig/get",
    "tasks/pushNotificationConfig/list",
    "tasks/pushNotificationConfig/delete",
    "agent/getAuthenticatedExtendedCard",
]
STREAMING = {"SendStreamingMessage", "message/stream", "SubscribeToTask", "tasks/resubscribe"}


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    streaming: bool
    """The answer may be an SSE stream: read it with a time limit."""


def _texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=30),
        st.sampled_from(["", "hello", "task-1", "x" * 300, "#fail", "#slow=3", "\u202e", "\ud7ff"]),
    )


def _json() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        _texts(),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts(), inner, max_size=4),
        max_leaves=15,
    )


def _parts() -> st.SearchStrategy[Any]:
    part = st.one_of(
        st.fixed_dictionaries({"text": _texts()}),
        st.fixed_dictionaries({"data": _json()}),
        st.fixed_dictionaries({"url": _texts(), "mediaType": _texts()}),
        st.fixed_dictionaries({"raw": _texts()}),
        st.fixed_dictionaries({"kind": st.sampled_from(["text", "file", "data", "x"]), "text": _texts()}),
        _json(),
    )
    return st.lists(part, max_size=3)


def _messages() -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {},
        optional={
            "messageId": _texts(),
            "role": st.sampled_from(["ROLE_USER", "ROLE_AGENT", "user", "agent", "ROLE_UNSPECIFIED", "x", 7]),
            "parts": _parts(),
            "contextId": _texts(),
            "taskId": _texts(),
            "metadata": _json(),
            "kind": st.sampled_from(["message", "task", "x"]),
        },
    )


def _params() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries(
            {"message": _messages()},
            optional={"configuration": _json(), "metadata": _json()},
        ),
        st.fixed_dictionaries(
            {"id": _texts()}, optional={"historyLength": st.integers(-5, 10**6), "name": _texts()}
        ),
        _json(),
    )


@st.composite
def _jsonrpc(draw: st.DrawFn) -> tuple[bytes, bool]:
    method = draw(st.one_of(st.sampled_from(METHODS), _texts()))
    envelope: dict[str, Any] = {
        "jsonrpc": draw(st.sampled_from(["2.0", "2.0", "1.0", ""])),
        "id": draw(st.one_of(st.integers(), _texts(), st.none())),
        "method": method,
    }
    if draw(st.booleans()):
        envelope["params"] = draw(_params())
    value: Any = envelope if draw(st.integers(0, 9)) else draw(st.lists(st.just(envelope), max_size=2))
    return json.dumps(value).encode(), method in STREAMING


@st.composite
def http_requests(draw: st.DrawFn, targets: tuple[str, ...] = ("analyst", "analysis")) -> HttpRequest:
    """One request to the bridge (see the module docstring)."""
    root = draw(st.sampled_from([f"/agents/{t}" for t in targets] + ["", "/agents/nobody"]))
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["A2A-Version"] = draw(st.sampled_from(["1.0", "0.3", "0.3.0", "2", "", "junk"]))
    # Mostly JSON, so that most requests get past the body check to the A2A handlers.
    content_types = ["application/json"] * 6 + ["text/plain", "application/x-www-form-urlencoded", ""]
    headers["Content-Type"] = draw(st.sampled_from(content_types))
    for name, value in draw(
        st.dictionaries(st.from_regex(r"X-[A-Za-z]{1,8}", fullmatch=True), _texts(), max_size=2)
    ).items():
        if value and value == value.strip() and value.isprintable() and value.isascii():
            headers[name] = value
    shape = draw(st.sampled_from(["jsonrpc", "jsonrpc", "rest", "rest", "raw"]))
    if shape == "jsonrpc":
        body, streaming = draw(_jsonrpc())
        return HttpRequest("POST", root + "/", headers, body, streaming)
    if shape == "rest":
        task = draw(st.sampled_from(["task-1", "0" * 36, "%00", "..", "a" * 200]))
        method, tail, streaming = draw(
            st.sampled_from(
                [
                    ("POST", "/message:send", False),
                    ("POST", "/message:stream", True),
                    ("GET", f"/tasks/{task}", False),
                    ("GET", "/tasks", False),
                    ("POST", f"/tasks/{task}:cancel", False),
                    ("GET", f"/tasks/{task}:subscribe", True),
                    ("POST", f"/tasks/{task}/pushNotificationConfigs", False),
                    ("GET", f"/tasks/{task}/pushNotificationConfigs", False),
                    ("DELETE", f"/tasks/{task}/pushNotificationConfigs/x", False),
                    ("GET", "/.well-known/agent-card.json", False),
                    ("PUT", "/message:send", False),
                ]
            )
        )
        body = json.dumps(draw(_params())).encode() if method in ("POST", "PUT") else b""
        return HttpRequest(method, root + tail, headers, body, streaming)
    body = draw(
        st.one_of(st.binary(max_size=64), st.just(b"\xff\xfe{"), st.just(b""), st.just(b'{"jsonrpc": "2.0"'))
    )
    return HttpRequest("POST", root + "/", headers, body, False)
