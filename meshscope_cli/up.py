"""`meshscope up [-f FILE] [--detach]`, `meshscope status`, `meshscope down`: the whole mesh in one command.

From a mesh file (`orchestrator/pipelines.py` reads it; DESIGN.md §11) `up` makes a plan of processes:

  consul            a Consul dev agent on `up.ports.consul` (the project-local binary, `make consul`;
                    logs at WARN), unless CONSUL_HTTP_ADDR points at one already
  redis             a redis-server on `up.ports.redis` (6380), when `up.redis` is true (REDIS_URL for every
                    agent and the bridge: sessions shared by replicas; append-only file in the state folder),
                    unless REDIS_URL points at one already
  <group>[.<n>]     `meshscope serve agents` per process group (an agent alone, or the agents naming the
                    same `process`), once per replica, on `up.ports.agents` counting up (0: any free port)
  orchestrator      `meshscope serve orchestrator -f FILE` on `up.ports.orchestrator`
  bridge            `meshscope serve bridge` on `up.ports.bridge`, its tasks in the state folder

Before anything starts, every fixed port is checked free (one line naming the port and its role, exit 2),
as is the mesh file (one line, exit 2). Then honcho's `Manager` runs them all at once (each finds the others
through Consul or retries: nothing needs an order), prefixing and interleaving their output; a watcher
thread waits until Consul has a leader, every agent replica passes its health check in Consul, and the
bridge serves the default pipeline's card (which it reads from the orchestrator), then prints the bridge
URL, the Consul UI URL and the orchestrator address and writes the state file. One process exiting stops
all of them (honcho's rule, so nothing runs half a mesh); Ctrl-C (SIGINT) or SIGTERM stops them with
SIGTERM, a second Ctrl-C with SIGKILL, and honcho itself SIGKILLs what is left after 5 s: no orphans.

Why honcho: it is the maintained Procfile runner (DESIGN.md §12); its `Manager` is the supervisor without
the Procfile. `--detach` runs the same foreground `up` as a background process (its own session, output in
`<state>/up.log`) and returns once the mesh is up; `status` and `down` find it through `<state>/up.json`.
The state folder is MESHSCOPE_STATE_DIR (default `.meshscope` in the working directory).

The supervisor never opens a gRPC channel (honcho forks a reader per process; grpc and fork do not mix):
its health checks are Consul's HTTP API and the bridge's HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshscope.cli.launch import meshscope_command
from meshscope.config import Config, ConfigError

__all__ = ["down", "plan", "running", "status", "up"]

READY_TIMEOUT_S = 300.0
"""How long `up` waits for every process to be healthy (the `local` model loads in each agent)."""
STOP_TIMEOUT_S = 30.0
"""How long `down` waits for the supervisor to stop everything before it SIGKILLs what is left."""
UP_READY = "meshscope: the mesh is up"
DETACHED = "MESHSCOPE_UP_DETACHED"
"""Set by `--detach` for the background `up` it starts (its ready line then says how to stop it)."""


class UpError(Exception):
    """`up` cannot start: a bad mesh file, a port in use, a missing binary (one line; exit 2)."""


@dataclass
class Proc:
    """One process of the plan."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int | None = None
    """The fixed port it listens on (None: it picks one), checked free before anything starts."""
    role: str = ""
    cwd: Path | None = None
    """Its working folder (made when the mesh starts, not before the checks pass)."""
    folders: list[Path] = field(default_factory=list)
    """Further folders it needs, made with `cwd`."""
    metrics_port: int | None = None
    """Its Prometheus /metrics port, when metrics are on (checked free like `port`)."""


@dataclass
class Plan:
    """What `up` runs, and where users and clients find it."""

    mesh_file: str
    procs: list[Proc]
    consul_http: str
    bridge_url: str
    orchestrator: str
    replicas: dict[str, int] = field(default_factory=dict)
    """How many passing instances each agent must have in Consul before the mesh counts as up."""
    redis_url: str | None = None


def _spread_metrics_ports(procs: Sequence[Proc], environ: Mapping[str, str]) -> None:
    """With Prometheus metrics on (OTEL_METRICS_EXPORTER names it), give each mesh process its own
    /metrics port: OTEL_EXPORTER_PROMETHEUS_PORT (default 9464) for the first, counting up in plan
    order (0 stays 0: each process picks a free port and logs it). UpError for a bad value of it,
    of any OTEL_* variable, or of MESHSCOPE_LOG_LEVEL / MESHSCOPE_LOG_FORMAT."""
    from meshscope.logs import LOG_FORMATS, LOG_LEVELS
    from meshscope.telemetry.settings import TelemetrySettings

    try:
        settings = TelemetrySettings.from_env("meshscope", environ)
        # Every process reads these at start: a bad one is the whole mesh's, said once here.
        config = Config(environ)
        config.choice("MESHSCOPE_LOG_LEVEL", "info", LOG_LEVELS)
        config.choice("MESHSCOPE_LOG_FORMAT", "text", LOG_FORMATS)
    except ConfigError as exc:
        raise UpError(str(exc)) from None
    if "prometheus" not in settings.metrics or not settings.prometheus_port:
        return
    if settings.prometheus_port + len(procs) - 1 > 65535:
        raise UpError(
            f"OTEL_EXPORTER_PROMETHEUS_PORT={settings.prometheus_port} leaves no room for {len(procs)} ports"
        )
    for offset, proc in enumerate(procs):
        proc.metrics_port = settings.prometheus_port + offset
        proc.env["OTEL_EXPORTER_PROMETHEUS_PORT"] = str(proc.metrics_port)


def state_dir(config: Config | None = None) -> Path:
    return Path((config or Config()).string("MESHSCOPE_STATE_DIR", ".meshscope")).absolute()


def _group_order(specs: Mapping[str, Any], agents: Sequence[str]) -> dict[str, list[str]]:
    """Process groups in file order: a named `process`, or the agent alone."""
    groups: dict[str, list[str]] = {}
    for name in agents:
        spec = specs.get(name)
        group = (spec.process if spec is not None else None) or name
        groups.setdefault(group, []).append(name)
    return groups


def plan(mesh_file: str, environ: Mapping[str, str], state: Path) -> Plan:
    """The processes for `mesh_file` (raises UpError for a bad file or a missing binary)."""
    from meshscope.orchestrator.pipelines import PipelineError, load_mesh

    try:
        mesh = load_mesh(mesh_file)
    except PipelineError as exc:
        raise UpError(str(exc)) from None
    if not mesh.agents:
        raise UpError(f"{mesh_file}: declares no agents")
    ports = mesh.up.ports
    base = {k: v for k, v in environ.items() if k not in ("CONSUL_HTTP_ADDR", "REDIS_URL")}
    external_redis = environ.get("REDIS_URL", "").strip()
    base["PYTHONUNBUFFERED"] = "1"
    procs: list[Proc] = []
    external_consul = environ.get("CONSUL_HTTP_ADDR", "").strip()
    consul_http = external_consul.removeprefix("http://") or f"127.0.0.1:{ports['consul']}"
    if not external_consul:
        procs.append(_consul(ports["consul"], state))
    redis_url = None
    if mesh.up.redis and external_redis:
        redis_url = external_redis
    elif mesh.up.redis:
        redis_url = f"redis://127.0.0.1:{ports['redis']}/0"
        procs.append(_redis(ports["redis"], state))
    mesh_env = {**base, "CONSUL_HTTP_ADDR": consul_http, "MESHSCOPE_DISCOVERY": "consul"}
    if redis_url:
        mesh_env["REDIS_URL"] = redis_url
    port = ports["agents"]
    replicas: dict[str, int] = {}
    for group, names in _group_order(mesh.specs, mesh.agents).items():
        spec = mesh.spec(names[0])
        for name in names:
            replicas[name] = spec.replicas
        for replica in range(1, spec.replicas + 1):
            label = group if spec.replicas == 1 else f"{group}.{replica}"
            command = meshscope_command("serve", "agents", "--agents", ",".join(names), "--port", str(port))
            if spec.model:
                command += ["--model", spec.model]
            procs.append(Proc(label, command, dict(mesh_env), port or None, f"agents {','.join(names)}"))
            if port:
                port += 1
    orchestrator = f"127.0.0.1:{ports['orchestrator']}"
    procs.append(
        Proc(
            "orchestrator",
            meshscope_command("serve", "orchestrator", "-f", str(Path(mesh_file).absolute()), "--port",
                              str(ports["orchestrator"])),
            dict(mesh_env),
            ports["orchestrator"],
            "the orchestrator",
        )
    )  # fmt: skip
    bridge_env = {
        **mesh_env,
        "MESHSCOPE_ORCHESTRATOR": orchestrator,
        "MESHSCOPE_BRIDGE_DATABASE_URL": environ.get(
            "MESHSCOPE_BRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{state / 'bridge.db'}"
        ),
    }
    procs.append(
        Proc("bridge", meshscope_command("serve", "bridge", "--port", str(ports["bridge"])), bridge_env,
             ports["bridge"], "the bridge")
    )  # fmt: skip
    _spread_metrics_ports([p for p in procs if "serve" in p.command], environ)
    return Plan(
        mesh_file=str(Path(mesh_file).absolute()),
        procs=procs,
        consul_http=consul_http,
        bridge_url=f"http://127.0.0.1:{ports['bridge']}",
        orchestrator=orchestrator,
        replicas=replicas,
        redis_url=redis_url,
    )


def _consul(http_port: int, state: Path) -> Proc:
    from meshscope.testing._process import DevServerError
    from meshscope.testing.consul import consul_binary
    from meshscope.testing.ports import free_ports

    try:
        binary = consul_binary()
    except DevServerError as exc:
        raise UpError(str(exc)) from None
    serf_lan, serf_wan, server = free_ports(3, udp=True)
    # Its own working folder and an empty config folder: a dev agent reads a `services/` folder of its
    # working directory as service definitions (the repository has one), and other files it is pointed at.
    home = state / "consul"
    config = home / "consul.d"
    command = [
        binary, "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1", "-http-port", str(http_port),
        "-serf-lan-port", str(serf_lan), "-serf-wan-port", str(serf_wan), "-server-port", str(server),
        "-dns-port", "-1", "-grpc-port", "-1", "-log-level", "warn", "-config-dir", str(config),
    ]  # fmt: skip
    return Proc("consul", command, {"PATH": os.environ.get("PATH", "")}, http_port, "Consul", home, [config])


def _redis(port: int, state: Path) -> Proc:
    from meshscope.testing._process import DevServerError
    from meshscope.testing.redis import redis_binary

    try:
        binary = redis_binary()
    except DevServerError as exc:
        raise UpError(str(exc)) from None
    folder = state / "redis"
    command = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
        "--dir", str(folder), "--daemonize", "no", "--loglevel", "warning",
    ]  # fmt: skip
    return Proc("redis", command, {"PATH": os.environ.get("PATH", "")}, port, "Redis", folder)


def preflight(procs: Sequence[Proc]) -> None:
    """Every fixed port must be free now (UpError names the first one taken, and its role)."""
    seen: dict[int, str] = {}
    wanted = [(p.port, p.role, "the mesh file's up.ports") for p in procs if p.port is not None]
    wanted += [
        (p.metrics_port, f"{p.role}'s /metrics", "OTEL_EXPORTER_PROMETHEUS_PORT")
        for p in procs
        if p.metrics_port is not None
    ]
    for port, role, where in wanted:
        if port in seen:
            raise UpError(f"port {port} is given to both {seen[port]} and {role}")
        seen[port] = role
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                raise UpError(
                    f"port {port} ({role}) is in use: stop what holds it, or set another in {where}"
                ) from None


# ------------------------------------------------------------------------------ health


def _get(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def _healthy(p: Plan) -> str | None:
    """None when the whole mesh answers; else what is still missing (for the wait's messages)."""
    try:
        if not _get(f"http://{p.consul_http}/v1/status/leader"):
            return "Consul has no leader yet"
        for agent, count in p.replicas.items():
            passing = _get(f"http://{p.consul_http}/v1/health/service/{agent}?passing=1")
            if len(passing) < count:
                return f"agent {agent}: {len(passing)} of {count} replica(s) passing"
        _get(f"{p.bridge_url}/healthz")
        _get(f"{p.bridge_url}/.well-known/agent-card.json")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"not answering yet ({exc})"
    return None


def _wait_healthy(p: Plan, manager: Any, state: Path, done: threading.Event) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    missing: str | None = "starting"
    while not done.is_set() and time.monotonic() < deadline:
        missing = _healthy(p)
        if missing is None:
            break
        done.wait(0.5)
    if done.is_set():
        return
    if missing is not None:
        print(
            f"meshscope: the mesh did not come up within {READY_TIMEOUT_S:g}s ({missing}); stopping it",
            flush=True,
        )
        manager.terminate()
        return
    pids = {name: entry.get("pid") for name, entry in manager._processes.items()}
    where = {"bridge": p.bridge_url, "consul": p.consul_http, "orchestrator": p.orchestrator,
             "model": os.environ.get("MESHSCOPE_MODEL") or "the mesh file's"}  # fmt: skip
    _write_state(state, {"pid": os.getpid(), "mesh_file": p.mesh_file, **where, "processes": pids})
    print(
        f"{UP_READY}: bridge {p.bridge_url}  |  Consul UI http://{p.consul_http}/ui  |  orchestrator "
        f"{p.orchestrator}\n          try: meshscope run analysis 'Compare gRPC and REST'  "
        f"(MESHSCOPE_ORCHESTRATOR={p.orchestrator}); stop: "
        + ("meshscope down" if os.environ.get(DETACHED) else "Ctrl-C"),
        flush=True,
    )


# ------------------------------------------------------------------------------ state


def _state_file(state: Path) -> Path:
    return state / "up.json"


def _write_state(state: Path, data: Mapping[str, Any]) -> None:
    state.mkdir(parents=True, exist_ok=True)
    tmp = _state_file(state).with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(_state_file(state))


def _read_state(state: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(_state_file(state).read_text())
    except (OSError, ValueError):
        return None
    return data


def running(state: Path) -> dict[str, Any] | None:
    """The state of the mesh `up` runs from `state` (pids, addresses), or None when none is up."""
    data = _read_state(state)
    return data if data is not None and _alive(data.get("pid")) else None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ------------------------------------------------------------------------------ commands


INFRASTRUCTURE = ("consul", "redis")
"""Stopped last: as the servers drain, they deregister from Consul and save session states in Redis."""
KILL_AFTER_S = 30.0
"""After the stop began, what is still running is SIGKILLed (the servers' drain takes ~11 s by default)."""


def _manager_class() -> Any:
    import honcho.manager
    from honcho.manager import Manager

    # honcho SIGKILLs what is left KILL_WAIT (5) seconds after a stop begins, a module constant with no
    # parameter: shorter than a server's drain (MESHSCOPE_SHUTDOWN_PAUSE_S + MESHSCOPE_SHUTDOWN_GRACE_S).
    honcho.manager.KILL_WAIT = KILL_AFTER_S

    class MeshManager(Manager):  # type: ignore[misc]
        """honcho's Manager, stopping in order: the mesh's servers first (SIGTERM: each drains), Consul and
        Redis once they have all exited; a second signal SIGKILLs everything at once."""

        _signals = 0
        _terminating: bool

        def _start(self) -> None:
            # `loop` installs honcho's handlers, then calls `_start`: these replace them.
            def signalled(signum: int, frame: object) -> None:
                self._signals += 1
                name = signal.Signals(signum).name
                if self._signals > 1:
                    self._system_print(f"{name} received again: killing every process\n")
                    self.kill()
                    return
                self._system_print(f"{name} received: stopping the mesh\n")
                self.returncode = 130 if signum == signal.SIGINT else 143
                self.terminate()

            signal.signal(signal.SIGINT, signalled)
            signal.signal(signal.SIGTERM, signalled)
            super()._start()

        def terminate(self) -> None:
            if self._terminating:  # honcho's flag: set by the first stop
                return
            self._terminating = True
            servers = [n for n in self._processes if n not in INFRASTRUCTURE]
            self._signal_each(servers)
            threading.Thread(target=self._stop_infrastructure_after, args=(servers,), daemon=True).start()

        def _signal_each(self, names: Sequence[str]) -> None:
            for name in names:
                entry = self._processes[name]
                if "returncode" not in entry and entry.get("pid"):
                    self._system_print(f"sending SIGTERM to {name} (pid {entry['pid']})\n")
                    self._procmgr.terminate(entry["pid"])

        def _stop_infrastructure_after(self, servers: Sequence[str]) -> None:
            while any("returncode" not in self._processes[n] for n in servers):
                time.sleep(0.05)
            self._signal_each([n for n in self._processes if n in INFRASTRUCTURE])

    return MeshManager


def up(mesh_file: str, detach: bool) -> int:
    """The exit status: 0 after a clean stop (or a detached start), 2 when it cannot start."""
    config = Config()
    state = state_dir(config)
    up_already = running(state)
    if up_already is not None:
        print(f"meshscope: a mesh is already up (pid {up_already['pid']}, {up_already['mesh_file']}): "
              "meshscope down first", file=sys.stderr)  # fmt: skip
        return 2
    try:
        p = plan(mesh_file, os.environ, state)
        preflight(p.procs)
        for folder in (
            state,
            *(f for proc in p.procs for f in (*([proc.cwd] if proc.cwd else []), *proc.folders)),
        ):
            folder.mkdir(parents=True, exist_ok=True)
    except (UpError, ConfigError) as exc:
        print(f"meshscope: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"meshscope: cannot make the state folder {state} (MESHSCOPE_STATE_DIR): {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    if detach:
        return _detach(mesh_file, state)
    manager = _manager_class()()
    for proc in p.procs:
        # honcho runs a shell command line; `exec` makes the shell become the process, so its pid (in
        # the state file) is the server's own and its exit status is the server's.
        command = "exec " + shlex.join(proc.command)
        manager.add_process(proc.name, command, env=proc.env, cwd=str(proc.cwd) if proc.cwd else None)
    print(f"meshscope: starting {len(p.procs)} processes from {p.mesh_file}", flush=True)
    done = threading.Event()
    watcher = threading.Thread(target=_wait_healthy, args=(p, manager, state, done), daemon=True)
    watcher.start()
    try:
        manager.loop()
    finally:
        done.set()
        with contextlib.suppress(OSError):
            _state_file(state).unlink()
    code = manager.returncode
    print("meshscope: the mesh is down", flush=True)
    return 130 if code == 130 else 0 if code in (0, 143, None) else 1


def _detach(mesh_file: str, state: Path) -> int:
    log = state / "up.log"
    with open(log, "wb") as output:
        child = subprocess.Popen(
            meshscope_command("up", "-f", mesh_file),
            env={**os.environ, DETACHED: "1"},
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + READY_TIMEOUT_S + 10
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            print(f"meshscope: the mesh did not come up (exit {child.returncode}); {log}:", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)
            return 1
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(UP_READY):
                print(line)
                print(f"meshscope: running in the background (pid {child.pid}, log {log}); "
                      "meshscope status, meshscope down")  # fmt: skip
                return 0
        time.sleep(0.2)
    child.terminate()
    print(f"meshscope: the mesh did not come up within {READY_TIMEOUT_S:g}s; see {log}", file=sys.stderr)
    return 1


def status() -> int:
    """Print each process of the running mesh; 0 when all run, 1 when some do not, 3 when none is up."""
    data = running(state_dir())
    if data is None:
        print("meshscope: no mesh is up (meshscope up starts one)")
        return 3
    print(f"mesh {data['mesh_file']} (supervisor pid {data['pid']})")
    consul, orchestrator = data["consul"], data["orchestrator"]
    print(f"  bridge {data['bridge']}  |  Consul http://{consul}/ui  |  orchestrator {orchestrator}")
    print(f"  {'PROCESS':<22} {'PID':>8}  STATE")
    down = 0
    for name, pid in data["processes"].items():
        alive = _alive(pid)
        down += not alive
        print(f"  {name:<22} {pid or '-':>8}  {'running' if alive else 'stopped'}")
    return 1 if down else 0


def down() -> int:
    """Stop the mesh `up --detach` started; 0 when it is down (or none was up)."""
    state = state_dir()
    data = running(state)
    if data is None:
        print("meshscope: no mesh is up")
        return 0
    pid = int(data["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    leftovers = [p for p in (pid, *data["processes"].values()) if _alive(p)]
    for left in leftovers:  # the supervisor did not finish in time: nothing stays behind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(left, signal.SIGKILL)  # each process leads its own group (honcho starts sessions)
    with contextlib.suppress(OSError):
        _state_file(state).unlink()
    print("meshscope: the mesh is down" + (f" ({len(leftovers)} process(es) killed)" if leftovers else ""))
    return 0
