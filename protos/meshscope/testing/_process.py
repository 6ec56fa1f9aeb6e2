"""What the dev servers share: finding a binary, and the lifecycle of one child process.

A `DevServer` is a server binary run as a child process on loopback ports, with a working
folder for its log and data. `start()` blocks until it answers, `stop()` ends the process and
keeps the folder (a restart on the same folder is "the server restarted"), `close()` also
removes the folder when the server made it itself. `with` / `async with` run start and close.
"""

from __future__ import annotations

import abc
import asyncio
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

__all__ = ["DevServer", "DevServerError", "checkout_tools"]


class DevServerError(RuntimeError):
    """A dev server could not be found, did not start, or exited before it answered."""


def _lost_a_port(log_tail: str) -> bool:
    """Whether a server's last words say a port it was given was taken (both Consul and Redis say so)."""
    return "address already in use" in log_tail.lower()


def _bindable(port: int) -> bool:
    """Whether a TCP socket can bind 127.0.0.1:`port` right now (a server answering there would
    otherwise pass for the one being started)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def checkout_tools() -> Path:
    """`.tools/bin` of the source checkout this package is imported from.

    `make consul` and `make redis` put the binaries there; with an editable install (`make
    setup`) this is the repository root's `.tools/bin`. In an installed wheel it does not
    exist, and the lookup goes on to PATH.
    """
    return Path(__file__).resolve().parents[3] / ".tools" / "bin"


class DevServer(abc.ABC):
    """One server binary as a child process; subclasses say how to run it and when it answers.

    `workdir` holds the server's log (and data, for a server that keeps some). Given, it is
    the caller's: created if missing, never removed. Left out, a fresh temporary folder is
    made, and `close()` removes it.
    """

    name: ClassVar[str]
    """The binary's name, in messages and in the temporary folder's name."""
    stop_timeout_s: ClassVar[float] = 15.0
    """How long `stop()` waits after SIGTERM before it sends SIGKILL."""
    start_timeout_s: ClassVar[float] = 20.0
    """How long `start()` waits for the server to answer, by default."""
    poll_interval_s: ClassVar[float] = 0.05
    """How often `start()` checks whether the server answers."""

    def __init__(self, workdir: Path | None) -> None:
        self._owns_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix=f"meshscope-{self.name}-")) if workdir is None else workdir
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        """How many times `start()` launched the process (each start gets a log of its own)."""
        self._port_retries = 0

    @abc.abstractmethod
    def _command(self) -> list[str]:
        """The command line of one start (the binary is looked up here, so that errors come from start)."""

    @abc.abstractmethod
    def _answers(self) -> bool:
        """Whether the server is up and serving; False while it is still starting."""

    def log_path(self, start: int | None = None) -> Path:
        """The file the `start`-th start (default: the latest) writes its stdout and stderr to."""
        return self.workdir / f"{self.name}-{self.starts if start is None else start}.log"

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float | None = None) -> None:
        """Launch the server and block until it answers (at most `timeout` s, default `start_timeout_s`).

        Raises DevServerError when the binary is missing, when the process exits first (naming
        its log), when it does not answer in time (the process is killed), or when it is
        already running.
        """
        if self.proc is not None and self.proc.poll() is None:
            raise DevServerError(f"{self.name} is already running (pid {self.proc.pid})")
        timeout = self.start_timeout_s if timeout is None else timeout
        self.workdir.mkdir(parents=True, exist_ok=True)
        first = self.starts == self._port_retries  # never launched, or only lost port races so far
        for _ in range(3):
            if not first or all(_bindable(port) for port in self._ports()):
                break
            self._pick_ports()  # taken since it was picked (see below)
        command = self._command()
        self.starts += 1
        log = self.log_path()
        with open(log, "wb") as output:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self._log_tail(log)
                if first and _lost_a_port(tail) and self._port_retries < 3:
                    # Ports are picked free but not reserved (meshscope.testing.ports): on a busy machine
                    # another process can bind one first. Only the first start may move; a restart
                    # keeps its ports, since that is what a restart means.
                    self._port_retries += 1
                    self._pick_ports()
                    self.start(max(deadline - time.monotonic(), 1.0))
                    return
                raise DevServerError(
                    f"{self.name} exited with {self.proc.returncode}; see {log}{tail and ': ' + tail}"
                )
            if self._answers():
                return
            time.sleep(self.poll_interval_s)
        self._kill()
        raise DevServerError(f"{self.name} did not answer within {timeout:g}s; see {log}")

    @abc.abstractmethod
    def _ports(self) -> list[int]:
        """The loopback TCP ports this server will listen on (checked free before its first start)."""

    @abc.abstractmethod
    def _pick_ports(self) -> None:
        """Pick fresh ports, when the first start found one taken by another process."""

    @staticmethod
    def _log_tail(log: Path, lines: int = 3) -> str:
        """The last `lines` non-empty lines of `log`, joined by " | " (so CI output says why)."""
        try:
            text = log.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join([line.strip() for line in text.splitlines() if line.strip()][-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after `stop_timeout_s`; keeps `workdir`. Safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self._kill()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL and wait: the server goes at once, with no graceful leave during which it still
        answers some requests (keeps `workdir`; `start()` again is a restart). Safe to call twice."""
        self._kill()
        self.proc = None

    def restart(self) -> None:
        """Stop, then start again on the same ports and folder."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop, and remove `workdir` if it is the temporary folder this server made. Safe to call twice."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        """`start()` in a worker thread: the event loop keeps running while the server comes up."""
        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.close)
