"""A throw-away PostgreSQL server on a free loopback port, in its own data folder.

`initdb` makes a cluster in `workdir` (trust authentication on loopback, its `postgres`
database), `postgres` serves it on 127.0.0.1 with its socket in the same folder. PostgreSQL
refuses to run as root: when the tests run as root, both run as the `postgres` user (or
`nobody`) through `setpriv`, and the folder is handed to that user. The binaries are the first
of: MESHSCOPE_POSTGRES_SERVER (a `postgres` binary with `initdb` beside it), `initdb` on PATH,
Debian's `/usr/lib/postgresql/<version>/bin` (newest first), and `.tools/bin` of the source
checkout (`make postgres` puts them there, unpacking the release's package on machines without one).

    with PostgresDevServer() as pg:
        url = pg.url          # postgresql+asyncpg://meshscope@127.0.0.1:<port>/postgres
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from meshscope.config import Config
from meshscope.testing._process import DevServer, DevServerError, checkout_tools
from meshscope.testing.ports import free_port

__all__ = ["PostgresDevServer", "postgres_bin"]

USER = "meshscope"
DATABASE = "postgres"
"""The database initdb creates; the bridge's tables go there."""


def postgres_bin() -> Path:
    """The folder with `initdb` and `postgres` (see the module docstring); DevServerError if none."""
    override = Config().optional("MESHSCOPE_POSTGRES_SERVER")
    if override:
        if not Path(override).exists() or not (Path(override).parent / "initdb").exists():
            raise DevServerError(
                f"MESHSCOPE_POSTGRES_SERVER={override}: no such postgres with initdb beside it"
            )
        return Path(override).parent
    found = shutil.which("initdb")
    if found is not None and (Path(found).resolve().parent / "postgres").exists():
        return Path(found).resolve().parent
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]), reverse=True
    )
    if debian:
        return debian[0].parent
    local = checkout_tools()
    if (local / "postgres").exists() and (local / "initdb").exists():
        return local
    raise DevServerError(
        "no PostgreSQL server: run `make postgres` (or install postgresql, or set MESHSCOPE_POSTGRES_SERVER)"
    )


def _run_as() -> list[str]:
    """The prefix that drops root to an unprivileged user (PostgreSQL will not run as root)."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", "--"]
    raise DevServerError("running as root and there is no postgres or nobody user to run PostgreSQL as")


class PostgresDevServer(DevServer):
    """`postgres` on 127.0.0.1:`port` (kept across restarts), its cluster in `workdir/data`."""

    name = "postgres"
    start_timeout_s = 30.0
    stop_timeout_s = 15.0

    def __init__(self, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.port = free_port()

    def _ports(self) -> list[int]:
        return [self.port]

    def _pick_ports(self) -> None:
        self.port = free_port()

    @property
    def url(self) -> str:
        """The SQLAlchemy async URL of its database (a value of MESHSCOPE_BRIDGE_DATABASE_URL)."""
        return f"postgresql+asyncpg://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _prepare(self) -> None:
        """initdb once per folder, as the unprivileged user when this process is root."""
        data = self.workdir / "data"
        if (data / "PG_VERSION").exists():
            return
        prefix = _run_as()
        if prefix:
            uid = int(prefix[1].split("=")[1])
            gid = int(prefix[2].split("=")[1])
            for folder in (self.workdir, *self.workdir.parents):
                if folder == Path("/"):
                    break
                mode = folder.stat().st_mode
                os.chmod(folder, mode | 0o011)  # let that user reach its folder (tmp folders are 0700)
            os.chown(self.workdir, uid, gid)
        command = [
            *prefix, str(postgres_bin() / "initdb"), "-D", str(data), "-U", USER, "--auth=trust",
            "--encoding=UTF8", "--no-sync",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DevServerError(f"initdb failed ({done.returncode}): {done.stderr.strip()[-500:]}")

    def _command(self) -> list[str]:
        self._prepare()
        return [
            *_run_as(), str(postgres_bin() / "postgres"), "-D", str(self.workdir / "data"),
            "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.workdir), "-c", "fsync=off",
            "-c", "max_connections=200",
        ]  # fmt: skip

    def _answers(self) -> bool:
        """Ready when it says so in its log (a TCP connect succeeds while it still recovers)."""
        try:
            log = self.log_path().read_text(errors="replace")
        except OSError:
            return False
        return "database system is ready to accept connections" in log.rsplit("starting PostgreSQL", 1)[-1]
