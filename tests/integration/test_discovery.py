"""Discovery against a real Consul dev agent and real agent processes."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest

from meshscope.discovery.config import ConsulSettings, DiscoverySettings, parse_static_endpoints
from meshscope.discovery.consul_client import connect as consul_connect
from meshscope.discovery.errors import DiscoveryConfigError
from meshscope.discovery.model import AGENT_TAG, Instance
from meshscope.discovery.registrar import Registrar
from meshscope.discovery.registry import ConsulRegistry
from meshscope.discovery.watcher import ConsulWatcher, StaticWatcher
from meshscope.services.runtime.client import AgentClient
from meshscope.testing import ConsulDevAgent, wait_for
from tests.support import run_cli, start_agents

pytestmark = pytest.mark.integration


def consul_settings(consul: ConsulDevAgent, **overrides: str) -> ConsulSettings:
    return ConsulSettings.from_env({"CONSUL_HTTP_ADDR": consul.http_addr, **overrides})


async def register_once(settings: ConsulSettings, agent: str) -> None:
    """Register a replica of `agent` once, with no check and nobody to re-register it (port 1)."""
    client = consul_connect(settings)
    try:
        await client.agent.service.register(
            agent, service_id=f"{agent}@127.0.0.1:1", address="127.0.0.1", port=1, tags=[AGENT_TAG]
        )
    finally:
        await client.close()


async def passing(consul: ConsulDevAgent, agent: str) -> list[str]:
    return await asyncio.to_thread(consul.passing, agent)


async def test_an_agent_registers_and_passes_its_grpc_check_within_3s(consul: ConsulDevAgent) -> None:
    agents = start_agents(["--agents", "analyst,writer"], consul.env())
    ready = time.monotonic()  # the ready line comes right after the server starts serving
    try:

        async def both() -> tuple[list[str], list[str]]:
            return await passing(consul, "analyst"), await passing(consul, "writer")

        analyst, writer = await wait_for(both, lambda ids: all(len(i) == 1 for i in ids), timeout=3)
        elapsed = time.monotonic() - ready
        assert analyst == [f"analyst@{agents.address}"]
        assert writer == [f"writer@{agents.address}"]
        registered = consul.registered()[f"analyst@{agents.address}"]
        assert registered["Service"] == "analyst"
        assert registered["Tags"] == ["meshscope-agent"]
        assert registered["Meta"]["protocol_version"] == "1"
        assert registered["Meta"]["skills"] == "analysis"
        assert registered["Meta"]["description"].startswith("Analyses")
        checks = consul.get("/v1/health/checks/analyst")
        assert checks[0]["Type"] == "grpc"
        assert checks[0]["Status"] == "passing"
        assert elapsed < 3
    finally:
        agents.stop()


async def test_two_replicas_are_both_visible_with_their_meta(consul: ConsulDevAgent) -> None:
    first = start_agents(["--agents", "coder"], consul.env())
    second = start_agents(["--agents", "coder"], consul.env())
    watcher = ConsulWatcher(consul_settings(consul))
    await watcher.start()
    try:
        instances = await wait_for(
            lambda: _instances(watcher, "coder"), lambda found: len(found) == 2, timeout=10
        )
        assert {i.address for i in instances} == {first.address, second.address}
        assert all(i.meta["skills"] == "coding" and i.health == "passing" for i in instances)
        assert watcher.agents() == ["coder"]
    finally:
        await watcher.stop()
        first.stop()
        second.stop()


async def _instances(watcher: ConsulWatcher, agent: str) -> tuple[Instance, ...]:
    return watcher.instances(agent)


async def test_a_sigkilled_replica_leaves_the_passing_set_within_3s(consul: ConsulDevAgent) -> None:
    survivor = start_agents(["--agents", "writer"], consul.env())
    victim = start_agents(["--agents", "writer"], consul.env())
    watcher = ConsulWatcher(consul_settings(consul), agents=["writer"])
    await watcher.start()
    try:
        await wait_for(lambda: _instances(watcher, "writer"), lambda found: len(found) == 2, timeout=10)
        victim.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        remaining = await wait_for(
            lambda: _instances(watcher, "writer"), lambda found: len(found) == 1, timeout=3
        )
        assert time.monotonic() - killed < 3
        assert remaining[0].address == survivor.address
    finally:
        await watcher.stop()
        victim.stop()
        survivor.stop()


async def test_sigterm_deregisters_before_the_process_exits(consul: ConsulDevAgent) -> None:
    agents = start_agents(["--agents", "researcher"], consul.env())
    replica = f"researcher@{agents.address}"
    await wait_for(lambda: passing(consul, "researcher"), lambda ids: ids == [replica], timeout=10)
    agents.terminate()
    assert agents.proc.wait(timeout=30) == 0
    # Had it not deregistered, Consul would keep it (critical) for a minute.
    assert replica not in consul.registered()
    assert any(f"deregistered researcher ({replica})" in line for line in agents.log)
    down = next(i for i, line in enumerate(agents.log) if "deregistered researcher" in line)
    draining = next(i for i, line in enumerate(agents.log) if "meshscope.server: draining" in line)
    assert down < draining, "\n".join(agents.log)


async def test_consul_restart_re_registers_every_live_replica_and_the_watcher_recovers(
    consul: ConsulDevAgent,
) -> None:
    one = start_agents(["--agents", "analyst,writer"], consul.env())
    two = start_agents(["--agents", "analyst"], consul.env())
    watcher = ConsulWatcher(consul_settings(consul))
    await watcher.start()
    try:
        await wait_for(lambda: _instances(watcher, "analyst"), lambda found: len(found) == 2, timeout=10)
        await wait_for(lambda: _instances(watcher, "writer"), lambda found: len(found) == 1, timeout=10)
        await asyncio.to_thread(consul.stop)
        # While Consul is down the watcher keeps its last known sets.
        await wait_for(lambda: _errors(watcher), lambda errors: errors > 0, timeout=10)
        assert len(watcher.instances("analyst")) == 2
        assert len(watcher.instances("writer")) == 1
        await asyncio.to_thread(consul.start)
        restarted = time.monotonic()
        await wait_for(lambda: asyncio.to_thread(consul.registered), lambda r: len(r) == 3, timeout=5)
        assert time.monotonic() - restarted < 5
        assert any("had lost it" in line for line in one.log + two.log)
        await wait_for(lambda: passing(consul, "analyst"), lambda ids: len(ids) == 2, timeout=10)
        # The watcher follows the new Consul: a change made after the restart reaches it promptly.
        two.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        remaining = await wait_for(
            lambda: _instances(watcher, "analyst"), lambda found: len(found) == 1, timeout=5
        )
        assert remaining[0].address == one.address
        assert time.monotonic() - killed < 5
    finally:
        await watcher.stop()
        one.stop()
        two.stop()


async def _errors(watcher: ConsulWatcher) -> int:
    return watcher.errors


async def test_the_catalog_watcher_holds_its_sets_while_a_restarted_consul_is_still_empty(
    consul: ConsulDevAgent,
) -> None:
    """Catalog mode, as the orchestrator runs it. Nothing re-registers here, so the restarted
    Consul stays empty: the watcher must keep the replica for the hold, then let it go."""
    settings = consul_settings(consul, MESHSCOPE_CONSUL_RECOVER_HOLD_S="3")
    await register_once(settings, "analyst")
    watcher = ConsulWatcher(settings)
    emptied: list[float] = []
    watcher.add_listener(lambda agent, found: None if found else emptied.append(time.monotonic()))
    await watcher.start()
    try:
        await wait_for(lambda: _instances(watcher, "analyst"), lambda found: len(found) == 1, timeout=10)
        await asyncio.to_thread(consul.stop)
        await wait_for(lambda: _errors(watcher), lambda errors: errors > 0, timeout=10)
        await asyncio.to_thread(consul.start)
        await wait_for(lambda: _instances(watcher, "analyst"), lambda found: not found, timeout=15)
        assert len(emptied) == 1
        assert watcher.last_error_at is not None
        held = emptied[0] - watcher.last_error_at
        assert held >= 3, f"the empty catalog was passed on {held:.2f}s after the last error, within the hold"
    finally:
        await watcher.stop()


async def test_an_agent_serves_while_consul_is_unreachable_and_registers_once_it_appears(
    tmp_path: Path,
) -> None:
    consul = ConsulDevAgent(tmp_path)  # not started yet
    agents = start_agents(["--agents", "writer"], consul.env())
    try:
        async with AgentClient(agents.address) as client:
            reply = await client.reply("writer", "still here?")
        assert reply.text.startswith("writer:")
        retry_lines = await wait_for(
            lambda: _lines(agents.log, "unreachable"), lambda lines: len(lines) >= 1, timeout=10
        )
        assert "retrying registration in" in retry_lines[0]
        assert f"Consul at http://{consul.http_addr}" in retry_lines[0]
        await asyncio.to_thread(consul.start)
        await wait_for(lambda: passing(consul, "writer"), lambda ids: len(ids) == 1, timeout=10)
        assert len(await _lines(agents.log, "unreachable")) == 1  # once per outage, not per retry
    finally:
        agents.stop()
        consul.stop()


async def _lines(log: list[str], needle: str) -> list[str]:
    return [line for line in log if needle in line]


async def test_acl_default_deny_accepts_a_proper_token_and_refuses_without(tmp_path: Path) -> None:
    consul = ConsulDevAgent(tmp_path, acl_master_token="root-secret")
    consul.start()
    try:
        refused = start_agents(["--agents", "coder"], consul.env())
        accepted = start_agents(["--agents", "writer"], {**consul.env(), "CONSUL_HTTP_TOKEN": "root-secret"})
        try:
            await wait_for(lambda: passing(consul, "writer"), lambda ids: len(ids) == 1, timeout=10)
            denial = await wait_for(
                lambda: _lines(refused.log, "Consul refused"), lambda lines: len(lines) >= 1, timeout=10
            )
            assert "needs service:read" in denial[0] or "needs service:write on 'coder'" in denial[0]
            assert "CONSUL_HTTP_TOKEN" in denial[0]
            assert await passing(consul, "coder") == []
            # Reading without a token: Consul filters instead of refusing; the CLI says why it sees nothing.
            hidden = await asyncio.to_thread(run_cli, ["agents"], consul.env())
            assert hidden.returncode == 1
            assert "needs service:read and node:read" in hidden.stderr
            shown = await asyncio.to_thread(
                run_cli, ["agents"], {**consul.env(), "CONSUL_HTTP_TOKEN": "root-secret"}
            )
            assert shown.returncode == 0
            assert "writer@" in shown.stdout
        finally:
            refused.stop()
            accepted.stop()
        # Directly: a registration without a token is refused with the permission named.
        registry = ConsulRegistry(consul_settings(consul))
        from meshscope.discovery.model import Registration
        from meshscope.discovery.registry import RegistrationDenied

        with pytest.raises(RegistrationDenied, match="service:write on 'poet'"):
            await registry.register(Registration("poet", "poet@127.0.0.1:1", "127.0.0.1", 1))
        await registry.close()
    finally:
        consul.stop()


async def test_registrar_deregisters_on_stop(consul: ConsulDevAgent) -> None:
    from meshscope.discovery.model import Registration

    registry = ConsulRegistry(consul_settings(consul))
    registrar = Registrar(
        registry, [Registration("ghost", "ghost@127.0.0.1:9", "127.0.0.1", 9)], recheck_s=0.2
    )
    await registrar.start()
    await asyncio.wait_for(registrar.in_sync.wait(), 10)
    assert "ghost@127.0.0.1:9" in consul.registered()
    await registrar.stop()
    assert "ghost@127.0.0.1:9" not in consul.registered()


async def test_static_backend_returns_the_configured_endpoints() -> None:
    endpoints = parse_static_endpoints("analyst=127.0.0.1:50051,10.0.0.7:50051; writer=writer.mesh.svc:6000")
    watcher = StaticWatcher(endpoints)
    seen: list[str] = []
    watcher.add_listener(lambda agent, instances: seen.append(agent))
    await watcher.start()
    assert watcher.agents() == ["analyst", "writer"]
    assert [i.address for i in watcher.instances("analyst")] == ["127.0.0.1:50051", "10.0.0.7:50051"]
    assert watcher.instances("writer")[0].host == "writer.mesh.svc"
    assert watcher.instances("poet") == ()
    assert sorted(seen) == ["analyst", "writer"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MESHSCOPE_DISCOVERY": "zookeeper"},
            "MESHSCOPE_DISCOVERY='zookeeper' is not valid: expected consul, static or dns",
        ),
        (
            {"MESHSCOPE_DISCOVERY": "consul", "CONSUL_HTTP_ADDR": "localhost"},
            "CONSUL_HTTP_ADDR: 'localhost' is not host:port",
        ),
        (
            {"MESHSCOPE_DISCOVERY": "consul", "CONSUL_HTTP_ADDR": "ftp://a:1"},
            "CONSUL_HTTP_ADDR: scheme must be http or https, got 'ftp'",
        ),
        (
            {"MESHSCOPE_DISCOVERY": "consul", "CONSUL_CACERT": "/nope.pem"},
            "CONSUL_CACERT: no such file '/nope.pem'",
        ),
        (
            {"MESHSCOPE_STATIC_ENDPOINTS": "analyst"},
            "MESHSCOPE_STATIC_ENDPOINTS: 'analyst' is not agent=host:port[,host:port]",
        ),
        (
            {"MESHSCOPE_DISCOVERY": "consul", "MESHSCOPE_CONSUL_CHECK_INTERVAL_S": "0"},
            "MESHSCOPE_CONSUL_CHECK_INTERVAL_S='0' is not valid: expected seconds 0.1-2000000",
        ),
    ],
)
def test_bad_discovery_config_stops_the_process_at_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(DiscoveryConfigError) as error:
        DiscoverySettings.from_env(env)
    assert str(error.value) == message
    result = run_cli(["serve", "agents", "--agents", "writer"], env)
    assert result.returncode == 2
    assert result.stderr.strip() == f"meshscope: {message}"


async def test_meshscope_agents_lists_agents_replicas_health_and_meta(consul: ConsulDevAgent) -> None:
    first = start_agents(["--agents", "analyst,writer"], consul.env())
    second = start_agents(["--agents", "analyst"], consul.env())
    try:
        await wait_for(lambda: passing(consul, "analyst"), lambda ids: len(ids) == 2, timeout=10)
        await wait_for(lambda: passing(consul, "writer"), lambda ids: len(ids) == 1, timeout=10)
        result = await asyncio.to_thread(run_cli, ["agents"], consul.env())
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert lines[0].split()[:5] == ["AGENT", "REPLICA", "ADDRESS", "HEALTH", "SKILLS"]
        rows = [line.split()[:5] for line in lines[1:]]
        assert sorted(rows) == sorted(
            [
                ["analyst", f"analyst@{first.address}", first.address, "passing", "analysis"],
                ["analyst", f"analyst@{second.address}", second.address, "passing", "analysis"],
                ["writer", f"writer@{first.address}", first.address, "passing", "writing"],
            ]
        )
        as_json = await asyncio.to_thread(run_cli, ["agents", "--json"], consul.env())
        data = json.loads(as_json.stdout)
        assert data["writer"][0]["meta"]["protocol_version"] == "1"
    finally:
        first.stop()
        second.stop()


def test_meshscope_agents_says_when_consul_is_unreachable(tmp_path: Path) -> None:
    nowhere = ConsulDevAgent(tmp_path)  # never started
    result = run_cli(["agents"], nowhere.env())
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"meshscope: Consul at http://{nowhere.http_addr} is unreachable")
