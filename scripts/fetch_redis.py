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
(``meshscope_cli/redis_dev.py`` looks there when PATH has no ``redis-server``).  When nothing
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

import os
import subprocess
import tempfile

from scripts.private_apt import (
    FetchError,
    PrivateApt,
    extract_debs,
    fetcher_main,
    found_on_path,
    last_line,
    library_dirs,
    link_binary,
    missing_libraries,
    own_release_sources,
    read_apt_sources,
    read_os_release,
    release_codenames,
    require_tools,
    sources_description,
    write_wrapper,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEST = REPO_ROOT / ".tools"
SERVER = "redis-server"
PACKAGES = ("redis-server", "redis-tools")
TOOLS = ("redis-server", "redis-cli")  # what ends up in <dest>/bin
OVERRIDE_ENV = "MESHSCOPE_REDIS_SERVER"  # meshscope_cli/redis_dev.py starts this one when set
VERSION_TIMEOUT_S = 30
FAILURE_HINT = (
    "install redis-server (Debian/Ubuntu: apt-get install redis-server) or point "
    "MESHSCOPE_REDIS_SERVER at one, and re-run (`make test` needs it)"
)


def log(message: str) -> None:
    print(f"fetch_redis: {message}", file=sys.stderr, flush=True)


def probe(binary: Path) -> tuple[str | None, str]:
    """``(version line, "")`` if ``<binary> --version`` answers like a Redis server, else ``(None, why)``."""
    try:
        result = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    first = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
    if result.returncode == 0 and first.startswith("Redis server v="):
        return first, ""
    return None, last_line(result.stderr or result.stdout)


def fetch(dest: Path) -> None:
    """Fetch and unpack the release's packages; point ``<dest>/bin/<tool>`` at them."""
    require_tools("apt-get", "dpkg")
    os_release = read_os_release()
    codenames = release_codenames(os_release)
    label = f"this machine's release ({'/'.join(codenames) or 'codename unknown'})"
    sources = own_release_sources(read_apt_sources(), codenames)
    if not sources:
        raise FetchError(f"{label}: no apt source for it in {sources_description()}")
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
    override = os.environ.get(OVERRIDE_ENV) if use_path else None
    if override:
        # What redis_dev.py will start; <dest> is left alone so unsetting the variable undoes it.
        version, why = probe(Path(override))
        if version is None:
            raise FetchError(f"{OVERRIDE_ENV}={override}: `--version` does not work: {why}")
        log(f"using {OVERRIDE_ENV}: {version}")
        return Path(override)
    server = dest / "bin" / SERVER
    if use_path and probe(server)[0]:
        return server
    on_path = found_on_path(SERVER, server) if use_path else None
    if on_path is not None:
        log(f"using redis-server from PATH: {on_path}")
        for tool in TOOLS:
            found = found_on_path(tool, dest / "bin" / tool)
            if found is not None:
                link_binary(dest / "bin" / tool, found)
    else:
        fetch(dest)
    version, why = probe(server)
    if version is None:
        raise FetchError(f"`{server} --version` does not work: {why}")
    log(version)
    return server


def main(argv: list[str] | None = None) -> int:
    description = __doc__.split("\n", 1)[0] if __doc__ else None
    return fetcher_main(
        "fetch_redis",
        "redis-server",
        install,
        default_dest=DEFAULT_DEST,
        failure_hint=FAILURE_HINT,
        description=description,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
