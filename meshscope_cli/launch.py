"""Starting mesh processes and waiting until they serve.

Every `meshscope serve ...` process prints one ready line on stdout,
`meshscope: serving <what> on <host:port>`, once it accepts calls; this
module starts such a process, collects its output on a thread, and returns
when the ready line arrives (the demo, the tests and the benchmarks all do this).
Processes are started with `--port 0` and report the port they bound, so nothing here
picks ports ahead (that is racy; `meshscope.testing.free_port` is for dev servers that
need one on their command line).
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

READY = re.compile(r"meshscope: serving (?P<what>.*) on (?P<address>\S+)$")


class LaunchError(RuntimeError):
    """The process exited or stayed silent instead of reporting ready."""


@dataclass
class ServiceProcess:
    """A running mesh process and everything it printed so far."""

    proc: subprocess.Popen[str]
    address: str
    log: list[str] = field(default_factory=list)
    """Every line the process printed (stdout and stderr), appended as they come."""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def terminate(self) -> None:
        """Ask for a graceful shutdown (SIGTERM)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, wait, SIGKILL if it does not exit in time; returns the exit status."""
        self.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode


def meshscope_command(*args: str) -> list[str]:
    """The `meshscope` CLI, run by this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "meshscope.cli.main", *args]


def launch(
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    timeout: float = 60,
    echo: Callable[[str], None] | None = None,
) -> ServiceProcess:
    """Start `command` and wait for its ready line; `echo` sees each output line."""
    proc = subprocess.Popen(
        list(command), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            log.append(line)
            lines.put(line)
            if echo is not None:
                echo(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if proc.poll() is not None:
                tail = "\n".join(log[-5:])
                raise LaunchError(f"{command[-1]!r} process exited with {proc.returncode}:\n{tail}") from None
            continue
        match = READY.search(line)
        if match:
            return ServiceProcess(proc, match.group("address"), log)
    proc.kill()
    raise LaunchError(f"process did not report ready within {timeout:g}s")
