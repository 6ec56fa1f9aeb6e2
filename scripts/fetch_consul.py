#!/usr/bin/env python3
"""Install a Consul binary into a project-local tools folder (default: ``<repo>/.tools``).

Tests and local runs start a throw-away ``consul agent -dev``, so they need a ``consul``
binary.  Getting one on this project's reference machines is awkward:

* Consul is **not packaged in Debian 12 ("bookworm")** -- it was dropped after Debian 11
  because of HashiCorp's licence change.  Debian 11 ("bullseye") still ships ``consul``
  1.8.7 in the very same Debian archive that apt already uses here.
* We must not change the machine's apt state to get it: adding a bullseye source to
  ``/etc/apt`` would mix suites for every later ``apt-get upgrade``, and an ordinary
  ``apt-get update`` would rewrite the system package lists.  So we run apt with a
  **private** sources list, lists directory, cache directory and (empty) dpkg status
  file, all in a temporary directory, ``apt-get download`` the .deb and unpack it with
  ``dpkg -x`` -- nothing is installed and no system file is touched.  The machine's own
  ``/etc/apt/apt.conf.d`` still applies (proxies, mirrors, auth), only the update hooks
  are cleared because they refer to the system package lists.
* The archive address is never hard-coded: it is derived at run time from the machine's
  apt sources (the ``deb`` source carrying the machine's codename with ``main``).

If a ``consul`` is already on PATH it is used instead.  In every case
``<dest>/bin/consul`` ends up as a symlink callers can rely on.

Usage::

    python3 scripts/fetch_consul.py [--dest .tools]

On success the absolute path of ``<dest>/bin/consul`` is the last line on stdout and the
exit status is 0.  Running it again is cheap (an existing working binary is reused).
Progress and errors go to stderr.  Works as root and as an ordinary user.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEST = REPO_ROOT / ".tools"
TARGET_SUITE = "bullseye"  # Debian 11, the last release that ships consul (1.8.7)
PACKAGE = "consul"
APT_SOURCES_LIST = Path("/etc/apt/sources.list")
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
OS_RELEASE = Path("/etc/os-release")
APT_TIMEOUT_S = 900
VERSION_TIMEOUT_S = 30
# Hooks from apt.conf.d that act on the *system* package lists; cleared for our private run.
CLEARED_APT_HOOKS = (
    "APT::Update::Pre-Invoke",
    "APT::Update::Post-Invoke",
    "APT::Update::Post-Invoke-Success",
)
PATH_HINT = "alternatively put `consul` (>= 1.8) on PATH and re-run"


class FetchError(Exception):
    """A failure with a one-line message meant for the user."""


@dataclass
class AptSource:
    """One apt source entry (a one-line ``deb`` line or a deb822 stanza)."""

    types: list[str]
    uris: list[str]
    suites: list[str]
    components: list[str]
    signed_by: str | None = None
    enabled: bool = True
    origin: str = ""
    options: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- output helpers


def log(message: str) -> None:
    print(f"fetch_consul: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- apt sources parsing


def read_codename(os_release: Path = OS_RELEASE) -> str:
    """Return VERSION_CODENAME from os-release (e.g. ``bookworm``), or ``""``."""
    try:
        text = os_release.read_text(encoding="utf-8")
    except OSError:
        return ""
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "VERSION_CODENAME":
            return value.strip().strip("\"'")
    return ""


def split_one_line_options(rest: str) -> tuple[dict[str, str], str]:
    """Split ``[opt=val ...] remainder`` into an options dict and the remainder."""
    rest = rest.strip()
    if not rest.startswith("["):
        return {}, rest
    end = rest.find("]")
    if end < 0:
        return {}, ""
    options: dict[str, str] = {}
    for item in rest[1:end].split():
        key, _, value = item.partition("=")
        options[key.lower().rstrip("+-")] = value
    return options, rest[end + 1 :].strip()


def parse_one_line(line: str, origin: str) -> AptSource | None:
    """Parse a one-line-format entry: ``deb [options] URI suite [components...]``."""
    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    kind, _, rest = line.partition(" ")
    if kind not in ("deb", "deb-src"):
        return None
    options, rest = split_one_line_options(rest)
    fields = rest.split()
    if len(fields) < 2:
        return None
    return AptSource(
        types=[kind],
        uris=[fields[0]],
        suites=[fields[1]],
        components=fields[2:],
        signed_by=options.get("signed-by") or None,
        origin=origin,
        options=options,
    )


def parse_one_line_file(text: str, origin: str) -> list[AptSource]:
    entries = (parse_one_line(line, origin) for line in text.splitlines())
    return [entry for entry in entries if entry is not None]


def deb822_stanzas(text: str) -> list[dict[str, str]]:
    """Split deb822 text into stanzas of ``{lower-case field: value}``.

    Comment lines are dropped (also inside a stanza); continuation lines (leading
    whitespace) are appended to the previous field with a newline, ``" ."`` lines
    standing for empty lines as in the deb822 spec.
    """
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last_key = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, last_key = {}, ""
            continue
        if raw[0] in " \t" and last_key:
            value = raw.strip()
            current[last_key] += "\n" + ("" if value == "." else value)
            continue
        key, sep, value = raw.partition(":")
        if sep:
            last_key = key.strip().lower()
            current[last_key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def parse_deb822(text: str, origin: str) -> list[AptSource]:
    """Parse a ``*.sources`` file."""
    sources: list[AptSource] = []
    for stanza in deb822_stanzas(text):
        sources.append(
            AptSource(
                types=stanza.get("types", "").split(),
                uris=stanza.get("uris", "").split(),
                suites=stanza.get("suites", "").split(),
                components=stanza.get("components", "").split(),
                signed_by=stanza.get("signed-by", "").strip() or None,
                enabled=stanza.get("enabled", "yes").strip().lower() not in ("no", "false", "0"),
                origin=origin,
            )
        )
    return sources


def read_apt_sources(
    sources_list: Path = APT_SOURCES_LIST, sources_dir: Path = APT_SOURCES_DIR
) -> list[AptSource]:
    """All entries from ``sources.list`` and ``sources.list.d/*.list|*.sources``, in apt's order."""
    sources: list[AptSource] = []
    if sources_list.is_file():
        sources += parse_one_line_file(sources_list.read_text(encoding="utf-8"), str(sources_list))
    if sources_dir.is_dir():
        for path in sorted(sources_dir.iterdir()):
            if not path.is_file():
                continue
            if path.suffix == ".list":
                sources += parse_one_line_file(path.read_text(encoding="utf-8"), str(path))
            elif path.suffix == ".sources":
                sources += parse_deb822(path.read_text(encoding="utf-8"), str(path))
    return sources


def is_debian_main_archive(source: AptSource, codename: str) -> bool:
    """A ``deb`` source for the release itself (not -security/-updates) with ``main``."""
    return (
        source.enabled
        and "deb" in source.types
        and codename in source.suites
        and "main" in source.components
        and any("debian-security" not in uri for uri in source.uris)
    )


def find_debian_archive(sources: list[AptSource], codename: str) -> tuple[str, str | None]:
    """Return ``(archive URI, Signed-By or None)`` of the machine's Debian main archive."""
    if codename:
        for source in sources:
            if is_debian_main_archive(source, codename):
                uri = next(uri for uri in source.uris if "debian-security" not in uri)
                return uri, source.signed_by
    raise FetchError(
        f"no Debian archive was found in the apt sources (looked for a 'deb' source with suite "
        f"{codename or '<unknown codename>'!r} and component 'main' in {APT_SOURCES_LIST} and "
        f"{APT_SOURCES_DIR}/); {PATH_HINT}"
    )


# --------------------------------------------------------------------------- private apt run


def signed_by_option(signed_by: str | None, workdir: Path) -> str:
    """Turn a Signed-By value into a one-line ``signed-by=`` option (``""`` if none).

    deb822 allows an inline ASCII-armoured key; that is written to ``keyring.asc``.
    Several keyring paths / fingerprints are comma-separated in the one-line format.
    """
    if not signed_by:
        return ""
    if "BEGIN PGP PUBLIC KEY BLOCK" in signed_by:
        keyring = workdir / "keyring.asc"
        keyring.write_text(signed_by.strip() + "\n", encoding="utf-8")
        return f"signed-by={keyring}"
    return "signed-by=" + ",".join(signed_by.replace(",", " ").split())


def write_private_apt_tree(workdir: Path, uri: str, signed_by: str | None) -> None:
    """Create the private sources.list, lists/cache dirs, empty status file and hook-clearing conf."""
    option = signed_by_option(signed_by, workdir)
    options_part = f"[{option}] " if option else ""
    (workdir / "sources.list").write_text(f"deb {options_part}{uri} {TARGET_SUITE} main\n", encoding="utf-8")
    for sub in ("lists/partial", "cache/archives/partial", "debs"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    (workdir / "status").write_text("", encoding="utf-8")
    (workdir / "clear-hooks.conf").write_text(
        "".join(f"#clear {hook};\n" for hook in CLEARED_APT_HOOKS), encoding="utf-8"
    )


def private_apt_options(workdir: Path) -> list[str]:
    """apt-get options that redirect all state to ``workdir`` but keep ``/etc/apt/apt.conf.d``."""
    settings = {
        "Dir::Etc::sourcelist": str(workdir / "sources.list"),
        "Dir::Etc::sourceparts": "-",
        "Dir::State::Lists": str(workdir / "lists"),
        "Dir::Cache": str(workdir / "cache"),
        "Dir::State::status": str(workdir / "status"),
        "Debug::NoLocking": "true",
    }
    if os.geteuid() == 0:
        # Otherwise apt drops to the `_apt` user, which cannot write into our private dirs.
        settings["APT::Sandbox::User"] = "root"
    options = ["-q", "-c", str(workdir / "clear-hooks.conf")]
    for key, value in settings.items():
        options += ["-o", f"{key}={value}"]
    return options


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def run_apt(options: list[str], args: list[str], cwd: Path) -> None:
    """Run ``apt-get <options> <args>``; raise FetchError with apt's last stderr line on failure."""
    command = ["apt-get", *options, *args]
    try:
        result = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise FetchError(f"`apt-get {' '.join(args)}` timed out after {APT_TIMEOUT_S}s; {PATH_HINT}") from exc
    for line in result.stderr.splitlines():
        if line.startswith("W:"):
            log(f"apt warning: {line}")
    if result.returncode != 0:
        who = "" if os.geteuid() == 0 else " (running as a non-root user; try as root)"
        raise FetchError(
            f"`apt-get {' '.join(args)}` failed (exit {result.returncode}){who}: "
            f"{last_line(result.stderr or result.stdout)}; {PATH_HINT}"
        )


def require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        raise FetchError(f"{', '.join(missing)} not found (not a Debian-like system?); {PATH_HINT}")


def download_deb(uri: str, signed_by: str | None, workdir: Path) -> Path:
    """Fetch the bullseye ``consul`` .deb with private apt state; return the .deb path."""
    write_private_apt_tree(workdir, uri, signed_by)
    options = private_apt_options(workdir)
    log(f"apt-get update (private state, suite {TARGET_SUITE}) ...")
    run_apt(options, ["update"], cwd=workdir)
    log(f"apt-get download {PACKAGE} ...")
    run_apt(options, ["download", PACKAGE], cwd=workdir / "debs")
    debs = sorted((workdir / "debs").glob(f"{PACKAGE}_*.deb"))
    if not debs:
        raise FetchError(f"apt-get download {PACKAGE} reported success but no .deb was written")
    return debs[-1]


def extract_deb(deb: Path, root: Path) -> Path:
    """``dpkg -x`` the .deb into a fresh ``root``; return the path of the consul binary in it."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    result = subprocess.run(["dpkg", "-x", str(deb), str(root)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FetchError(f"dpkg -x {deb.name} failed: {last_line(result.stderr)}")
    binary = root / "usr" / "bin" / PACKAGE
    if not binary.is_file():
        raise FetchError(f"{deb.name} did not contain usr/bin/{PACKAGE}")
    return binary


# --------------------------------------------------------------------------- binary handling


def consul_version(binary: Path) -> str | None:
    """First line of ``<binary> version`` if it starts with ``Consul v``, else None."""
    try:
        result = subprocess.run(
            [str(binary), "version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
    return first if result.returncode == 0 and first.startswith("Consul v") else None


def link_binary(link: Path, target: Path) -> None:
    """Atomically point the symlink ``link`` at ``target`` (absolute)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    temp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)
    temp.symlink_to(target.absolute())
    os.replace(temp, link)


def consul_on_path(link: Path) -> Path | None:
    """A ``consul`` found on PATH, unless it is our own ``<dest>/bin/consul``."""
    found = shutil.which(PACKAGE)
    if found is None or Path(found).absolute() == link.absolute():
        return None
    return Path(found).absolute()


def fetch_from_debian(dest: Path) -> Path:
    """Download and unpack the bullseye package; return the extracted binary."""
    require_tools("apt-get", "dpkg")
    uri, signed_by = find_debian_archive(read_apt_sources(), read_codename())
    log(f"using the Debian archive from the apt sources, suite {TARGET_SUITE}")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="apt-tmp-", dir=dest) as tmp:
        deb = download_deb(uri, signed_by, Path(tmp))
        log(f"extracting {deb.name} into {dest / 'consul-root'}")
        return extract_deb(deb, dest / "consul-root")


def install(dest: Path) -> Path:
    """Make ``<dest>/bin/consul`` a working Consul binary; return that path."""
    link = dest / "bin" / PACKAGE
    if consul_version(link):
        return link
    on_path = consul_on_path(link)
    if on_path is not None:
        log(f"using consul from PATH: {on_path}")
        link_binary(link, on_path)
    else:
        link_binary(link, fetch_from_debian(dest))
    version = consul_version(link)
    if version is None:
        raise FetchError(f"{link} does not work (`consul version` did not print 'Consul v...')")
    log(version)
    return link


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--dest",
        type=Path,
        default=DEFAULT_DEST,
        help=f"tools folder; the binary ends up in <dest>/bin/consul (default: {DEFAULT_DEST})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dest: Path = args.dest.expanduser().absolute()
    try:
        link = install(dest)
    except FetchError as exc:
        print(f"fetch_consul: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"fetch_consul: error: {exc}; {PATH_HINT}", file=sys.stderr)
        return 1
    print(link)
    return 0


if __name__ == "__main__":
    sys.exit(main())
