"""Mapping failures to what a caller sees, and the limits checked before anything is sent."""

from __future__ import annotations

import math

import grpc
import httpx2
import openai
import pytest
from agentscope.event import TextBlockDeltaEvent

from meshscope.cli.runs import run
from meshscope.discovery.consul_client import duration
from meshscope.services.runtime.errors import EventTooLarge
from meshscope.services.runtime.events import EventEncoder
from meshscope.services.runtime.failures import classify


def test_a_provider_url_reaches_the_caller_without_credentials() -> None:
    request = httpx2.Request("POST", "http://ann:secret@[::1]:9/v1/chat/completions?api-key=k123")
    failure = classify(openai.APIConnectionError(request=request), "analyst")
    assert failure.expected
    assert failure.error.code == grpc.StatusCode.UNAVAILABLE and failure.error.retryable
    assert "model unreachable at http://[::1]:9/v1/chat/completions:" in failure.error.message
    assert "secret" not in failure.error.message and "k123" not in failure.error.message


def test_provider_timeouts_are_deadline_exceeded_not_unreachable() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    failure = classify(openai.APITimeoutError(request=request), "analyst")
    assert failure.error.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_an_unexpected_exception_is_internal_and_not_expected() -> None:
    failure = classify(KeyError("x"), "analyst")
    assert failure.error.code == grpc.StatusCode.INTERNAL
    assert not failure.expected


def test_a_delta_of_multibyte_characters_over_the_limit_is_caught() -> None:
    encoder = EventEncoder("analyst", max_bytes=4096)
    with pytest.raises(EventTooLarge, match="text_delta event is 6"):
        encoder.encode(TextBlockDeltaEvent(reply_id="r", block_id="b", delta="€" * 2000))  # 6000 bytes
    assert encoder.sent == 0  # nothing was numbered for the event that was never sent


def test_a_short_delta_naming_a_long_block_over_the_limit_is_caught() -> None:
    """A short delta is measured too when it names its reply or block (those have no bound)."""
    encoder = EventEncoder("analyst", max_bytes=256)
    with pytest.raises(EventTooLarge, match="text_delta event is 3") as refused:
        encoder.encode(TextBlockDeltaEvent(reply_id="r", block_id="b" * 300, delta="hi"))
    error = encoder.error(refused.value)
    assert (error.sequence, error.agent) == (1, "analyst")  # named: the refused event never told it


def test_consul_durations_never_use_an_exponent() -> None:
    assert duration(1) == "1000ms"
    assert duration(0.25) == "250ms"
    assert duration(1_500_000) == "1500000000ms"  # two weeks and more: Go's ParseDuration takes no "1.5e+06s"


@pytest.mark.parametrize("timeout", [math.nan, math.inf, -1.0, 1e15])
def test_meshscope_run_refuses_an_impossible_timeout(
    timeout: float, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("analysis", "x", "", "", timeout) == 2
    assert "meshscope: --timeout must be between 0 and" in capsys.readouterr().err
