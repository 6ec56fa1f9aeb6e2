"""meshscope.testing's dev servers and fault proxy, with the real binaries and sockets."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from meshscope.testing import ConsulDevAgent, DevServerError, FaultProxy, RedisDevServer
from meshscope.testing.consul import consul_binary

pytestmark = pytest.mark.integration


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _fake_consul(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, script: str) -> ConsulDevAgent:
    """A ConsulDevAgent whose binary is the shell `script` (folder: tmp_path/consul-dir)."""
    fake = tmp_path / "consul"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("MESHSCOPE_CONSUL_BIN", str(fake))
    return ConsulDevAgent(tmp_path / "consul-dir")


def test_a_redis_without_a_folder_makes_one_and_removes_it_when_closed() -> None:
    with RedisDevServer() as redis:
        assert redis.proc is not None
        pid, workdir = redis.proc.pid, redis.workdir
        assert redis.ping()
        assert (workdir / "redis-server-1.log").exists()
        assert workdir.name.startswith("meshscope-redis-server-")
    assert redis.proc is None
    assert not _alive(pid)
    assert _refused(redis.port)
    assert not workdir.exists()


def test_a_redis_keeps_the_folder_it_was_given_and_restarts_on_it(tmp_path: Path) -> None:
    redis = RedisDevServer(tmp_path / "redis")
    redis.start()
    try:
        with pytest.raises(DevServerError, match="already running"):
            redis.start()
        redis.stop()
        assert not redis.running
        assert _refused(redis.port)
        redis.stop()  # twice is fine
        redis.start()  # the same port, the same folder
        assert redis.running
        assert redis.ping()
        assert redis.starts == 2
    finally:
        redis.close()
    assert (tmp_path / "redis" / "redis-server-2.log").exists()


async def test_a_consul_in_async_with_answers_and_is_gone_afterwards() -> None:
    async with ConsulDevAgent() as consul:
        assert consul.proc is not None
        pid, workdir = consul.proc.pid, consul.workdir
        assert consul.env() == {"CONSUL_HTTP_ADDR": consul.http_addr, "MESHSCOPE_DISCOVERY": "consul"}
        assert await asyncio.to_thread(consul.passing, "nobody") == []
        assert (workdir / "consul-1.log").exists()
    assert not _alive(pid)
    assert _refused(consul.http_port)
    assert not workdir.exists()


def test_a_missing_binary_is_a_dev_server_error_and_leaves_no_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MESHSCOPE_REDIS_SERVER", str(tmp_path / "no-redis-here"))
    server = RedisDevServer()
    with (
        pytest.raises(DevServerError, match=r"^MESHSCOPE_REDIS_SERVER=.*no-redis-here: no such file$"),
        server,
    ):
        pass
    assert not server.workdir.exists()


def test_a_server_that_exits_at_once_is_reported_with_its_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    consul = _fake_consul(monkeypatch, tmp_path, "echo 'bad flag' >&2\nexit 3")
    with pytest.raises(DevServerError) as failure:
        consul.start()
    log = tmp_path / "consul-dir" / "consul-1.log"
    assert str(failure.value) == f"consul exited with 3; see {log}: bad flag"  # CI output says why
    assert log.read_text() == "bad flag\n"


def test_a_redis_whose_port_was_taken_before_it_started_moves_to_another() -> None:
    # The CI failure this came from: a free port is not a reservation, and on a busy machine
    # another process binds it between the pick and the start.
    with RedisDevServer() as first:
        server = RedisDevServer()
        server.port = first.port  # what a lost race looks like: someone else is listening there
        try:
            server.start()
            assert server.port != first.port
            assert server.ping() and first.ping()
            assert server.starts == 1  # seen taken before the launch: no failed start
            server.restart()  # a restart keeps the port it got
            assert server.ping()
        finally:
            server.close()


def test_a_consul_whose_port_was_taken_before_it_started_moves_to_another() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        consul = ConsulDevAgent()
        consul.http_port = squatter.getsockname()[1]
        try:
            consul.start()
            assert consul.http_port != squatter.getsockname()[1]
            assert consul.registered() == {}
        finally:
            consul.close()


def test_a_first_start_that_loses_a_port_race_starts_again_on_fresh_ports(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Taken between the check and the launch: the server itself says so, and exits.
    real = consul_binary()
    marker = tmp_path / "lost-once"
    consul = _fake_consul(
        monkeypatch,
        tmp_path,
        f"if [ ! -e {marker} ]; then touch {marker}; "
        f'echo "Error starting agent: listen tcp 127.0.0.1:1: bind: address already in use" >&2; exit 1; fi\n'
        f'exec {real} "$@"',
    )
    ports = consul._ports()
    try:
        consul.start()
        assert consul.starts == 2
        assert consul._ports() != ports
        assert consul.registered() == {}
        assert "address already in use" in consul.log_path(1).read_text()
    finally:
        consul.close()


def test_a_restart_whose_port_was_taken_fails_and_says_so() -> None:
    server = RedisDevServer()
    try:
        server.start()
        server.stop()
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", server.port))
            squatter.listen()
            with pytest.raises(DevServerError, match=r"(?i)already in use"):
                server.start()
    finally:
        server.close()


async def test_a_fault_proxy_forwards_both_ways_and_stops_listening_when_closed() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        async with FaultProxy("127.0.0.1", server.sockets[0].getsockname()[1]) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"ping\n")
            assert await asyncio.wait_for(reader.readline(), 5) == b"PING\n"
            writer.close()
        assert await asyncio.to_thread(_refused, proxy.port)
    finally:
        server.close()
        await server.wait_closed()


def test_a_server_that_never_answers_is_killed_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    consul = _fake_consul(monkeypatch, tmp_path, "exec sleep 60")
    with pytest.raises(DevServerError, match=r"^consul did not answer within 0.3s; see .*consul-1.log$"):
        consul.start(timeout=0.3)
    assert consul.proc is not None
    assert consul.proc.poll() is not None  # killed, and reaped
