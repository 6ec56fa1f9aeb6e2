"""The bridge's edge: request body size, API keys, per-key rate limits, push-notification URLs.

One pure ASGI middleware (`Guard`) in front of every route, in this order:

1. **API keys** — when MESHSCOPE_BRIDGE_API_KEYS is set, every request but a card (`GET
   .../.well-known/agent-card.json`, public so clients can learn how to authenticate) and `GET
   /healthz` needs a key, as `Authorization: Bearer <key>` or `X-API-Key: <key>`; none or a
   wrong one is 401 with `WWW-Authenticate: Bearer`. The key's name becomes the request's user (Starlette's
   `scope["user"]`), which a2a-sdk uses as the owner of the tasks it creates: one key never
   sees another's tasks. Keys are compared in constant time (`hmac.compare_digest`).
2. **Rate limit** — MESHSCOPE_BRIDGE_RATE_LIMIT per key (per client address when the bridge is
   open), a moving window kept by the `limits` library in memory or, with REDIS_URL, in Redis so
   that every bridge replica counts against one budget; over it is 429 with `Retry-After`.
3. **Body size and type** — a body over MESHSCOPE_BRIDGE_MAX_BODY_BYTES (by its Content-Length,
   or as it arrives) is refused with 413 before any of it is parsed, a body that is not JSON
   (`application/json` or `application/a2a+json`) with 415, and one that is not UTF-8 with 400
   (JSON-RPC: -32700, parse error). The body is read here, bounded, and
   handed on whole, so no handler ever sees half of one.

Refusals are HTTP statuses (401, 413, 415, 429) with a JSON body: on the JSON-RPC endpoints a
JSON-RPC error (-32600 invalid request, id null since the request was not read, the HTTP status in
`data`), elsewhere A2A's HTTP+JSON error shape (`{"error": {"code", "status", "message"}}`).

`PushUrlPolicy` screens push-notification URLs (a2a-sdk calls it when a client registers one and
before each delivery): http(s) only; the host in MESHSCOPE_BRIDGE_PUSH_ALLOWED_HOSTS when that is
set; and, unless MESHSCOPE_BRIDGE_PUSH_ALLOW_PRIVATE, a host resolving only to public addresses
(a2a-sdk's own `validate_push_notification_url`: no loopback, private, link-local or metadata
addresses), so a client cannot make the bridge call into the network it runs in.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import time
import urllib.parse
from collections.abc import Mapping

from a2a.utils.push_url_validator import validate_push_notification_url
from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.authentication import SimpleUser, UnauthenticatedUser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meshscope.orchestrator.bridge.cards import API_KEY_HEADER

__all__ = ["Guard", "PushUrlPolicy", "RateLimit", "refuse"]

log = logging.getLogger(__name__)

CARD_SUFFIX = "/.well-known/agent-card.json"
HEALTH_PATH = "/healthz"
"""Answers 200 once the bridge serves; public like the cards (it tells nothing else)."""
JSON_MEDIA_TYPES = (b"application/json", b"application/a2a+json")
"""What A2A's JSON-RPC and HTTP+JSON bindings send; another type is 415 before the body is read."""
_API_KEY_HEADER = API_KEY_HEADER.lower().encode()


class RateLimit:
    """One rate per key, in a shared `limits` storage (see the module docstring)."""

    def __init__(self, rate: str, storage: Storage) -> None:
        self.item: RateLimitItem = parse(rate)
        self._limiter = MovingWindowRateLimiter(storage)

    async def retry_after(self, key: str) -> int | None:
        """Count one request of `key`: None when allowed, else the whole seconds until one is."""
        if await self._limiter.hit(self.item, key):
            return None
        stats = await self._limiter.get_window_stats(self.item, key)
        return max(1, math.ceil(stats.reset_time - time.time()))


def _is_jsonrpc(scope: Scope) -> bool:
    """JSON-RPC endpoints are the POSTs to a target's root (`/` or `/agents/<name>/`)."""
    path = str(scope["path"])
    return scope["method"] == "POST" and (
        path == "/" or (path.startswith("/agents/") and path.count("/") == 3 and path.endswith("/"))
    )


async def refuse(
    scope: Scope,
    send: Send,
    status: int,
    name: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    jsonrpc_code: int = -32600,
) -> None:
    """An HTTP-level refusal: JSON-RPC's error shape on JSON-RPC endpoints (`jsonrpc_code`, -32600
    by default, id null: the request was not read), A2A's HTTP+JSON error shape elsewhere."""
    payload: dict[str, object]
    if _is_jsonrpc(scope):
        payload = {
            "jsonrpc": "2.0",
            "id": None,
            "error": {
                "code": jsonrpc_code,
                "message": message,
                "data": {"httpStatus": status, "status": name},
            },
        }
    else:
        payload = {"error": {"code": status, "status": name, "message": message}}
    body = json.dumps(payload).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


class Guard:
    """Body size, API keys and the rate limit, in front of the bridge's routes (module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        api_keys: Mapping[str, str],
        rate_limit: RateLimit | None,
    ) -> None:
        self.app = app
        self._max = max_body_bytes
        self._keys = {key.encode(): name for key, name in api_keys.items()}
        self._rate_limit = rate_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        user = self._user(scope, headers)
        if user is None:
            await refuse(
                scope, send, 401, "UNAUTHENTICATED",
                f"an API key is required: Authorization: Bearer <key> or {API_KEY_HEADER}: <key>",
                {"WWW-Authenticate": 'Bearer realm="meshscope"'},
            )  # fmt: skip
            return
        scope["user"] = user
        if self._rate_limit is not None and not self._is_public(scope):
            client = scope.get("client")
            key = user.username if isinstance(user, SimpleUser) else f"addr:{client[0] if client else '-'}"
            try:
                wait = await self._rate_limit.retry_after(key)
            except Exception as exc:  # the storage (Redis) failed: not this request's fault, nor ours
                log.warning("rate-limit storage unavailable: %s: %s", type(exc).__name__, exc)
                await refuse(
                    scope, send, 503, "UNAVAILABLE", "the rate-limit storage is unavailable; try again"
                )
                return
            if wait is not None:
                await refuse(
                    scope, send, 429, "RESOURCE_EXHAUSTED",
                    f"rate limit of {self._rate_limit.item} exceeded; retry in {wait} s",
                    {"Retry-After": str(wait)},
                )  # fmt: skip
                return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            media_type = headers.get(b"content-type", b"").partition(b";")[0].strip().lower()
            try:
                body = await self._read_body(headers, receive)
            except _BodyTooLarge:
                await refuse(
                    scope, send, 413, "INVALID_ARGUMENT", f"the request body is larger than {self._max} bytes"
                )
                return
            if body and media_type not in JSON_MEDIA_TYPES:
                await refuse(
                    scope, send, 415, "INVALID_ARGUMENT",
                    "the body must be JSON (Content-Type: application/json), not "
                    + (media_type.decode(errors="replace") or "untyped"),
                )  # fmt: skip
                return
            if body and not _utf8_json(body):
                await refuse(
                    scope, send, 400, "INVALID_ARGUMENT", "the body is not UTF-8: JSON must be (RFC 8259)",
                    jsonrpc_code=-32700,
                )  # fmt: skip
                return
            mixed = _v03_method_with_another_version(scope, headers, body)
            if mixed is not None:
                await refuse(scope, send, 400, "INVALID_ARGUMENT", mixed)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    @staticmethod
    def _is_public(scope: Scope) -> bool:
        path = str(scope["path"])
        return scope["method"] in ("GET", "HEAD") and (path.endswith(CARD_SUFFIX) or path == HEALTH_PATH)

    def _user(self, scope: Scope, headers: Mapping[bytes, bytes]) -> SimpleUser | UnauthenticatedUser | None:
        """The caller, or None when a key is needed and not given (cards never need one)."""
        if not self._keys:
            return UnauthenticatedUser()
        presented = headers.get(_API_KEY_HEADER)
        if presented is None:
            scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
            presented = token.strip() if scheme.lower() == b"bearer" else None
        if presented:
            for key, name in self._keys.items():
                if hmac.compare_digest(presented, key):
                    return SimpleUser(name)
        return UnauthenticatedUser() if self._is_public(scope) else None

    async def _read_body(self, headers: Mapping[bytes, bytes], receive: Receive) -> bytes:
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max:
            raise _BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


_V03_PREFIXES = (b'"message/', b'"tasks/', b'"agent/')


def _v03_method_with_another_version(scope: Scope, headers: Mapping[bytes, bytes], body: bytes) -> str | None:
    """Why a JSON-RPC call of an A2A 0.3 method that declares another protocol version is refused
    (None: it is not one). a2a-sdk 1.3.0 answers it -32603, an internal error, because 0.3 has no
    "version not supported" code (found by `make fuzz`); it is the caller's contradiction, so it is
    refused here as an invalid request (-32600), a code 0.3 clients know. Only bodies that name a
    0.3-style method (`message/send`, `tasks/get`, ...) under a non-0.3 `A2A-Version` are parsed."""
    version = headers.get(b"a2a-version", b"").strip()
    if not version or version.startswith(b"0.3") or not _is_jsonrpc(scope):
        return None  # no version (a 0.3 client's way), or 0.3's
    if not any(prefix in body for prefix in _V03_PREFIXES):
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None  # a2a-sdk answers it: -32700
    calls = parsed if isinstance(parsed, list) else [parsed]
    for call in calls:
        method = call.get("method") if isinstance(call, dict) else None
        if isinstance(method, str) and "/" in method:
            shown = version.decode("latin-1")
            return (
                f"method {method!r} is A2A 0.3's, but the request says A2A-Version {shown!r}: "
                "send 0.3, or a 1.0 method"
            )
    return None


def _utf8_json(body: bytes) -> bool:
    """Whether `body` is UTF-8 that `json.loads` will read as UTF-8. Given bytes, `json.loads` guesses
    UTF-16 or UTF-32 from NUL bytes among the first four, and its decode error then escapes
    a2a-sdk's parse-error handling as an internal error (-32603, with a traceback)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return json.detect_encoding(body) in ("utf-8", "utf-8-sig")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the read body once, then passes on (disconnects) from the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class PushUrlPolicy:
    """Which push-notification URLs the bridge will call (see the module docstring)."""

    def __init__(self, allowed_hosts: tuple[str, ...], allow_private: bool) -> None:
        self._allowed = allowed_hosts
        self._allow_private = allow_private

    def _host_allowed(self, host: str) -> bool:
        if not self._allowed:
            return True
        for pattern in self._allowed:
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]):
                    return True
            elif host == pattern:
                return True
        return False

    async def __call__(self, url: str) -> bool:
        try:
            parsed = urllib.parse.urlparse(url)
            host = (parsed.hostname or "").lower()
            parsed.port  # noqa: B018 — raises ValueError on a bad port
        except ValueError:
            return False
        if parsed.scheme not in ("http", "https") or not host or not self._host_allowed(host):
            log.info("push URL refused: %r", url)
            return False
        if self._allow_private:
            return True
        return await validate_push_notification_url(url)
