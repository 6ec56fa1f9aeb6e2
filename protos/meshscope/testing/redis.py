"""A throw-away redis-server on a free loopback port.

It keeps an append-only file (fsync "always" by default) in its working folder, so a restart on
the same folder is a real "Redis restarted and reloaded what it saved". The binary is the first
of: MESHSCOPE_REDIS_SERVER, `redis-server` on PATH, `.tools/bin/redis-server` of the source
checkout (`make redis` puts it there on machines without one).
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from meshscope.config import Config
from meshscope.testing._process import DevServer, DevServerError, checkout_tools
from meshscope.testing.ports import free_port

__all__ = ["RedisDevServer", "redis_binary"]


def redis_binary() -> str:
    """The redis-server to run: MESHSCOPE_REDIS_SERVER, then PATH's, then `.tools/bin/redis-server`.

    Raises DevServerError when MESHSCOPE_REDIS_SERVER names no file, or when there is none.
    """
    override = Config().optional("MESHSCOPE_REDIS_SERVER")
    if override:
        if not Path(override).exists():
            raise DevServerError(f"MESHSCOPE_REDIS_SERVER={override}: no such file")
        return override
    found = shutil.which("redis-server")
    if found is not None:
        return found
    local = checkout_tools() / "redis-server"
    if local.exists():
        return str(local)
    raise DevServerError(
        "no redis-server: run `make redis` (or install redis-server, or set MESHSCOPE_REDIS_SERVER)"
    )


class RedisDevServer(DevServer):
    """`redis-server` on 127.0.0.1:`port` (picked by `free_port`, kept across restarts), AOF in `workdir`.

    No RDB snapshots; the append-only file is fsynced per `fsync`: "always" (nothing
    acknowledged is lost, what tests of a restart need) or "everysec" (Redis's default). Its
    log goes to `redis-server-N.log` in `workdir`. `start()` returns once it answers PING;
    `stop()` sends SIGTERM and SIGKILL after 10 s.

        async with RedisDevServer() as redis:
            url = redis.url      # redis://127.0.0.1:<port>/0
    """

    name = "redis-server"
    start_timeout_s = 10.0
    stop_timeout_s = 10.0
    poll_interval_s = 0.02

    def __init__(self, workdir: Path | None = None, fsync: str = "always") -> None:
        super().__init__(workdir)
        self.port = free_port()
        self.fsync = fsync

    def _ports(self) -> list[int]:
        return [self.port]

    def _pick_ports(self) -> None:
        self.port = free_port()

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0`, the value of REDIS_URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        return [
            redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", self.fsync, "--dir", str(self.workdir),
            "--daemonize", "no",
        ]  # fmt: skip

    def _answers(self) -> bool:
        return self.ping()

    def ping(self) -> bool:
        """Whether the server answers PING within 0.5 s."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False
