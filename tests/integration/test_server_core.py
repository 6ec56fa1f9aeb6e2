"""The server core every meshscope server is built on: its lifecycle, on real gRPC servers."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest

from meshscope.server import Server
from meshscope.serving import ServeSettings
from meshscope.testing import health_status, wait_for
from tests.support import start_orchestrator

pytestmark = pytest.mark.integration


def settings(**overrides: object) -> ServeSettings:
    return ServeSettings(port=0, shutdown_pause_s=0, shutdown_grace_s=1).with_overrides(**overrides)


async def test_stop_is_idempotent_and_concurrent_callers_share_one_shutdown() -> None:
    server = Server(settings(), [], what="test")
    drains = []

    async def before_drain() -> None:
        drains.append(await health_status(server.address))  # NOT_SERVING before the hook runs
        await asyncio.sleep(0.2)  # slow enough for the second caller to arrive during it

    server.add_before_drain(before_drain)
    await server.start()
    assert await health_status(server.address) == "SERVING"
    await asyncio.gather(server.stop(), server.stop())
    await server.stop()
    assert drains == ["NOT_SERVING"]
    assert await health_status(server.address, timeout=1) == "UNAVAILABLE"


async def test_async_with_serves_inside_and_stops_on_leaving() -> None:
    async with Server(settings(), [], what="test", health_names=["extra"]) as server:
        assert server.port > 0
        assert await health_status(server.address, "extra") == "SERVING"
        assert await health_status(server.address, "unknown") == "NOT_FOUND"
    assert await health_status(server.address, timeout=1) == "UNAVAILABLE"


async def test_it_binds_ipv6_loopback() -> None:
    async with Server(settings(host="::1"), [], what="test") as server:
        assert server.address.startswith("[::1]:")
        assert await health_status(server.address) == "SERVING"


async def test_a_failing_hook_or_closer_is_logged_with_its_traceback_and_the_shutdown_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Server(settings(), [], what="test")
    closed = []

    async def broken() -> None:
        raise RuntimeError("broken on purpose")

    async def close() -> None:
        closed.append(True)

    server.add_before_drain(broken)
    server.add_closer(broken)
    server.add_closer(close)
    await server.start()
    with caplog.at_level(logging.WARNING, logger="meshscope.server"):
        await server.stop()
    assert closed == [True]
    failures = [r for r in caplog.records if r.exc_info and "broken on purpose" in str(r.exc_info[1])]
    assert [r.levelname for r in failures] == ["WARNING", "ERROR"]
    assert "before-drain hook failed" in failures[0].getMessage()
    assert "closing failed" in failures[1].getMessage()


async def test_an_open_server_reachable_from_elsewhere_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="meshscope.server"):
        async with Server(settings(), [], what="loopback"):
            pass
        async with Server(settings(host="0.0.0.0"), [], what="everywhere"):
            pass
    warned = [r.getMessage() for r in caplog.records if "without TLS or a mesh token" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("everywhere serves 0.0.0.0:"), warned


async def test_run_serves_until_sigterm_then_shuts_down_gracefully() -> None:
    server = Server(settings(), [], what="test")
    lines: list[str] = []
    started = []

    async def on_started() -> None:
        started.append(await health_status(server.address))

    running = asyncio.create_task(server.run(announce=lines.append, on_started=on_started))
    await wait_for(lambda: asyncio.sleep(0, lines), lambda seen: len(seen) == 1, timeout=10)
    assert lines == [f"meshscope: serving test on {server.address}"]
    assert started == ["SERVING"]
    os.kill(os.getpid(), signal.SIGTERM)  # handled by run(): a graceful stop, not the default exit
    await asyncio.wait_for(running, 10)
    assert lines[1] == "meshscope: shutting down test (draining in-flight calls)"
    assert await health_status(server.address, timeout=1) == "UNAVAILABLE"


def test_the_orchestrator_process_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    """The same signal handling as the agent services' (tests/integration/test_shutdown.py)."""
    orchestrator = start_orchestrator(tmp_path / "mesh.yaml", "agents: [analyst]\n", {})
    orchestrator.terminate()
    assert orchestrator.proc.wait(timeout=30) == 0
    assert any("meshscope: shutting down orchestrator" in line for line in orchestrator.log)
