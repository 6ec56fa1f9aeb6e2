"""What a failed turn tells its caller: an exception mapped to a gRPC status and one line.

Model providers fail in ways a caller can act on (retry elsewhere, back off,
give up), so their errors get precise codes. Both model kinds that reach a
network, `openai:` and `dashscope:`, go through the `openai` SDK (AgentScope's
DashScope model uses its OpenAI-compatible endpoint), so its exception types
are the ones to know.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import grpc

from meshscope.discovery.addresses import bracketed
from meshscope.services.runtime.errors import MeshError, ModelFailure
from meshscope.services.runtime.models.scripted import ScriptedModelError


@dataclass(frozen=True, slots=True)
class Failure:
    """A turn's failure as the caller sees it."""

    error: MeshError
    expected: bool
    """An operational failure (provider down, timeout, requested by the scripted model):
    worth one log line. Anything else is a bug, worth its traceback in the server log."""


def _model_failure(
    message: str, code: grpc.StatusCode = grpc.StatusCode.INTERNAL, *, retryable: bool = False
) -> ModelFailure:
    error = ModelFailure(message)
    error.code = code
    error.retryable = retryable
    return error


def _endpoint(exc: BaseException) -> str:
    """Where the provider call went, when the SDK says (it does for connection errors).

    Scheme, host, port and path only: user info or a key in the query string must
    not reach the caller.
    """
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    if url is None:
        return ""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    shown = bracketed(host)
    if parts.port is not None:
        shown = f"{shown}:{parts.port}"
    return f" at {urlunsplit((parts.scheme, shown, parts.path, '', ''))}"


def _provider_failure(exc: BaseException, agent: str) -> ModelFailure | None:
    # Only look when the SDK is loaded: if it is not, none of its errors can exist.
    openai = sys.modules.get("openai")
    if openai is None or not isinstance(exc, openai.APIError):
        return None
    if isinstance(exc, openai.APITimeoutError):
        return _model_failure(
            f"agent {agent!r}: model call{_endpoint(exc)} timed out", grpc.StatusCode.DEADLINE_EXCEEDED
        )
    if isinstance(exc, openai.APIConnectionError):
        return _model_failure(
            f"agent {agent!r}: model unreachable{_endpoint(exc)}: {exc}",
            grpc.StatusCode.UNAVAILABLE,
            retryable=True,
        )
    if isinstance(exc, openai.RateLimitError):
        return _model_failure(
            f"agent {agent!r}: the model provider is rate-limiting calls: {exc.message}",
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            retryable=True,
        )
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500 or exc.status_code in (408, 409):  # what the SDK itself retries
            return _model_failure(
                f"agent {agent!r}: the model provider failed ({exc.status_code}): {exc.message}",
                grpc.StatusCode.UNAVAILABLE,
                retryable=True,
            )
        # 4xx: the provider refused what this service sent (key, model name, request):
        # the service's configuration is at fault, not the caller.
        return _model_failure(
            f"agent {agent!r}: the model provider refused the call ({exc.status_code}): {exc.message}"
        )
    return _model_failure(f"agent {agent!r}: model call failed: {exc}")


def classify(exc: BaseException, agent: str) -> Failure:
    """The status and message a caller gets for `exc`, raised while `agent` ran a turn."""
    if isinstance(exc, MeshError):
        return Failure(exc, expected=True)
    provider = _provider_failure(exc, agent)
    if provider is not None:
        return Failure(provider, expected=True)
    if isinstance(exc, TimeoutError):
        return Failure(
            _model_failure(f"agent {agent!r}: model call timed out", grpc.StatusCode.DEADLINE_EXCEEDED),
            expected=True,
        )
    if isinstance(exc, ConnectionError):
        return Failure(
            _model_failure(
                f"agent {agent!r}: model unreachable: {exc}", grpc.StatusCode.UNAVAILABLE, retryable=True
            ),
            expected=True,
        )
    if isinstance(exc, ScriptedModelError):
        return Failure(_model_failure(f"agent {agent!r} failed: {exc}"), expected=True)
    return Failure(_model_failure(f"agent {agent!r} failed: {type(exc).__name__}: {exc}"), expected=False)
