"""meshscope.testing without servers: polling helpers (what they return, what they say at the
deadline), free ports, the child environment."""

from __future__ import annotations

import itertools
import socket

import pytest

from meshscope.testing import child_env, eventually, free_port, free_ports, wait_for, wait_until


async def test_wait_for_returns_the_first_value_that_meets_the_condition() -> None:
    counter = itertools.count()

    async def probe() -> int:
        return next(counter)

    assert await wait_for(probe, lambda n: n >= 3, timeout=5, interval=0) == 3


async def test_wait_for_fails_at_the_deadline_with_the_last_value() -> None:
    seen: list[int] = []
    counter = itertools.count()

    async def probe() -> int:
        seen.append(next(counter))
        return seen[-1]

    with pytest.raises(AssertionError) as failure:
        await wait_for(probe, lambda n: n < 0, timeout=0.05, interval=0.001)
    assert len(seen) > 1
    assert str(failure.value) == f"condition not met within 0.05s; last value: {seen[-1]}"


async def test_eventually_retries_a_failing_assert_and_returns_what_the_check_returned() -> None:
    counter = itertools.count()

    async def check() -> str:
        n = next(counter)
        assert n == 4, f"n is {n}"
        return f"done at {n}"

    assert await eventually(check, timeout=5, interval=0) == "done at 4"


async def test_eventually_raises_the_last_assertion_error_at_the_deadline() -> None:
    counter = itertools.count()
    last: list[int] = []

    async def check() -> None:
        last.append(next(counter))
        assert last[-1] < 0, f"attempt {last[-1]} failed"

    with pytest.raises(AssertionError) as failure:
        await eventually(check, timeout=0.05, interval=0.001)
    assert len(last) > 1
    assert str(failure.value).splitlines()[0] == f"attempt {last[-1]} failed"  # pytest adds the explanation
    assert failure.value.__notes__ == ["still failing after 0.05s"]


async def test_eventually_does_not_retry_other_exceptions() -> None:
    calls = itertools.count()

    async def check() -> None:
        next(calls)
        raise KeyError("not an assertion")

    with pytest.raises(KeyError):
        await eventually(check, timeout=5)
    assert next(calls) == 1


def test_wait_until_returns_the_seconds_it_took_and_fails_at_the_deadline() -> None:
    counter = itertools.count()
    took = wait_until(lambda: next(counter) >= 2, interval=0.01)
    assert took >= 0.02
    with pytest.raises(AssertionError, match=r"^condition not met within 0.05s$"):
        wait_until(lambda: False, timeout=0.05)


def test_free_port_can_be_bound_at_once() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        assert s.getsockname()[1] == port


def test_free_ports_are_distinct_and_free_for_tcp_and_udp() -> None:
    for _ in range(50):  # one at a time, the kernel may hand the same port out twice
        ports = free_ports(4, udp=True)
        assert len(set(ports)) == 4
    for port in ports:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", port))
            udp.bind(("127.0.0.1", port))


def test_child_env_drops_host_settings_and_puts_extra_on_top(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host")
    monkeypatch.setenv("MESHSCOPE_MODEL", "openai:gpt-host")
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "127.0.0.1:8500")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("KEPT_VARIABLE", "kept")
    env = child_env({"MESHSCOPE_DISCOVERY": "consul", "MESHSCOPE_MODEL": "scripted"})
    assert "OPENAI_API_KEY" not in env
    assert "CONSUL_HTTP_ADDR" not in env
    assert "REDIS_URL" not in env  # the host's Redis: sessions stay in memory unless a test names one
    assert child_env({"REDIS_URL": "redis://127.0.0.1:1/0"})["REDIS_URL"] == "redis://127.0.0.1:1/0"
    assert env["KEPT_VARIABLE"] == "kept"
    assert env["MESHSCOPE_MODEL"] == "scripted"
    assert env["MESHSCOPE_DISCOVERY"] == "consul"
    assert env["MESHSCOPE_SHUTDOWN_PAUSE_S"] == "0"
    assert child_env()["MESHSCOPE_DISCOVERY"] == "static"
