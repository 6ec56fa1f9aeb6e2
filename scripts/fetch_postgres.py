#!/usr/bin/env python3
"""Install PostgreSQL's ``initdb`` and ``postgres`` into a project-local tools folder (``<repo>/.tools``).

The bridge's multi-replica tests start their own throw-away PostgreSQL server
(``meshscope.testing.PostgresDevServer``), and ``make test`` must work on a fresh machine that
has only Python -- without root, and without installing anything system-wide.  So, as
``fetch_redis.py`` does:

1. ``initdb`` already on PATH, or Debian's ``/usr/lib/postgresql/<version>/bin``, is used as it is
   (``<dest>/bin/initdb`` and ``<dest>/bin/postgres`` link to it);
2. otherwise the machine's own release's ``postgresql-<version>`` package (with the shared
   libraries this machine lacks) is fetched with a private
   apt state and unpacked with ``dpkg -x`` under ``<dest>/postgresql-root``; ``<dest>/bin/initdb``
   and ``<dest>/bin/postgres`` are wrappers that put the unpacked libraries on
   ``LD_LIBRARY_PATH`` and run the real binaries, which find their share files relative to
   themselves.

Usage::

    python3 scripts/fetch_postgres.py [--dest .tools] [--fetch]

On success the absolute path of ``<dest>/bin/postgres`` is the last line on stdout and the exit
status is 0.  Progress and errors go to stderr.
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

SERVER = "postgres"
VERSIONS = tuple(range(18, 12, -1))
"""Server packages looked for, newest first (`postgresql` itself only depends on one of them)."""
TOOLS = ("postgres", "initdb")
OVERRIDE_ENV = "MESHSCOPE_POSTGRES_SERVER"
FAILURE_HINT = (
    "install postgresql (Debian/Ubuntu: apt-get install postgresql) or point MESHSCOPE_POSTGRES_SERVER "
    "at a postgres binary with initdb beside it, and re-run (`make test` needs it)"
)


def log(message: str) -> None:
    print(f"fetch_postgres: {message}", file=sys.stderr, flush=True)


def probe(binary: Path) -> tuple[str | None, str]:
    return version_line(binary, "--version", "postgres (PostgreSQL)")


def _debian_bin() -> Path | None:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: p.parts[-3], reverse=True
    )
    return found[0].parent if found else None


def fetch(dest: Path) -> None:
    """Fetch and unpack the release's packages; point ``<dest>/bin/<tool>`` at them."""
    require_tools("apt-get", "dpkg")
    sources, label = own_release(read_apt_sources(), read_os_release())
    dest.mkdir(parents=True, exist_ok=True)
    root = dest / "postgresql-root"
    with tempfile.TemporaryDirectory(prefix="apt-tmp-", dir=dest) as tmp:
        apt = PrivateApt(Path(tmp), sources, log, machine_status=True)
        log(f"apt-get update (private state, {label}) ...")
        apt.update()
        package = next(
            (f"postgresql-{n}" for n in VERSIONS if apt.candidate_version(f"postgresql-{n}")), None
        )
        if package is None:
            raise FetchError(f"{label} has no postgresql-<version> package")
        log(f"fetching {package} and the libraries this machine lacks ...")
        extract_debs(apt.download_with_missing_dependencies((package,)), root, log)
    binaries = sorted((root / "usr" / "lib" / "postgresql").glob("*/bin/postgres"))
    if not binaries:
        raise FetchError(f"the {package} package of {label} has no usr/lib/postgresql/*/bin/postgres")
    folder = binaries[-1].parent
    libraries = library_dirs(root)
    missing = missing_libraries(folder / SERVER, libraries)
    if missing:
        raise FetchError(
            f"{SERVER} needs {', '.join(missing)}, which neither this machine nor the packages provide"
        )
    for tool in TOOLS:
        if libraries:
            write_wrapper(dest / "bin" / tool, folder / tool, libraries)
        else:
            link_binary(dest / "bin" / tool, folder / tool)


def install(dest: Path, *, use_path: bool = True) -> Path:
    """Make ``<dest>/bin/postgres`` (and ``initdb``) work; return the path of ``postgres``."""
    debian = _debian_bin() if use_path else None
    if debian is not None and not (dest / "bin" / SERVER).exists():
        log(f"using {debian}")
        for tool in TOOLS:
            link_binary(dest / "bin" / tool, debian / tool)
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
        "fetch_postgres", SERVER, install, failure_hint=FAILURE_HINT, description=description, argv=argv
    )


if __name__ == "__main__":
    sys.exit(main())
