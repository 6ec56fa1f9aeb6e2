"""Helpers for testing code that runs on or against a meshscope mesh, with real parts.

Real servers, not mocks: the suite of meshscope itself uses these, and so can yours.

- `ConsulDevAgent` (`meshscope.testing.consul`): a throw-away `consul agent -dev` on free
  loopback ports; `env()` points meshscope processes at it.
- `RedisDevServer` (`meshscope.testing.redis`): a throw-away `redis-server` with an
  append-only file, on a free loopback port; `url` is its REDIS_URL.
- `PostgresDevServer` (`meshscope.testing.postgres`): a throw-away PostgreSQL cluster on a free
  loopback port (run as an unprivileged user when the tests run as root); `url` is its
  MESHSCOPE_BRIDGE_DATABASE_URL.
- `FaultProxy` (`meshscope.testing.proxy`): a TCP proxy that adds latency and holds replies
  back, between a real client and a real server.
- `wait_for`, `eventually`, `wait_until` (`meshscope.testing.eventually`): polling with a
  deadline instead of sleeping.
- `child_env` (`meshscope.testing.env`): the environment for a meshscope child process, without
  the host's model keys, meshscope settings or Consul address.
- `free_port`, `free_ports` (`meshscope.testing.ports`): loopback ports nothing listens on.
- `health_status` (`meshscope.testing.health`): one gRPC health check, never raising, to poll.
- `TestCA` (`meshscope.testing.certs`): a throw-away CA issuing server and client certificates
  as PEM files, and the MESHSCOPE_TLS_* variables that use them (needs `cryptography`, the
  `dev` extra; loaded only when a `TestCA` is made).

The dev servers start with `start()` (blocking until they answer) or `with` / `async with`,
stop with `stop()` (keeping their folder, so `start()` again is a restart) or `close()`, and
raise `DevServerError` when they cannot start. Importing this package loads the standard
library and grpcio: no AgentScope, Redis or Consul client.
"""

from meshscope.testing._process import DevServer, DevServerError
from meshscope.testing.certs import KeyPair, TestCA
from meshscope.testing.consul import ConsulDevAgent
from meshscope.testing.env import child_env
from meshscope.testing.eventually import eventually, wait_for, wait_until
from meshscope.testing.health import health_status
from meshscope.testing.ports import free_port, free_ports
from meshscope.testing.postgres import PostgresDevServer
from meshscope.testing.proxy import FaultProxy
from meshscope.testing.redis import RedisDevServer

__all__ = [
    "ConsulDevAgent",
    "DevServer",
    "DevServerError",
    "FaultProxy",
    "KeyPair",
    "PostgresDevServer",
    "RedisDevServer",
    "TestCA",
    "child_env",
    "eventually",
    "free_port",
    "free_ports",
    "health_status",
    "wait_for",
    "wait_until",
]
