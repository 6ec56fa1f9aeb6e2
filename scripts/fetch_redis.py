#!/usr/bin/env python3
"""Install ``redis-server`` and ``redis-cli`` into a project-local tools folder (default: ``<repo>/.tools``).

The session-store tests start their own throw-away ``redis-server``, and ``make test`` must
work on a fresh machine that has only Python -- without root, and without installing
anything system-wide.  So, in this order:

1. ``MESHSCOPE_REDIS_SERVER``, when set, is checked and used (``<dest>`` is left alone), then a
   ``redis-server`` already on PATH is used as it is.
2. Otherwise the machine's own release's ``redis-server`` and ``redis-tools`` packages (the
   server binary lives in ``redis-tools``; ``redis-server`` only links to it) are fetched with
   a private apt state and unpacked with ``dpkg -x`` (see ``private_apt.py``).  The private
   state starts from a copy of the machine's dpkg status, so apt's own resolver adds exactly
   the shared-library packages this machine lacks (``libjemalloc2``, ``liblzf1`` on a bare
   Debian); those are unpacked too, and ``<dest>/bin/redis-server`` is then a small wrapper
   that puts them on ``LD_LIBRARY_PATH``.  Nothing leaks into the environment of callers.

``<dest>/bin/redis-server`` ends up as a symlink or wrapper callers can rely on
(``meshscope.testing.RedisDevServer`` looks there when PATH has no ``redis-server``).  When nothing
works the script says so in one line and exits non-zero, because ``make test`` needs it.

Usage::

    python3 scripts/fetch_redis.py [--dest .tools] [--fetch]

On success the absolute path of ``<dest>/bin/redis-server`` (or of the override) is the last
line on stdout and the exit status is 0.  Running it again is cheap (an existing working
binary is reused).  Progress and errors go to stderr.  Works as root and as an ordinary user.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tempfile

from scripts.private_apt import (
    FetchError,
    PrivateApt,
    extract_debs,
    fetcher_main,
    install_tool,
    library_dirs,
    link_binary,
    missing_libraries,
    own_release,
    read_apt_sources,
    read_os_release,
    require_tools,
    version_line,
    write_wrapper,
)

SERVER = "redis-server"
PACKAGES = ("redis-server", "redis-tools")
TOOLS = ("redis-server", "redis-cli")  # what ends up in <dest>/bin
OVERRIDE_ENV = "MESHSCOPE_REDIS_SERVER"  # meshscope.testing.RedisDevServer starts this one when set
FAILURE_HINT = (
    "install redis-server (Debian/Ubuntu: apt-get install redis-server) or point "
    "MESHSCOPE_REDIS_SERVER at one, and re-run (`make test` needs it)"
)


def log(message: str) -> None:
    print(f"fetch_redis: {message}", file=sys.stderr, flush=True)


def probe(binary: Path) -> tuple[str | None, str]:
    return version_line(binary, "--version", "Redis server v=")


def fetch(dest: Path) -> None:
    """Fetch and unpack the release's packages; point ``<dest>/bin/<tool>`` at them."""
    require_tools("apt-get", "dpkg")
    sources, label = own_release(read_apt_sources(), read_os_release())
    dest.mkdir(parents=True, exist_ok=True)
    root = dest / "redis-root"
    with tempfile.TemporaryDirectory(prefix="apt-tmp-", dir=dest) as tmp:
        apt = PrivateApt(Path(tmp), sources, log, machine_status=True)
        log(f"apt-get update (private state, {label}) ...")
        apt.update()
        if apt.candidate_version(SERVER) is None:
            raise FetchError(f"{label} has no {SERVER} package")
        log(f"fetching {', '.join(PACKAGES)} and the libraries this machine lacks ...")
        extract_debs(apt.download_with_missing_dependencies(PACKAGES), root, log)
    libraries = library_dirs(root)
    binary = root / "usr" / "bin" / SERVER
    if not binary.exists():
        raise FetchError(f"the {SERVER} package of {label} has no usr/bin/{SERVER}")
    missing = missing_libraries(binary, libraries)
    if missing:
        raise FetchError(
            f"{SERVER} needs {', '.join(missing)}, which neither this machine "
            "nor the fetched packages provide"
        )
    for tool in TOOLS:
        target = root / "usr" / "bin" / tool
        if not target.exists():
            continue
        if libraries:
            write_wrapper(dest / "bin" / tool, target, libraries)
        else:
            link_binary(dest / "bin" / tool, target)


def install(dest: Path, *, use_path: bool = True) -> Path:
    """Make ``<dest>/bin/redis-server`` a working Redis server; return that path (or the override)."""
    return install_tool(
        dest,
        name=SERVER,
        override_env=OVERRIDE_ENV,
        probe=probe,
        fetch=fetch,
        log=log,
        companions=TOOLS[1:],
        use_path=use_path,
    )


def main(argv: list[str] | None = None) -> int:
    description = __doc__.split("\n", 1)[0] if __doc__ else None
    return fetcher_main(
        "fetch_redis",
        "redis-server",
        install,
        failure_hint=FAILURE_HINT,
        description=description,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
