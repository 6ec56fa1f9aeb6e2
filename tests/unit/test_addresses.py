"""IPv6 literals are bracketed where gRPC and HTTP want them, and bare where sockets do."""

from __future__ import annotations

from meshscope.discovery.addresses import bare_host, host_port
from meshscope.discovery.config import ConsulSettings
from meshscope.discovery.consul_client import connect


def test_host_port_brackets_only_ipv6_literals() -> None:
    assert host_port("127.0.0.1", 50051) == "127.0.0.1:50051"
    assert host_port("::1", 50051) == "[::1]:50051"
    assert host_port("[::1]", 50051) == "[::1]:50051"
    assert bare_host("[fe80::1]") == "fe80::1"


async def test_an_ipv6_consul_address_makes_a_valid_url() -> None:
    settings = ConsulSettings.from_env({"CONSUL_HTTP_ADDR": "[::1]:8500"})
    assert settings.http_addr == "http://[::1]:8500"
    client = connect(settings)
    try:
        assert client.http.base_uri == "http://[::1]:8500"
    finally:
        await client.close()
