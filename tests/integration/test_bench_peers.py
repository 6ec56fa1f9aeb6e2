"""The peers benchmark's load generator checks every response: a wrong one fails the run.

Real servers, real streams: the raw gRPC echo and relay in-process, the a2a-sdk and AgentScope
Runtime peers as the processes the bench starts (the latter only where `make peers-venv` has
built its virtualenv), and a real small run of `python -m bench.peers --quick`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest

from bench.echo_text import FAULTS
from bench.peers import tiny_pb2_grpc
from bench.peers.checks import EXPECTED, BadResponse
from bench.peers.clients import A2aClient, AgentAppClient, Timing, TinyClient, TurnClient
from bench.peers.measure import turn
from bench.peers.raw_grpc import TinyEchoServicer, TinyRelayServicer
from bench.peers.systems import PEERS_VENV, SPECS, System
from bench.processes import ServerProcess, child_env, start_server
from meshscope.cli.launch import launch
from meshscope.testing import free_port
from tests.support import REPO

pytestmark = pytest.mark.integration

WRONG = {
    "short": f"19 text deltas, expected {len(EXPECTED)}",
    "wrong-text": f"delta 20 is ' and something else', expected {EXPECTED[-1]!r}",
    "no-end": "the stream ended without its terminal (completed) event",
}
"""The one-line reason `check_reply` gives for each fault the peers can inject."""

StartTiny = Callable[..., Awaitable[str]]


@pytest.fixture
async def start_tiny() -> AsyncIterator[StartTiny]:
    """Start raw TinyEcho servers in this process on 127.0.0.1:0: an echo, or a relay to `upstream`."""
    servers: list[grpc.aio.Server] = []

    async def start(*, fault: str = "none", upstream: str = "") -> str:
        server = grpc.aio.server()
        servicer = TinyRelayServicer(upstream) if upstream else TinyEchoServicer(fault)
        tiny_pb2_grpc.add_TinyEchoServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        await server.stop(0)


async def one_turn(client: TurnClient) -> Timing:
    try:
        return await client.turn("bench-check")
    finally:
        await client.close()


def assert_timed(timing: Timing) -> None:
    assert 0 < timing.first_s <= timing.last_s <= timing.end_s


async def test_a_right_raw_reply_passes_on_one_hop_and_through_the_relay(start_tiny: StartTiny) -> None:
    echo = await start_tiny()
    relay = await start_tiny(upstream=echo)
    assert_timed(await one_turn(TinyClient("raw-1hop", echo)))
    assert_timed(await one_turn(TinyClient("raw-2hop", relay)))


@pytest.mark.parametrize("fault", sorted(WRONG))
async def test_a_wrong_raw_reply_fails_its_turn_with_what_was_wrong(
    start_tiny: StartTiny, fault: str
) -> None:
    echo = await start_tiny(fault=fault)
    relay = await start_tiny(upstream=echo)
    with pytest.raises(BadResponse) as caught:
        await one_turn(TinyClient("raw-2hop", relay))
    assert str(caught.value) == f"raw-2hop: {WRONG[fault]}"


async def test_a_failed_call_stops_the_run_as_a_bad_response_naming_the_system() -> None:
    client = TinyClient("raw-1hop", f"127.0.0.1:{free_port()}")  # nothing listens there
    try:
        with pytest.raises(BadResponse, match=r"^raw-1hop: the call failed: UNAVAILABLE: "):
            await turn(System(SPECS["raw-1hop"], [], client), "bench-check")
    finally:
        await client.close()


def test_every_fault_has_its_reason() -> None:
    assert set(WRONG) == set(FAULTS) - {"none"}


@pytest.fixture
def processes() -> Iterator[Callable[[ServerProcess], ServerProcess]]:
    """Keep started server processes; stop them all after the test."""
    with ExitStack() as stack:

        def keep(server: ServerProcess) -> ServerProcess:
            stack.callback(server.stop)
            return server

        yield keep


async def test_the_a2a_peer_passes_right_and_fails_wrong_replies(
    processes: Callable[[ServerProcess], ServerProcess],
) -> None:
    faults = ("none", "wrong-text", "no-end")
    started = await asyncio.gather(
        *(
            asyncio.to_thread(start_server, "a2a-sdk", ["-m", "bench.peers.a2a_echo", "--fault", f])
            for f in faults
        )
    )
    right, *wrong = (processes(server) for server in started)
    assert_timed(await one_turn(A2aClient("a2a-sdk", right.address, 1)))
    for fault, server in zip(faults[1:], wrong, strict=True):
        with pytest.raises(BadResponse) as caught:
            await one_turn(A2aClient("a2a-sdk", server.address, 1))
        assert str(caught.value) == f"a2a-sdk: {WRONG[fault]}"


@pytest.mark.skipif(not (PEERS_VENV / ".installed").exists(), reason="no .build/peers-venv (make peers-venv)")
async def test_the_agentscope_runtime_peer_passes_right_and_fails_wrong_replies(
    processes: Callable[[ServerProcess], ServerProcess],
) -> None:
    app = [str(PEERS_VENV / "bin" / "python"), str(REPO / "bench" / "peers" / "agentscope_runtime_app.py")]

    def start(fault: str) -> ServerProcess:
        command = [*app, "--fault", fault]
        return ServerProcess("agentscope-rt", launch(command, child_env(), cwd=REPO, timeout=90))

    # Two processes only: the app takes seconds to import. The other faults end the same way
    # on every peer (check_reply), shown above on the raw and a2a peers.
    started = await asyncio.gather(*(asyncio.to_thread(start, f) for f in ("none", "wrong-text")))
    right, wrong = (processes(server) for server in started)
    assert_timed(await one_turn(AgentAppClient("agentscope-rt", right.address, 1)))
    with pytest.raises(BadResponse) as caught:
        await one_turn(AgentAppClient("agentscope-rt", wrong.address, 1))
    assert str(caught.value) == f"agentscope-rt: {WRONG['wrong-text']}"


def run_bench(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bench.peers", "--quick", "--out", str(out), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=110, check=False)


def test_a_real_small_run_writes_its_figures(tmp_path: Path) -> None:
    done = run_bench(tmp_path, "--systems", "raw-1hop,raw-2hop")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "peers.json").read_text())
    assert set(results["medians"]) == {"raw-1hop", "raw-2hop"}
    assert results["medians"]["raw-2hop"]["turns_per_s"] > 0
    assert set(results["medians"]["raw-2hop"]["rss_mib"]) == {"raw relay", "raw echo"}
    assert "| raw grpc.aio, 2-hop relay |" in (tmp_path / "peers.md").read_text()
    assert (tmp_path / "peers.png").read_bytes().startswith(b"\x89PNG")


def test_a_real_small_run_fails_on_a_wrong_response(tmp_path: Path) -> None:
    done = run_bench(tmp_path, "--systems", "raw-1hop,raw-2hop", "--raw-fault", "short")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"bench: FAILED, a wrong response: raw-1hop: {WRONG['short']}" in done.stdout
    assert not (tmp_path / "peers.json").exists()
