"""Which session store a process uses, and its knobs: `StoreSettings`.

Kept apart from `redis_store` so that a process whose sessions stay in memory (no REDIS_URL)
never imports the Redis client: ~8 MB of RSS in every agent process that does not use it.
The variables are listed in `meshscope.services.runtime.redis_store`'s docstring and in
docs/configuration.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meshscope.config import Config, ConfigError
from meshscope.services.runtime.state import InMemorySessionStore, SessionStore

__all__ = ["StoreSettings"]


def _redis_url(config: Config) -> str | None:
    url = config.optional("REDIS_URL")
    if url is None:
        return None
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL={url!r} is not valid: expected redis://host:port[/db]")
    from redis.asyncio.connection import parse_url  # only a process that uses Redis loads it

    try:
        parse_url(url)  # what redis-py itself will do with it, now rather than mid-start
    except ValueError as exc:
        raise ConfigError(f"REDIS_URL={url!r} is not valid: {exc}") from None
    return url


@dataclass(frozen=True)
class StoreSettings:
    """Which session store, and its knobs (sizes in connections, durations in seconds)."""

    redis_url: str | None = None
    prefix: str = "meshscope"
    max_connections: int = 50
    pool_timeout_s: float = 5.0
    socket_timeout_s: float = 2.0
    connect_timeout_s: float = 2.0
    session_ttl_s: float = 0.0
    lock_ttl_s: float = 30.0
    lock_wait_s: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StoreSettings:
        """Read every knob from `environ` (default os.environ); ConfigError names a bad one."""
        config = Config(environ)
        d = cls()
        url = _redis_url(config)
        lock_ttl = config.seconds("MESHSCOPE_SESSION_LOCK_TTL_S", d.lock_ttl_s)
        if lock_ttl < 1:
            raise ConfigError("MESHSCOPE_SESSION_LOCK_TTL_S must be at least 1 second")
        return cls(
            redis_url=url,
            prefix=config.string("MESHSCOPE_REDIS_PREFIX", d.prefix),
            max_connections=config.count("MESHSCOPE_REDIS_MAX_CONNECTIONS", d.max_connections),
            pool_timeout_s=config.seconds("MESHSCOPE_REDIS_POOL_TIMEOUT_S", d.pool_timeout_s),
            socket_timeout_s=config.seconds("MESHSCOPE_REDIS_SOCKET_TIMEOUT_S", d.socket_timeout_s),
            connect_timeout_s=config.seconds("MESHSCOPE_REDIS_CONNECT_TIMEOUT_S", d.connect_timeout_s),
            session_ttl_s=config.seconds("MESHSCOPE_SESSION_TTL_S", d.session_ttl_s),
            lock_ttl_s=lock_ttl,
            lock_wait_s=config.seconds("MESHSCOPE_SESSION_LOCK_WAIT_S", d.lock_wait_s),
        )

    def open(self) -> SessionStore:
        """The configured store (Redis when REDIS_URL is set, memory otherwise)."""
        if self.redis_url is None:
            return InMemorySessionStore()
        from meshscope.services.runtime.redis_store import RedisSessionStore

        return RedisSessionStore(self)
