"""DNS discovery against a real resolver this test controls: a tiny DNS server on loopback (UDP,
answers built with dnspython) whose records the test changes, as Kubernetes changes a headless
Service's records when pods come and go."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TypeVar, cast

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from meshscope.cli.launch import ServiceProcess, launch, meshscope_command
from meshscope.discovery.config import DiscoverySettings, DnsSettings
from meshscope.discovery.dns import DnsWatcher
from meshscope.orchestrator.client import OrchestratorClient
from meshscope.testing import child_env, wait_for
from tests.support import REPO, start_orchestrator

pytestmark = pytest.mark.integration

NAME = "analyst.mesh.test"
T = TypeVar("T")


class TinyDns(asyncio.DatagramProtocol):
    """Answers A queries from `records` (name -> addresses, TTL 0); NXDOMAIN for other names;
    no answer at all while `silent`."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.silent = False
        self.drop_aaaa = False
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.silent or self.transport is None:
            return
        query = dns.message.from_wire(data)
        if self.drop_aaaa and query.question[0].rdtype == dns.rdatatype.AAAA:
            return
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        if name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A and self.records[name]:
            response.answer.append(dns.rrset.from_text_list(question.name, 0, "IN", "A", self.records[name]))
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def tiny_dns() -> AsyncIterator[tuple[TinyDns, tuple[str, int]]]:
    """The server and its address (host, port)."""
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(TinyDns, local_addr=("127.0.0.1", 0))
    yield server, ("127.0.0.1", transport.get_extra_info("sockname")[1])
    transport.close()


def addresses(watcher: DnsWatcher) -> list[str]:
    return [instance.host for instance in watcher.instances("analyst")]


async def test_the_watcher_follows_the_records_and_keeps_them_while_dns_is_silent(
    tiny_dns: tuple[TinyDns, tuple[str, int]],
) -> None:
    server, nameserver = tiny_dns
    server.records[NAME] = ["10.0.0.1"]
    watcher = DnsWatcher(DnsSettings({"analyst": (NAME, 50051)}, interval_s=0.2, nameserver=nameserver))
    await watcher.start()
    try:
        assert addresses(watcher) == ["10.0.0.1"]  # resolved before start returns
        assert watcher.instances("analyst")[0].replica_id == "analyst@10.0.0.1:50051"
        server.records[NAME] = ["10.0.0.1", "10.0.0.2"]  # a pod became ready
        await wait_for(lambda: _now(addresses(watcher)), lambda a: a == ["10.0.0.1", "10.0.0.2"], timeout=5)
        server.records[NAME] = ["10.0.0.2"]  # one left
        await wait_for(lambda: _now(addresses(watcher)), lambda a: a == ["10.0.0.2"], timeout=5)
        server.silent = True  # DNS stops answering: once a resolution has failed, the last set stays
        await wait_for(lambda: _now(watcher.failure), lambda failure: failure is not None, timeout=20)
        assert addresses(watcher) == ["10.0.0.2"]
        server.silent = False
        del server.records[NAME]  # the name is gone (no ready pod): no replica
        await wait_for(lambda: _now(addresses(watcher)), lambda a: a == [], timeout=5)
    finally:
        await watcher.stop()


async def test_a_server_that_drops_aaaa_queries_still_gives_the_a_records(
    tiny_dns: tuple[TinyDns, tuple[str, int]],
) -> None:
    server, nameserver = tiny_dns
    server.records[NAME] = ["10.0.0.7"]
    server.drop_aaaa = True  # found by review: the A answer was thrown away with the AAAA timeout
    services = {"analyst": (NAME, 50051), "writer": ("10.0.0.9", 50052)}  # an address is itself
    watcher = DnsWatcher(DnsSettings(services, interval_s=60, nameserver=nameserver))
    await watcher.resolve_all()
    assert [i.host for i in watcher.instances("analyst")] == ["10.0.0.7"]
    assert [i.address for i in watcher.instances("writer")] == ["10.0.0.9:50052"]


async def _now(value: T) -> T:
    return value


def test_bad_dns_settings_are_one_line_errors() -> None:
    from meshscope.config import ConfigError

    for environ, message in [
        ({"MESHSCOPE_DISCOVERY": "dns"}, "MESHSCOPE_DISCOVERY=dns needs MESHSCOPE_DNS_SERVICES"),
        (
            {"MESHSCOPE_DISCOVERY": "dns", "MESHSCOPE_DNS_SERVICES": "analyst=analyst-headless"},
            "is not host:port",
        ),
        (
            {"MESHSCOPE_DISCOVERY": "dns", "MESHSCOPE_DNS_SERVICES": "a=x:1,y:1"},
            "agent 'a' has more than one name",
        ),
        (
            {
                "MESHSCOPE_DISCOVERY": "dns",
                "MESHSCOPE_DNS_SERVICES": "a=x:1",
                "MESHSCOPE_DNS_INTERVAL_S": "0",
            },
            "MESHSCOPE_DNS_INTERVAL_S",
        ),
    ]:
        with pytest.raises(ConfigError, match=message):
            DiscoverySettings.from_env(environ)
    settings = DiscoverySettings.from_env(
        {
            "MESHSCOPE_DISCOVERY": "dns",
            "MESHSCOPE_DNS_SERVICES": "a=x:1",
            "MESHSCOPE_DNS_NAMESERVER": "10.96.0.10",
        }
    )
    assert settings.dns.nameserver == ("10.96.0.10", 53)


@pytest.fixture
def two_pods() -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Two replicas of `analyst` on one port at two loopback addresses, as two pods of a Deployment
    listen on one container port at their own IPs."""
    probe = socket.socket()
    probe.bind(("127.0.0.2", 0))
    port = probe.getsockname()[1]
    probe.close()
    pods = [
        launch(
            meshscope_command(
                "serve",
                "agents",
                "--agents",
                "analyst",
                "--model",
                "scripted",
                "--host",
                host,
                "--port",
                str(port),
            ),
            child_env(),
            cwd=REPO,
        )
        for host in ("127.0.0.2", "127.0.0.3")
    ]
    yield pods[0], pods[1]
    for pod in pods:
        pod.stop()


async def test_the_orchestrator_balances_across_the_pods_dns_returns(
    tiny_dns: tuple[TinyDns, tuple[str, int]], two_pods: tuple[ServiceProcess, ServiceProcess], tmp_path: Path
) -> None:
    server, (host, port_53) = tiny_dns
    port = two_pods[0].address.rsplit(":", 1)[1]
    server.records[NAME] = ["127.0.0.2"]
    env = {
        "MESHSCOPE_DISCOVERY": "dns",
        "MESHSCOPE_DNS_SERVICES": f"analyst={NAME}:{port}",
        "MESHSCOPE_DNS_NAMESERVER": f"{host}:{port_53}",
        "MESHSCOPE_DNS_INTERVAL_S": "0.3",
    }
    # In a thread: the DNS server answers on this loop, and the orchestrator resolves as it starts.
    orchestrator = await asyncio.to_thread(
        start_orchestrator, tmp_path / "mesh.yaml", "agents: [analyst]\n", {}, env=env
    )
    try:
        async with OrchestratorClient(orchestrator.address) as client:

            async def replicas_used(runs: int) -> set[str]:
                used: set[str] = set()
                for _ in range(runs):
                    events = [e async for e in client.run("analyst", "hello", session_id=uuid.uuid4().hex)]
                    used.update(events[-1].run_end.replicas)
                return used

            async def listed() -> int:
                response = await client.list_agents()
                return sum(len(a.replicas) for a in response.agents if a.name == "analyst")

            assert await listed() == 1  # resolved before the orchestrator served
            assert await replicas_used(4) == {f"analyst@127.0.0.2:{port}"}
            server.records[NAME] = ["127.0.0.2", "127.0.0.3"]  # a second pod is ready

            await wait_for(listed, lambda n: n == 2, timeout=5)
            both = {f"analyst@127.0.0.2:{port}", f"analyst@127.0.0.3:{port}"}
            assert await replicas_used(20) == both  # balanced across both pods
            server.records[NAME] = ["127.0.0.3"]  # the first pod is gone
            await wait_for(listed, lambda n: n == 1, timeout=5)
            assert await replicas_used(6) == {f"analyst@127.0.0.3:{port}"}
    finally:
        orchestrator.stop()
