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

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlparse

from discovery.addresses import host_port
from discovery.errors import DiscoveryConfigError

DEFAULT_CONSUL_PORT = 8500
MAX_SECONDS = 2_000_000.0
"""Upper bound of every duration knob (Consul and gRPC take durations as bounded integers)."""


def _seconds(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise DiscoveryConfigError(f"{name}={raw!r} is not valid: expected seconds") from None
    if not minimum <= value <= MAX_SECONDS:  # also rejects nan and inf
        raise DiscoveryConfigError(
            f"{name}={raw!r} is not valid: expected seconds {minimum:g}-{MAX_SECONDS:.0f}"
        )
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise DiscoveryConfigError(f"{name}={raw!r} is not valid: expected true or false")


def parse_host_port(value: str, what: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:port`), validated; errors name `what`."""
    parsed = urlparse(f"//{value.strip()}")
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not parsed.hostname or port is None or port == 0:
        raise DiscoveryConfigError(f"{what}: {value!r} is not host:port")
    return parsed.hostname, port


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
        env = os.environ if environ is None else environ
        raw_addr = env.get("CONSUL_HTTP_ADDR", "").strip() or f"127.0.0.1:{DEFAULT_CONSUL_PORT}"
        scheme = "http"
        if "://" in raw_addr:
            scheme, _, raw_addr = raw_addr.partition("://")
            if scheme not in ("http", "https"):
                raise DiscoveryConfigError(f"CONSUL_HTTP_ADDR: scheme must be http or https, got {scheme!r}")
        host, port = parse_host_port(raw_addr.rstrip("/"), "CONSUL_HTTP_ADDR")
        if _flag(env, "CONSUL_HTTP_SSL", scheme == "https"):
            scheme = "https"
        verify: bool | str = _flag(env, "CONSUL_HTTP_SSL_VERIFY", True)
        ca = env.get("CONSUL_CACERT", "").strip()
        if ca:
            if not os.path.isfile(ca):
                raise DiscoveryConfigError(f"CONSUL_CACERT: no such file {ca!r}")
            verify = ca if verify else False
        client_cert, client_key = (
            env.get("CONSUL_CLIENT_CERT", "").strip(),
            env.get("CONSUL_CLIENT_KEY", "").strip(),
        )
        if bool(client_cert) != bool(client_key):
            raise DiscoveryConfigError("CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY must be set together")
        for name, path in (("CONSUL_CLIENT_CERT", client_cert), ("CONSUL_CLIENT_KEY", client_key)):
            if path and not os.path.isfile(path):
                raise DiscoveryConfigError(f"{name}: no such file {path!r}")
        return cls(
            host=host,
            port=port,
            scheme=scheme,
            token=env.get("CONSUL_HTTP_TOKEN", "").strip() or None,
            verify=verify,
            cert=(client_cert, client_key) if client_cert else None,
            check_interval_s=_seconds(env, "MESHSCOPE_CONSUL_CHECK_INTERVAL_S", 1.0, 0.1),
            check_timeout_s=_seconds(env, "MESHSCOPE_CONSUL_CHECK_TIMEOUT_S", 5.0, 0.1),
            deregister_after_s=_seconds(env, "MESHSCOPE_CONSUL_DEREGISTER_AFTER_S", 60.0, 1.0),
            wait_s=_seconds(env, "MESHSCOPE_CONSUL_WAIT_S", 30.0, 1.0),
            recheck_s=_seconds(env, "MESHSCOPE_CONSUL_RECHECK_S", 1.0, 0.1),
            recover_hold_s=_seconds(env, "MESHSCOPE_CONSUL_RECOVER_HOLD_S", 5.0, 0.0),
            call_timeout_s=_seconds(env, "MESHSCOPE_CONSUL_CALL_TIMEOUT_S", 5.0, 0.1),
        )


def parse_static_endpoints(value: str) -> dict[str, tuple[tuple[str, int], ...]]:
    """`analyst=h:p,h:p;writer=h:p` as {agent: ((host, port), ...)}."""
    endpoints: dict[str, tuple[tuple[str, int], ...]] = {}
    for entry in filter(None, (e.strip() for e in value.split(";"))):
        agent, sep, addresses = entry.partition("=")
        agent = agent.strip()
        if not sep or not agent:
            raise DiscoveryConfigError(
                f"MESHSCOPE_STATIC_ENDPOINTS: {entry!r} is not agent=host:port[,host:port]"
            )
        if agent in endpoints:
            raise DiscoveryConfigError(f"MESHSCOPE_STATIC_ENDPOINTS: agent {agent!r} is listed twice")
        pairs = [a.strip() for a in addresses.split(",") if a.strip()]
        if not pairs:
            raise DiscoveryConfigError(f"MESHSCOPE_STATIC_ENDPOINTS: agent {agent!r} has no endpoints")
        endpoints[agent] = tuple(parse_host_port(a, f"MESHSCOPE_STATIC_ENDPOINTS ({agent})") for a in pairs)
    return endpoints


@dataclass(frozen=True)
class DiscoverySettings:
    """Which backend, and its settings."""

    backend: Literal["consul", "static"] = "consul"
    consul: ConsulSettings = field(default_factory=ConsulSettings)
    static: Mapping[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    advertise_host: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DiscoverySettings:
        env = os.environ if environ is None else environ
        backend = env.get("MESHSCOPE_DISCOVERY", "").strip().lower() or "consul"
        if backend not in ("consul", "static"):
            raise DiscoveryConfigError(
                f"MESHSCOPE_DISCOVERY={backend!r} is not valid: expected consul or static"
            )
        return cls(
            backend="consul" if backend == "consul" else "static",
            consul=ConsulSettings.from_env(env) if backend == "consul" else ConsulSettings(),
            static=parse_static_endpoints(env.get("MESHSCOPE_STATIC_ENDPOINTS", "")),
            advertise_host=env.get("MESHSCOPE_ADVERTISE_HOST", "").strip() or None,
        )
