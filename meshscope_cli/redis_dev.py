"""A throw-away redis-server on a free loopback port (tests, benchmarks, local runs).

It keeps an append-only file (fsync always) in its own folder, so a restart
on the same folder is a real "Redis restarted and reloaded what it saved".

The binary comes from MESHSCOPE_REDIS_SERVER, PATH, or `make redis`
(.tools/bin/redis-server), so that `make test` works on a machine where
redis-server was never installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from meshscope_cli.launch import free_port

REPO = Path(__file__).resolve().parent.parent
LOCAL_REDIS = REPO / ".tools" / "bin" / "redis-server"


def redis_binary() -> str:
    """PATH's redis-server wins; .tools/ is the fallback `make redis` fills on machines without one."""
    override = os.environ.get("MESHSCOPE_REDIS_SERVER")
    if override:
        if not Path(override).exists():
            raise RuntimeError(f"MESHSCOPE_REDIS_SERVER={override}: no such file")
        return override
    found = shutil.which("redis-server")
    if found is not None:
        return found
    if LOCAL_REDIS.exists():
        return str(LOCAL_REDIS)
    raise RuntimeError(
        "no redis-server: run `make redis` (or install redis-server, or set MESHSCOPE_REDIS_SERVER)"
    )


class RedisDevServer:
    """`redis-server` with AOF in `workdir`, on a free port."""

    def __init__(self, workdir: Path, fsync: str = "always") -> None:
        self.workdir = workdir
        self.port = free_port()
        self.fsync = fsync
        """AOF fsync policy: "always" (tests: nothing acknowledged is lost) or "everysec" (the default)."""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", self.fsync, "--dir", str(self.workdir),
            "--daemonize", "no", "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}; see {self.workdir}/redis.log"
                )
            if self.ping():
                return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer in time")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
