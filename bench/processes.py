"""Server processes under test, and what /proc says about them."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from meshscope.cli.launch import ServiceProcess, launch, meshscope_command
from meshscope.testing import child_env as testing_child_env

REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def child_env(extra: Mapping[str, str] | None = None, tree: Path = REPO) -> dict[str, str]:
    """The environment of server processes: `meshscope.testing.child_env` (no host model settings,
    no discovery, fast shutdown), quieter, with the code tree `tree` (this repository, or another
    checkout for an A/B run) importable first, then `extra`."""
    inherited = os.environ.get("PYTHONPATH", "") if tree == REPO else ""
    pythonpath = os.pathsep.join(p for p in (str(tree), inherited) if p)
    return testing_child_env({"MESHSCOPE_LOG_LEVEL": "WARNING", "PYTHONPATH": pythonpath, **(extra or {})})


def tree_command(tree: Path, *args: str) -> list[str]:
    """The `meshscope` CLI of the code tree `tree`: this interpreter for this repository, the
    checkout's own console script (its `make setup`) for another, whatever its import layout
    (an older checkout has `meshscope.cli.main`, this one `meshscope.cli.main`)."""
    if tree == REPO:
        return meshscope_command(*args)
    return [str(tree / ".venv" / "bin" / "meshscope"), *args]


@dataclass
class ServerProcess:
    """One server in its own process, ready to take calls at `address`."""

    label: str
    service: ServiceProcess

    @property
    def pid(self) -> int:
        return self.service.pid

    @property
    def address(self) -> str:
        return self.service.address

    def rss_mib(self) -> float:
        """Resident set size (VmRSS) in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for pid {self.pid}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the whole process (all threads), in seconds."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / CLOCK_TICKS_PER_S

    def stop(self, timeout: float = 15.0) -> None:
        self.service.stop(timeout)


def start_server(label: str, argv: Sequence[str], *, timeout: float = 60.0) -> ServerProcess:
    """Start `python ARGV` from the repo root and wait for its ready line."""
    return ServerProcess(label, launch([sys.executable, *argv], child_env(), cwd=REPO, timeout=timeout))


def start_agent_server(
    label: str, agents: str, *extra: str, env: Mapping[str, str] | None = None, tree: Path = REPO
) -> ServerProcess:
    """`meshscope serve agents --agents AGENTS --port 0 [EXTRA]`, as users run it, from the code
    tree `tree` (default this repository), with `env` on top."""
    command = tree_command(tree, "serve", "agents", "--agents", agents, "--port", "0", *extra)
    return ServerProcess(label, launch(command, child_env(env, tree), cwd=tree))
