"""Discovery settings, from the environment.

Consul's own variables (as the `consul` CLI reads them):
  CONSUL_HTTP_ADDR        address of the Consul agent: host:port or scheme://host:port (127.0.0.1:8500)
  CONSUL_HTTP_TOKEN       ACL token sent with every request (none)
  CONSUL_HTTP_SSL         "true" to talk HTTPS (false)
  CONSUL_HTTP_SSL_VERIFY  "false" to skip certificate verification (true)
  CONSUL_CACERT           CA bundle that signed Consul's certificate (system CAs)
  CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY   client certificate and key for mutual TLS

meshscope's:
  MESHSCOPE_DISCOVERY             consul | static (consul)
  MESHSCOPE_STATIC_ENDPOINTS      static backend: "agent=host:port,host:port;agent2=host:port"
  MESHSCOPE_ADVERTISE_HOST        address other processes reach this replica at (the bind host,
                                  or this machine's address when binding 0.0.0.0)
  MESHSCOPE_CONSUL_CHECK_INTERVAL_S       gRPC health-check interval (1)
  MESHSCOPE_CONSUL_CHECK_TIMEOUT_S        gRPC health-check timeout (5): a replica whose event loop
                                          a loaded machine stalls for seconds is still passing; a dead
                                          one (connection refused) fails at once whatever the timeout,
                                          and Consul runs one replica's checks one after another, so a
                                          timeout above the interval only spaces a hung one's checks out
  MESHSCOPE_CONSUL_DEREGISTER_AFTER_S     Consul removes a replica critical this long (60)
  MESHSCOPE_CONSUL_WAIT_S                 longest wait of one blocking query (30)
  MESHSCOPE_CONSUL_RECHECK_S              how often a replica checks it is still registered (1)
  MESHSCOPE_CONSUL_RECOVER_HOLD_S         after a Consul outage, how long watchers keep the last
                                          replica set while replicas re-register (5)
  MESHSCOPE_CONSUL_CALL_TIMEOUT_S         time limit of one registration call (5)
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from meshscope.addresses import host_port
from meshscope.config import MAX_SECONDS, Config, ConfigError, parse_host_port

__all__ = [
    "DEFAULT_CONSUL_PORT",
    "MAX_SECONDS",
    "ConsulSettings",
    "DiscoverySettings",
    "parse_dns_services",
    "parse_host_port",
    "parse_static_endpoints",
]

DEFAULT_CONSUL_PORT = 8500


@dataclass(frozen=True)
class ConsulSettings:
    """How to reach Consul and how replicas are checked."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_CONSUL_PORT
    scheme: str = "http"
    token: str | None = None
    verify: bool | str = True
    cert: tuple[str, str] | None = None
    check_interval_s: float = 1.0
    check_timeout_s: float = 5.0
    deregister_after_s: float = 60.0
    wait_s: float = 30.0
    recheck_s: float = 1.0
    recover_hold_s: float = 5.0
    call_timeout_s: float = 5.0

    @property
    def http_addr(self) -> str:
        return f"{self.scheme}://{host_port(self.host, self.port)}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConsulSettings:
        """Read Consul's variables and meshscope's Consul knobs; ConfigError names a bad one."""
        config = Config(environ)
        d = cls()
        raw_addr = config.string("CONSUL_HTTP_ADDR", f"127.0.0.1:{DEFAULT_CONSUL_PORT}")
        scheme = "http"
        if "://" in raw_addr:
            scheme, _, raw_addr = raw_addr.partition("://")
            if scheme not in ("http", "https"):
                raise ConfigError(f"CONSUL_HTTP_ADDR: scheme must be http or https, got {scheme!r}")
        host, port = parse_host_port(raw_addr.rstrip("/"), "CONSUL_HTTP_ADDR")
        if config.flag("CONSUL_HTTP_SSL", scheme == "https"):
            scheme = "https"
        verify: bool | str = config.flag("CONSUL_HTTP_SSL_VERIFY", True)
        ca = config.optional("CONSUL_CACERT")
        if ca is not None:
            if not os.path.isfile(ca):
                raise ConfigError(f"CONSUL_CACERT: no such file {ca!r}")
            verify = ca if verify else False
        client_cert = config.string("CONSUL_CLIENT_CERT", "")
        client_key = config.string("CONSUL_CLIENT_KEY", "")
        if bool(client_cert) != bool(client_key):
            raise ConfigError("CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY must be set together")
        for name, path in (("CONSUL_CLIENT_CERT", client_cert), ("CONSUL_CLIENT_KEY", client_key)):
            if path and not os.path.isfile(path):
                raise ConfigError(f"{name}: no such file {path!r}")
        return cls(
            host=host,
            port=port,
            scheme=scheme,
            token=config.optional("CONSUL_HTTP_TOKEN"),
            verify=verify,
            cert=(client_cert, client_key) if client_cert else None,
            check_interval_s=config.seconds(
                "MESHSCOPE_CONSUL_CHECK_INTERVAL_S", d.check_interval_s, minimum=0.1
            ),
            check_timeout_s=config.seconds(
                "MESHSCOPE_CONSUL_CHECK_TIMEOUT_S", d.check_timeout_s, minimum=0.1
            ),
            deregister_after_s=config.seconds(
                "MESHSCOPE_CONSUL_DEREGISTER_AFTER_S", d.deregister_after_s, minimum=1.0
            ),
            wait_s=config.seconds("MESHSCOPE_CONSUL_WAIT_S", d.wait_s, minimum=1.0),
            recheck_s=config.seconds("MESHSCOPE_CONSUL_RECHECK_S", d.recheck_s, minimum=0.1),
            recover_hold_s=config.seconds("MESHSCOPE_CONSUL_RECOVER_HOLD_S", d.recover_hold_s),
            call_timeout_s=config.seconds("MESHSCOPE_CONSUL_CALL_TIMEOUT_S", d.call_timeout_s, minimum=0.1),
        )


def parse_static_endpoints(
    value: str, variable: str = "MESHSCOPE_STATIC_ENDPOINTS"
) -> dict[str, tuple[tuple[str, int], ...]]:
    """`analyst=h:p,h:p;writer=h:p` as {agent: ((host, port), ...)}; `ConfigError` naming `variable`."""
    endpoints: dict[str, tuple[tuple[str, int], ...]] = {}
    for entry in filter(None, (e.strip() for e in value.split(";"))):
        agent, sep, addresses = entry.partition("=")
        agent = agent.strip()
        if not sep or not agent:
            raise ConfigError(f"{variable}: {entry!r} is not agent=host:port[,host:port]")
        if agent in endpoints:
            raise ConfigError(f"{variable}: agent {agent!r} is listed twice")
        pairs = [a.strip() for a in addresses.split(",") if a.strip()]
        if not pairs:
            raise ConfigError(f"{variable}: agent {agent!r} has no endpoints")
        endpoints[agent] = tuple(parse_host_port(a, f"{variable} ({agent})") for a in pairs)
    return endpoints


DEFAULT_DNS_INTERVAL_S = 5.0
"""Kubernetes' DNS caches records for 5 s by default (CoreDNS `cache 30` caps answers, kube-dns
serves endpoint changes within seconds): resolving more often would see nothing new."""


def parse_dns_services(value: str) -> dict[str, tuple[str, int]]:
    """`analyst=analyst-headless:50051;writer=writer.mesh.svc.cluster.local:50051` as
    {agent: (name, port)}: one name per agent; `ConfigError` naming the variable for anything else."""
    import dns.exception
    import dns.name

    services = parse_static_endpoints(value, "MESHSCOPE_DNS_SERVICES")
    for agent, names in services.items():
        if len(names) > 1:
            raise ConfigError(f"MESHSCOPE_DNS_SERVICES: agent {agent!r} has more than one name")
        name = names[0][0]
        if not is_ip_address(name):
            try:
                dns.name.from_text(name)
            except dns.exception.DNSException as exc:
                raise ConfigError(
                    f"MESHSCOPE_DNS_SERVICES ({agent}): {name!r} is not a DNS name: {exc}"
                ) from None
    return {agent: names[0] for agent, names in services.items()}


def is_ip_address(value: str) -> bool:
    """Whether `value` is an IPv4 or IPv6 address (not a name)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _nameserver(raw: str) -> tuple[str, int]:
    """`MESHSCOPE_DNS_NAMESERVER`: an IP address (dnspython asks servers by address), with an
    optional port: `10.96.0.10`, `10.96.0.10:5353`, `::1`, `[::1]:5353`."""
    if is_ip_address(raw):
        return raw, 53
    if raw.startswith("[") and raw.endswith("]") and is_ip_address(raw[1:-1]):
        return raw[1:-1], 53
    host, port = parse_host_port(raw, "MESHSCOPE_DNS_NAMESERVER")
    if not is_ip_address(host):
        raise ConfigError(
            f"MESHSCOPE_DNS_NAMESERVER={raw!r} is not valid: expected an IP address, optionally with a port"
        )
    return host, port


@dataclass(frozen=True)
class DnsSettings:
    services: Mapping[str, tuple[str, int]]
    interval_s: float = DEFAULT_DNS_INTERVAL_S
    nameserver: tuple[str, int] | None = None
    """None: the system's resolvers (/etc/resolv.conf)."""


@dataclass(frozen=True)
class DiscoverySettings:
    """Which backend, and its settings."""

    backend: Literal["consul", "static", "dns"] = "consul"
    consul: ConsulSettings = field(default_factory=ConsulSettings)
    static: Mapping[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    dns: DnsSettings = field(default_factory=lambda: DnsSettings({}))
    advertise_host: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DiscoverySettings:
        config = Config(environ)
        backend = config.choice("MESHSCOPE_DISCOVERY", "consul", ("consul", "static", "dns"))
        return cls(
            backend="consul" if backend == "consul" else "dns" if backend == "dns" else "static",
            consul=ConsulSettings.from_env(environ) if backend == "consul" else ConsulSettings(),
            static=parse_static_endpoints(config.string("MESHSCOPE_STATIC_ENDPOINTS", "")),
            dns=_dns_settings(config) if backend == "dns" else DnsSettings({}),
            advertise_host=config.optional("MESHSCOPE_ADVERTISE_HOST"),
        )


def _dns_settings(config: Config) -> DnsSettings:
    """MESHSCOPE_DNS_* (`meshscope.discovery.dns` says what they mean); the names are required."""
    services = parse_dns_services(config.string("MESHSCOPE_DNS_SERVICES", ""))
    if not services:
        raise ConfigError(
            "MESHSCOPE_DISCOVERY=dns needs MESHSCOPE_DNS_SERVICES: agent=name:port[;agent=name:port]"
        )
    nameserver = config.optional("MESHSCOPE_DNS_NAMESERVER")
    if nameserver is not None and ":" not in nameserver:
        nameserver += ":53"  # a bare IPv4 address or name; IPv6 as [addr]:port
    return DnsSettings(
        services,
        interval_s=config.seconds(
            "MESHSCOPE_DNS_INTERVAL_S", DEFAULT_DNS_INTERVAL_S, minimum=0.1, maximum=3600
        ),
        nameserver=None if nameserver is None else parse_host_port(nameserver, "MESHSCOPE_DNS_NAMESERVER"),
    )
