"""Fetch Debian packages with a private apt state and unpack them without installing anything.

Shared by ``fetch_consul.py`` and ``fetch_redis.py``.  The tests need binaries (``consul``,
``redis-server``) that a fresh machine may lack, and getting them must not change the machine:

* Installing with the system apt would need root and would leave packages behind; adding a
  foreign suite (Debian 11 for consul) to ``/etc/apt`` would mix suites for every later
  ``apt-get upgrade``, and even a plain ``apt-get update`` rewrites the system package lists.
  So apt runs here with a **private** sources list, lists directory, cache directory, state
  directory and dpkg status file, all in a temporary directory.  Packages are fetched with
  ``apt-get download`` (or ``apt-get install --download-only``) and unpacked with ``dpkg -x``:
  nothing is installed and no system file is touched.
* The machine's own ``/etc/apt/apt.conf.d`` still applies (proxies, mirrors, auth); only the
  update hooks are cleared (they refer to the system package lists) and pinning preferences
  are ignored (they were written for the system's suites, not for ours).
* Archive addresses are never hard-coded: they are derived at run time from the machine's apt
  sources, so whatever mirror, proxy or snapshot the machine uses is used here too.

Works as root and as an ordinary user.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

APT_SOURCES_LIST = Path("/etc/apt/sources.list")
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
OS_RELEASE = Path("/etc/os-release")
DPKG_STATUS = Path("/var/lib/dpkg/status")
APT_TIMEOUT_S = 900
VERSION_TIMEOUT_S = 30
DEFAULT_DEST = Path(__file__).resolve().parent.parent / ".tools"
"""Where `make consul` and `make redis` put their tools: <repo>/.tools."""
# Hooks from apt.conf.d that act on the *system* package lists; cleared for our private run.
CLEARED_APT_HOOKS = (
    "APT::Update::Pre-Invoke",
    "APT::Update::Post-Invoke",
    "APT::Update::Post-Invoke-Success",
    "APT::Update::Post-Invoke-Stats",  # Ubuntu's ESM hook writes machine state from here
)
# The components Debian and Ubuntu archives use; third-party sources that reuse the release's
# codename as their suite (e.g. "jammy stable") have others and are left out.
RELEASE_COMPONENTS = frozenset(
    {"main", "contrib", "non-free", "non-free-firmware", "restricted", "universe", "multiverse"}
)
# Never unpacked onto a library path: the C library has to match the system's dynamic loader.
NEVER_UNPACKED = frozenset({"libc6", "libc-bin"})

Log = Callable[[str], None]


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
    options: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- the machine's release


def read_os_release(os_release: Path = OS_RELEASE) -> dict[str, str]:
    """``/etc/os-release`` as a dict (empty when unreadable)."""
    try:
        text = os_release.read_text(encoding="utf-8")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            fields[key.strip()] = value.strip().strip("\"'")
    return fields


def release_codenames(os_release: dict[str, str]) -> list[str]:
    """The suite names of the machine's own release, most specific first.

    Derivatives name their base too (Linux Mint: ``UBUNTU_CODENAME``), and their apt sources
    use it for the base archive, so every codename os-release gives counts.
    """
    names: list[str] = []
    for key in ("VERSION_CODENAME", "UBUNTU_CODENAME", "DEBIAN_CODENAME"):
        value = os_release.get(key, "")
        if value and value not in names:
            names.append(value)
    return names


def is_debian(os_release: dict[str, str]) -> bool:
    """Only on Debian itself is the release's archive known to carry other Debian suites too."""
    return os_release.get("ID", "") == "debian"


# --------------------------------------------------------------------------- apt sources parsing


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


def parse_one_line(line: str) -> AptSource | None:
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
        options=options,
    )


def parse_one_line_file(text: str) -> list[AptSource]:
    entries = (parse_one_line(line) for line in text.splitlines())
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


def parse_deb822(text: str) -> list[AptSource]:
    """Parse a ``*.sources`` file."""
    sources: list[AptSource] = []
    for stanza in deb822_stanzas(text):
        options: dict[str, str] = {}
        if stanza.get("architectures", "").strip():
            options["arch"] = ",".join(stanza["architectures"].split())
        if stanza.get("trusted", "").strip():
            options["trusted"] = stanza["trusted"].strip()
        sources.append(
            AptSource(
                types=stanza.get("types", "").split(),
                uris=stanza.get("uris", "").split(),
                suites=stanza.get("suites", "").split(),
                components=stanza.get("components", "").split(),
                signed_by=stanza.get("signed-by", "").strip() or None,
                enabled=stanza.get("enabled", "yes").strip().lower() not in ("no", "false", "0"),
                options=options,
            )
        )
    return sources


def read_apt_sources(
    sources_list: Path = APT_SOURCES_LIST, sources_dir: Path = APT_SOURCES_DIR
) -> list[AptSource]:
    """All entries from ``sources.list`` and ``sources.list.d/*.list|*.sources``, in apt's order."""
    sources: list[AptSource] = []
    if sources_list.is_file():
        sources += parse_one_line_file(sources_list.read_text(encoding="utf-8"))
    if sources_dir.is_dir():
        for path in sorted(sources_dir.iterdir()):
            if not path.is_file():
                continue
            if path.suffix == ".list":
                sources += parse_one_line_file(path.read_text(encoding="utf-8"))
            elif path.suffix == ".sources":
                sources += parse_deb822(path.read_text(encoding="utf-8"))
    return sources


def sources_description() -> str:
    return f"{APT_SOURCES_LIST} and {APT_SOURCES_DIR}/"


def debian_archive(sources: Sequence[AptSource], os_release: dict[str, str]) -> AptSource | None:
    """The machine's Debian archive (the release's own suite with ``main``), or None.

    Returned as a source with that one URI and no suites, ready to be pointed at another suite.
    On anything but Debian itself the release's archive is not Debian's (Ubuntu's does not
    carry Debian's suites), so there is none.
    """
    if not is_debian(os_release):
        return None
    codenames = release_codenames(os_release)
    for source in sources:
        if not (source.enabled and "deb" in source.types and "main" in source.components):
            continue
        if not any(codename in source.suites for codename in codenames):
            continue
        for uri in source.uris:
            if "debian-security" not in uri:
                return replace(source, types=["deb"], uris=[uri], suites=[], components=["main"])
    return None


def own_release_sources(sources: Sequence[AptSource], codenames: Sequence[str]) -> list[AptSource]:
    """The machine's sources for its own release: ``<codename>`` and ``<codename>-*`` suites.

    Third-party sources (other suite or component names) are left out: they only slow the
    private update down and can fail it.
    """
    own: list[AptSource] = []
    for source in sources:
        if not (source.enabled and "deb" in source.types and source.uris):
            continue
        suites = [
            suite
            for suite in source.suites
            if any(suite == name or suite.startswith(f"{name}-") for name in codenames)
        ]
        components = [component for component in source.components if component in RELEASE_COMPONENTS]
        if suites and components:
            own.append(replace(source, types=["deb"], suites=suites, components=components))
    return own


# --------------------------------------------------------------------------- private apt run


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        raise FetchError(f"{', '.join(missing)} not found (not a Debian-like system?)")


class PrivateApt:
    """apt-get / apt-cache with every piece of state in ``workdir``.

    ``machine_status`` copies the machine's dpkg status into the private state, so that
    ``download_with_missing_dependencies`` fetches exactly the dependencies this machine lacks;
    without it apt sees an empty machine (right for ``download``, which ignores dependencies).
    """

    def __init__(
        self, workdir: Path, sources: Sequence[AptSource], log: Log, *, machine_status: bool = False
    ) -> None:
        self.workdir = workdir
        self.log = log
        for sub in ("lists/partial", "cache/archives/partial", "debs", "log", "preferences.d"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        status = workdir / "status"
        if machine_status:
            try:
                shutil.copyfile(DPKG_STATUS, status)
            except OSError as exc:
                raise FetchError(f"cannot read the dpkg status {DPKG_STATUS}: {exc}") from exc
        else:
            status.write_text("", encoding="utf-8")
        (workdir / "sources.list").write_text("".join(self.source_lines(sources)), encoding="utf-8")
        (workdir / "clear-hooks.conf").write_text(
            "".join(f"#clear {hook};\n" for hook in CLEARED_APT_HOOKS), encoding="utf-8"
        )

    def source_lines(self, sources: Iterable[AptSource]) -> list[str]:
        """One-line ``deb`` entries (one per URI and suite) for the private sources list."""
        lines: list[str] = []
        for source in sources:
            options = [f"{key}={value}" for key in ("arch", "trusted") if (value := source.options.get(key))]
            signed_by = self.signed_by_option(source.signed_by)
            if signed_by:
                options.append(signed_by)
            options_part = f"[{' '.join(options)}] " if options else ""
            for uri in source.uris:
                for suite in source.suites:
                    lines.append(f"deb {options_part}{uri} {suite} {' '.join(source.components)}\n")
        return lines

    def signed_by_option(self, signed_by: str | None) -> str:
        """Turn a Signed-By value into a one-line ``signed-by=`` option (``""`` if none).

        deb822 allows an inline ASCII-armoured key, which the one-line format cannot hold: it
        goes to a keyring file.  Several keyring paths / fingerprints are comma-separated.
        """
        if not signed_by:
            return ""
        if "BEGIN PGP PUBLIC KEY BLOCK" in signed_by:
            index = len(list(self.workdir.glob("keyring-*.asc")))
            keyring = self.workdir / f"keyring-{index}.asc"
            keyring.write_text(signed_by.strip() + "\n", encoding="utf-8")
            return f"signed-by={keyring}"
        return "signed-by=" + ",".join(signed_by.replace(",", " ").split())

    def options(self) -> list[str]:
        """Options that redirect all apt state to ``workdir`` but keep ``/etc/apt/apt.conf.d``."""
        work = self.workdir
        settings = {
            "Dir::Etc::sourcelist": str(work / "sources.list"),
            "Dir::Etc::sourceparts": "-",
            "Dir::Etc::preferences": str(work / "preferences"),
            "Dir::Etc::preferencesparts": str(work / "preferences.d"),
            "Dir::State": str(work),
            "Dir::State::Lists": str(work / "lists"),
            "Dir::State::status": str(work / "status"),
            "Dir::Cache": str(work / "cache"),
            "Dir::Log": str(work / "log"),
            "Debug::NoLocking": "true",
            "Acquire::Languages": "none",
        }
        if os.geteuid() == 0:
            # Otherwise apt drops to the `_apt` user, which cannot write into our private dirs.
            settings["APT::Sandbox::User"] = "root"
        options = ["-q", "-c", str(work / "clear-hooks.conf")]
        for key, value in settings.items():
            options += ["-o", f"{key}={value}"]
        return options

    def run(self, tool: str, args: list[str], cwd: Path | None = None) -> str:
        """Run ``<tool> <private options> <args>``; return stdout, raise FetchError on failure."""
        try:
            result = subprocess.run(
                [tool, *self.options(), *args],
                cwd=cwd or self.workdir,
                capture_output=True,
                text=True,
                timeout=APT_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise FetchError(f"`{tool} {' '.join(args)}` timed out after {APT_TIMEOUT_S}s") from exc
        for line in result.stderr.splitlines():
            if line.startswith("W:"):
                self.log(f"apt warning: {line}")
        if result.returncode != 0:
            who = "" if os.geteuid() == 0 else " (running as a non-root user; try as root)"
            raise FetchError(
                f"`{tool} {' '.join(args)}` failed (exit {result.returncode}){who}: "
                f"{last_line(result.stderr or result.stdout)}"
            )
        return result.stdout

    def update(self) -> None:
        self.run("apt-get", ["update"])

    def candidate_version(self, package: str) -> str | None:
        """The version ``apt-get download`` would fetch, or None when no source has the package."""
        try:
            record = self.run("apt-cache", ["show", "--no-all-versions", package])
        except FetchError:
            return None
        for line in record.splitlines():
            key, sep, value = line.partition(":")
            if sep and key == "Version":
                return value.strip()
        return None

    def download(self, packages: Sequence[str]) -> list[Path]:
        """Fetch exactly ``packages`` (no dependencies); return the .deb paths."""
        debs = self.workdir / "debs"
        self.run("apt-get", ["download", *packages], cwd=debs)
        return self.collect(debs, packages)

    def download_with_missing_dependencies(self, packages: Sequence[str]) -> list[Path]:
        """Fetch ``packages`` and whichever of their dependencies the machine does not have.

        apt's own resolver decides, against the copied dpkg status; ``--reinstall`` makes it
        fetch the named packages even when the machine has them.
        """
        self.run(
            "apt-get",
            ["install", "--download-only", "--reinstall", "--no-install-recommends", "-y", *packages],
        )
        return self.collect(self.workdir / "cache" / "archives", packages)

    @staticmethod
    def collect(folder: Path, packages: Sequence[str]) -> list[Path]:
        debs = sorted(folder.glob("*.deb"))
        fetched = {deb_package(deb) for deb in debs}
        missing = [package for package in packages if package not in fetched]
        if missing:
            raise FetchError(f"apt reported success but wrote no .deb for {', '.join(missing)}")
        return debs


def deb_package(deb: Path) -> str:
    """The package name of a .deb fetched by apt (``name_version_arch.deb``)."""
    return deb.name.split("_", 1)[0]


def version_at_least(version: str, minimum: str) -> bool:
    """Debian version comparison (epochs, ``~``, ``+dfsg``), as dpkg itself does it."""
    result = subprocess.run(["dpkg", "--compare-versions", version, "ge", minimum], check=False)
    return result.returncode == 0


# --------------------------------------------------------------------------- unpacking and linking


def extract_debs(debs: Iterable[Path], root: Path, log: Log) -> None:
    """``dpkg -x`` every .deb into a fresh ``root`` (the C library excepted)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for deb in debs:
        if deb_package(deb) in NEVER_UNPACKED:
            log(f"not unpacking {deb.name}: the C library must match the system's loader")
            continue
        log(f"unpacking {deb.name}")
        command = ["dpkg", "-x", str(deb), str(root)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise FetchError(f"dpkg -x {deb.name} failed: {last_line(result.stderr)}")


def library_dirs(root: Path) -> list[Path]:
    """Folders under ``root`` holding shared libraries (``*.so*``), sorted."""
    return sorted({path.parent for path in root.rglob("*.so*") if path.is_file() or path.is_symlink()})


def missing_libraries(binary: Path, library_path: Sequence[Path]) -> list[str]:
    """Shared libraries ``ldd`` cannot resolve for ``binary`` (empty when ldd is unavailable)."""
    if shutil.which("ldd") is None:
        return []
    env = dict(os.environ)
    if library_path:
        env["LD_LIBRARY_PATH"] = ":".join(str(path) for path in library_path)
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env, check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if "not found" in line]


def link_binary(link: Path, target: Path) -> None:
    """Atomically point the symlink ``link`` at ``target`` (absolute)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    temp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)
    temp.symlink_to(target.absolute())
    os.replace(temp, link)


def write_wrapper(path: Path, target: Path, library_path: Sequence[Path]) -> None:
    """Atomically write a ``sh`` script that runs ``target`` with ``library_path`` first.

    The unpacked libraries are not where the dynamic loader looks, and ``LD_LIBRARY_PATH`` set
    by the caller would leak into everything else that caller starts.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    joined = ":".join(str(folder.absolute()) for folder in library_path)
    text = (
        "#!/bin/sh\n"
        f"# Written by scripts/ in this repository: {target.name} unpacked from Debian packages,\n"
        "# with the shared libraries that were unpacked beside it.\n"
        f"LD_LIBRARY_PATH={shlex.quote(joined)}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\n"
        "export LD_LIBRARY_PATH\n"
        f'exec {shlex.quote(str(target.absolute()))} "$@"\n'
    )
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)
    temp.write_text(text, encoding="utf-8")
    temp.chmod(0o755)
    os.replace(temp, path)


def found_on_path(name: str, own: Path) -> Path | None:
    """``name`` found on PATH, unless it is our own link ``own`` (which would loop)."""
    found = shutil.which(name)
    if found is None or Path(found).absolute() == own.absolute():
        return None
    return Path(found).absolute()


def version_line(binary: Path, argument: str, prefix: str) -> tuple[str | None, str]:
    """``(first line, "")`` when ``<binary> <argument>`` succeeds printing ``prefix...``;
    else ``(None, why)``."""
    try:
        result = subprocess.run(
            [str(binary), argument], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    first = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
    if result.returncode == 0 and first.startswith(prefix):
        return first, ""
    if result.returncode == 0:
        return None, f"`{binary.name} {argument}` printed {first!r}, not {prefix!r}..."
    return None, last_line(result.stderr or result.stdout)


def own_release(sources: Sequence[AptSource], os_release: dict[str, str]) -> tuple[list[AptSource], str]:
    """The apt sources of the machine's own release, and how to name it in messages."""
    codenames = release_codenames(os_release)
    label = f"this machine's release ({'/'.join(codenames) or 'codename unknown'})"
    own = own_release_sources(sources, codenames)
    if not own:
        raise FetchError(f"{label}: no apt source for it in {sources_description()}")
    return own, label


def install_tool(
    dest: Path,
    *,
    name: str,
    override_env: str,
    probe: Callable[[Path], tuple[str | None, str]],
    fetch: Callable[[Path], None],
    log: Log,
    companions: Sequence[str] = (),
    use_path: bool = True,
) -> Path:
    """Make ``<dest>/bin/<name>`` work and return it (or the override): the one already
    there, else PATH's (with its companions), else ``fetch(dest)``, which must put it there."""
    override = os.environ.get(override_env) if use_path else None
    if override:
        # What the dev-server helper will start; <dest> is left alone so unsetting the variable undoes it.
        version, why = probe(Path(override))
        if version is None:
            raise FetchError(f"{override_env}={override} does not work: {why}")
        log(f"using {override_env}: {version}")
        return Path(override)
    tool = dest / "bin" / name
    if use_path and probe(tool)[0]:
        return tool
    on_path = found_on_path(name, tool) if use_path else None
    if on_path is not None:
        log(f"using {name} from PATH: {on_path}")
        for each in (name, *companions):
            found = found_on_path(each, dest / "bin" / each)
            if found is not None:
                link_binary(dest / "bin" / each, found)
    else:
        fetch(dest)
    version, why = probe(tool)
    if version is None:
        raise FetchError(f"{tool} does not work: {why}")
    log(version)
    return tool


def fetcher_main(
    tool: str,
    binary: str,
    install: Callable[..., Path],
    *,
    failure_hint: str,
    description: str | None,
    default_dest: Path = DEFAULT_DEST,
    argv: list[str] | None = None,
) -> int:
    """The command line both fetch scripts share: `[--dest DIR] [--fetch]`, one error line, exit 1."""
    parser = argparse.ArgumentParser(prog=tool, description=description)
    parser.add_argument(
        "--dest",
        type=Path,
        default=default_dest,
        help=f"tools folder; the binary ends up in <dest>/bin/{binary} (default: {default_dest})",
    )
    parser.add_argument(
        "--fetch",
        action="store_true",
        help=f"fetch the packages even when {binary} is on PATH or already in <dest> (tests that path)",
    )
    args = parser.parse_args(argv)
    dest: Path = args.dest.expanduser().absolute()
    try:
        installed = install(dest, use_path=not args.fetch)
    except (FetchError, OSError) as exc:
        print(f"{tool}: error: {exc}; {failure_hint}", file=sys.stderr)
        return 1
    print(installed)
    return 0
