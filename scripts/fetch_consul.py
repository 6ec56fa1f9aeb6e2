#!/usr/bin/env python3
"""Install a Consul binary into a project-local tools folder (default: ``<repo>/.tools``).

Tests and local runs start a throw-away ``consul agent -dev``, so they need a ``consul``
binary (>= 1.8).  Getting one without changing the machine, in this order:

1. ``MESHSCOPE_CONSUL_BIN``, when set, is checked and used (``<dest>`` is left alone), then a
   ``consul`` already on PATH is used as it is.
2. On Debian: Consul is **not packaged in Debian 12 ("bookworm")** or later -- it was dropped
   after Debian 11 because of HashiCorp's licence change -- but Debian 11 ("bullseye") still
   ships ``consul`` 1.8.7 in the very same Debian archive the machine's apt already uses.
3. Elsewhere (Ubuntu, derivatives), or when that fails: the machine's own release, if it
   carries a ``consul`` package that is new enough (some Ubuntu releases do, in universe).
   Asking a non-Debian archive for "bullseye" would only give an apt error.

Packages are fetched with a private apt state and unpacked, never installed (see
``private_apt.py``).  In every case ``<dest>/bin/consul`` ends up as a symlink callers can
rely on.  When nothing works the script says so in one line -- put consul >= 1.8 on PATH --
and exits non-zero, because ``make test`` cannot run without it.

Usage::

    python3 scripts/fetch_consul.py [--dest .tools] [--fetch]

On success the absolute path of ``<dest>/bin/consul`` (or of the override) is the last
line on stdout and the exit status is 0.  Running it again is cheap (an existing working
binary is reused).  Progress and errors go to stderr.  Works as root and as an ordinary user.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tempfile
from collections.abc import Sequence
from dataclasses import replace

from scripts.private_apt import (
    AptSource,
    FetchError,
    PrivateApt,
    debian_archive,
    extract_debs,
    fetcher_main,
    install_tool,
    link_binary,
    own_release,
    read_apt_sources,
    read_os_release,
    require_tools,
    sources_description,
    version_at_least,
    version_line,
)

PACKAGE = "consul"
MIN_VERSION = "1.8"
DEBIAN_SUITE = "bullseye"  # Debian 11, the last Debian release that ships consul (1.8.7)
OVERRIDE_ENV = "MESHSCOPE_CONSUL_BIN"  # meshscope.testing.ConsulDevAgent starts this one when set
FAILURE_HINT = f"put consul >= {MIN_VERSION} on PATH and re-run (`make test` needs it)"


def log(message: str) -> None:
    print(f"fetch_consul: {message}", file=sys.stderr, flush=True)


def probe(binary: Path) -> tuple[str | None, str]:
    return version_line(binary, "version", "Consul v")


def fetch_and_unpack(dest: Path, sources: Sequence[AptSource], label: str) -> Path:
    """Fetch ``consul`` >= MIN_VERSION from ``sources``; return the unpacked binary."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest / "consul-root"
    with tempfile.TemporaryDirectory(prefix="apt-tmp-", dir=dest) as tmp:
        apt = PrivateApt(Path(tmp), sources, log)
        log(f"apt-get update (private state, {label}) ...")
        apt.update()
        version = apt.candidate_version(PACKAGE)
        if version is None:
            raise FetchError(f"no {PACKAGE} package")
        if not version_at_least(version, MIN_VERSION):
            raise FetchError(f"{PACKAGE} {version} is older than {MIN_VERSION}")
        log(f"apt-get download {PACKAGE} ({version}) ...")
        extract_debs(apt.download([PACKAGE]), root, log)
    binary = root / "usr" / "bin" / PACKAGE
    if not binary.is_file():
        raise FetchError(f"the {PACKAGE} package has no usr/bin/{PACKAGE}")
    return binary


def from_debian_11(dest: Path, sources: Sequence[AptSource], os_release: dict[str, str]) -> Path:
    """Debian 11's consul, from the machine's Debian archive (only Debian's carries that suite)."""
    label = f"Debian 11 ({DEBIAN_SUITE})"
    archive = debian_archive(sources, os_release)
    if archive is None:
        raise FetchError(f"{label}: no Debian archive in {sources_description()}")
    try:
        return fetch_and_unpack(dest, [replace(archive, suites=[DEBIAN_SUITE])], label)
    except FetchError as exc:
        raise FetchError(f"{label}: {exc}") from exc


def from_own_release(dest: Path, sources: Sequence[AptSource], os_release: dict[str, str]) -> Path:
    """The machine's own release's consul, where it has one that is new enough."""
    own, label = own_release(sources, os_release)
    try:
        return fetch_and_unpack(dest, own, label)
    except FetchError as exc:
        raise FetchError(f"{label}: {exc}") from exc


def fetch(dest: Path) -> Path:
    """Try each package source in turn; when none works, one line with every reason."""
    require_tools("apt-get", "dpkg")
    sources = read_apt_sources()
    os_release = read_os_release()
    reasons: list[str] = []
    for attempt in (from_debian_11, from_own_release):
        try:
            return attempt(dest, sources, os_release)
        except FetchError as exc:
            reasons.append(str(exc))
    raise FetchError(f"no consul >= {MIN_VERSION} could be fetched ({'; '.join(reasons)})")


def install(dest: Path, *, use_path: bool = True) -> Path:
    """Make ``<dest>/bin/consul`` a working Consul binary; return that path (or the override)."""
    return install_tool(
        dest,
        name=PACKAGE,
        override_env=OVERRIDE_ENV,
        probe=probe,
        fetch=lambda into: link_binary(into / "bin" / PACKAGE, fetch(into)),
        log=log,
        use_path=use_path,
    )


def main(argv: list[str] | None = None) -> int:
    description = __doc__.split("\n", 1)[0] if __doc__ else None
    return fetcher_main(
        "fetch_consul",
        "consul",
        install,
        failure_hint=FAILURE_HINT,
        description=description,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
