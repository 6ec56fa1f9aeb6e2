"""Bridge settings, from flags and the environment (docs/configuration.md, "Bridge").

  --port / MESHSCOPE_BRIDGE_PORT        port (0: any free)                                    8080
  --host / MESHSCOPE_BRIDGE_HOST        bind address                                          127.0.0.1
  MESHSCOPE_BRIDGE_PUBLIC_URL           the base URL the cards advertise           http://HOST:PORT
  MESHSCOPE_BRIDGE_DATABASE_URL         the task store, an SQLAlchemy async URL: SQLite (a local file,
                                        nothing to start) or PostgreSQL (`postgresql+asyncpg://...`,
                                        for several bridge replicas), or `memory` (this process only, lost
                                        on exit)           sqlite+aiosqlite:///.meshscope/bridge.db
  MESHSCOPE_BRIDGE_FLUSH_MS            text deltas arriving faster than this are sent as one artifact
                                        chunk (0: every delta its own chunk)                       50
  MESHSCOPE_BRIDGE_DEFAULT_TARGET       the pipeline (or agent) served at the root paths; unset: the
                                        orchestrator's first pipeline by name
  MESHSCOPE_BRIDGE_API_KEYS             `name=key` pairs, comma-separated; when set, every A2A call needs
                                        one (`Authorization: Bearer KEY` or `X-API-Key: KEY`) and the
                                        name is the A2A user (the owner of its tasks)         (unset: open)
  MESHSCOPE_BRIDGE_RATE_LIMIT           per key (per client address when open), a `limits` string such
                                        as `600/minute` or `10/second`; `off` disables           600/minute
  MESHSCOPE_BRIDGE_RATE_LIMIT_STORAGE   a `limits` async storage URI; unset: Redis at REDIS_URL when
                                        set (shared by replicas), else memory
  MESHSCOPE_BRIDGE_PUSH_ALLOWED_HOSTS   host names push-notification URLs may name, comma-separated
                                        (`*.example.com` matches subdomains); unset: any public host
  MESHSCOPE_BRIDGE_PUSH_ALLOW_PRIVATE   allow push URLs to loopback and private ranges              false
  MESHSCOPE_BRIDGE_MAX_BODY_BYTES       largest request body accepted (413 above it)          4194304
  MESHSCOPE_BRIDGE_CARD_MAX_AGE_S       `Cache-Control: max-age` of the agent cards                60
  MESHSCOPE_BRIDGE_CATALOG_TTL_S        how long the list of agents and pipelines is reused before
                                        the orchestrator is asked again                               5
  MESHSCOPE_BRIDGE_POLL_INTERVAL_S      how often a subscriber on one replica reads the events of a
                                        task running on another (the shared event table)           0.2
  MESHSCOPE_ORCHESTRATOR                where the orchestrator is (as for every client)  127.0.0.1:50050

Every knob is read once at start through `meshscope.config.Config`: a bad value stops the process
with one line naming the variable (exit status 2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Self

from limits.aio.storage import Storage

from meshscope.config import MAX_BYTES, Config, ConfigError

DEFAULT_BRIDGE_PORT = 8080
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///.meshscope/bridge.db"
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
"""The gRPC message limit's default: a body larger than it could not reach the orchestrator anyway."""

_KEY_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_HOST = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


def _api_keys(config: Config, name: str) -> dict[str, str]:
    """`name=key,...` as {key: name}; every name and key unique, keys at least 16 characters."""
    raw = config.optional(name)
    if raw is None:
        return {}
    keys: dict[str, str] = {}
    for item in raw.split(","):
        user, sep, key = item.strip().partition("=")
        user, key = user.strip(), key.strip()
        if not sep or not _KEY_NAME.match(user):
            raise ConfigError(
                f"{name}: {user or item.strip()!r} is not name=key (name: letters, digits, _.@-)"
            )
        if len(key) < 16:
            raise ConfigError(f"{name}: the key of {user!r} is shorter than 16 characters")
        if key in keys or user in keys.values():
            raise ConfigError(f"{name}: {user!r} or its key is given twice")
        keys[key] = user
    return keys


def _hosts(config: Config, name: str) -> tuple[str, ...]:
    raw = config.optional(name)
    if raw is None:
        return ()
    hosts = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    for host in hosts:
        if not _HOST.match(host):
            raise ConfigError(f"{name}: {host!r} is not a host name")
    return hosts


def _rate_limit(config: Config, name: str, default: str) -> str | None:
    raw = config.string(name, default)
    if raw.lower() == "off":
        return None
    from limits import parse_many  # the limits parser is the reference for its own syntax

    try:
        parse_many(raw)
    except ValueError:
        raise config.invalid(name, raw, "a rate such as 600/minute or 10/second, or off") from None
    return raw


def rate_limit_storage(uri: str) -> Storage:
    """A `limits` async storage from its URI (`async+...`); Redis through redis-py (installed), not coredis.

    Raises ValueError for a URI that names no async storage `limits` knows. Connects lazily."""
    from limits.errors import ConfigurationError
    from limits.storage import storage_from_string

    options = {"implementation": "redispy"} if uri.startswith(("async+redis://", "async+rediss://")) else {}
    try:
        storage = storage_from_string(uri, **options)
    except ConfigurationError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(storage, Storage):
        raise ValueError(f"{uri!r} is not an async storage (its scheme must start with async+)")
    return storage


def _rate_limit_storage(config: Config, name: str, default: str) -> str:
    """A storage URI `rate_limit_storage` accepts (limits itself judges it, at start)."""
    raw = config.string(name, default)
    try:
        rate_limit_storage(raw)
    except ValueError:
        expected = "a limits async storage URI such as async+memory:// or async+redis://host:6379/0"
        raise config.invalid(name, raw, expected) from None
    return raw


@dataclass(frozen=True)
class BridgeSettings:
    """How the bridge serves (see the module docstring)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_BRIDGE_PORT
    public_url: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    default_target: str | None = None
    api_keys: Mapping[str, str] = field(default_factory=dict)
    """{key: user name}."""
    rate_limit: str | None = "600/minute"
    rate_limit_storage: str = "async+memory://"
    push_allowed_hosts: tuple[str, ...] = ()
    push_allow_private: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    card_max_age_s: int = 60
    catalog_ttl_s: float = 5.0
    poll_interval_s: float = 0.2
    flush_ms: int = 50

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read every knob from `environ` (default os.environ); ConfigError names a bad one."""
        config = Config(environ)
        d = cls()
        database_url = config.string("MESHSCOPE_BRIDGE_DATABASE_URL", d.database_url)
        if database_url != "memory" and not database_url.startswith(_SCHEMES):
            raise config.invalid(
                "MESHSCOPE_BRIDGE_DATABASE_URL",
                database_url,
                "sqlite+aiosqlite:///PATH, postgresql+asyncpg://... or memory",
            )
        redis_url = config.optional("REDIS_URL")
        storage_default = f"async+{redis_url}" if redis_url else d.rate_limit_storage
        return cls(
            host=config.string("MESHSCOPE_BRIDGE_HOST", d.host),
            port=config.port("MESHSCOPE_BRIDGE_PORT", d.port),
            public_url=config.optional("MESHSCOPE_BRIDGE_PUBLIC_URL"),
            database_url=database_url,
            default_target=config.optional("MESHSCOPE_BRIDGE_DEFAULT_TARGET"),
            api_keys=_api_keys(config, "MESHSCOPE_BRIDGE_API_KEYS"),
            rate_limit=_rate_limit(config, "MESHSCOPE_BRIDGE_RATE_LIMIT", "600/minute"),
            rate_limit_storage=_rate_limit_storage(
                config, "MESHSCOPE_BRIDGE_RATE_LIMIT_STORAGE", storage_default
            ),
            push_allowed_hosts=_hosts(config, "MESHSCOPE_BRIDGE_PUSH_ALLOWED_HOSTS"),
            push_allow_private=config.flag("MESHSCOPE_BRIDGE_PUSH_ALLOW_PRIVATE", d.push_allow_private),
            max_body_bytes=config.bytes(
                "MESHSCOPE_BRIDGE_MAX_BODY_BYTES", d.max_body_bytes, maximum=MAX_BYTES
            ),
            card_max_age_s=config.integer(
                "MESHSCOPE_BRIDGE_CARD_MAX_AGE_S", d.card_max_age_s, minimum=0, maximum=86400, what="seconds"
            ),
            catalog_ttl_s=config.seconds("MESHSCOPE_BRIDGE_CATALOG_TTL_S", d.catalog_ttl_s, maximum=3600),
            flush_ms=config.integer(
                "MESHSCOPE_BRIDGE_FLUSH_MS", d.flush_ms, minimum=0, maximum=1000, what="ms"
            ),
            poll_interval_s=config.seconds(
                "MESHSCOPE_BRIDGE_POLL_INTERVAL_S", d.poll_interval_s, minimum=0.01, maximum=60
            ),
        )

    def with_overrides(self, *, port: int | None = None, host: str | None = None) -> Self:
        """The flags win over the environment."""
        return replace(
            self,
            port=self.port if port is None else port,
            host=self.host if host is None else host,
        )

    def base_url(self, bound_port: int) -> str:
        """The URL the cards advertise: MESHSCOPE_BRIDGE_PUBLIC_URL, else this server's own address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"http://{host}:{bound_port}"
