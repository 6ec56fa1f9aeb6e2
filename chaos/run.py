"""One chaos run: a mesh under load, six faults one after another, then the books are checked.

Faults, each while CLIENTS A2A clients stream runs through the bridge (`chaos.load`):

  kill-replica    SIGKILL one agent replica; runs that fail before streaming anything: must be 0 (the
                  orchestrator retries them on the other replica). Recovery: until the replica is out
                  of rotation (the orchestrator lists it as not passing, or not at all).
  term-replica    SIGTERM one replica, as a rolling restart does, and start it again: 0 failed runs.
                  Recovery: its drain (until it exited).
  restart-consul  stop and start Consul (a dev agent: it comes back empty): 0 failed runs.
                  Recovery: until every replica is registered and passing again.
  restart-redis   stop Redis (SIGTERM: the AOF is flushed) and start it: runs may fail while it is
                  down; no acknowledged turn lost and no transcript line written twice (checked at the
                  end, over the whole run). Recovery: until a run started after it completes.
  kill-bridge     SIGKILL the bridge, start it again on the same address with its SQLite task store:
                  every task readable, no task left running, each stream the kill broke resumable
                  (the stored task holds every chunk the client saw, in order, once).
                  Recovery: until a run started after the restart completes.
  stall-redis     SIGSTOP Redis for longer than the socket timeout, then SIGCONT: the mesh recovers
                  by itself, and no session stays locked (checked at the end). Recovery: until a run
                  started after SIGCONT completes.

At the end the load stops and the books are checked: every task the clients saw is readable and
finished; every completed run's user line is in its session's transcript exactly once (and no line
is there twice); no lock key is left in Redis once the lock TTL has passed; every client's session
takes one more turn.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from a2a.client import ClientConfig, ClientFactory
from a2a.types import a2a_pb2

from chaos.load import Load, RunRecord
from chaos.mesh import AGENT, ENV, ChaosMesh
from meshscope.orchestrator.client import OrchestratorClient

__all__ = ["FAULTS", "ChaosReport", "FaultResult", "run_chaos"]

SETTLE_S = 2.0
"""After a fault has recovered, how long the window stays open (runs that straddle the recovery)."""
WARM_UP_S = 120.0
"""At most this long for every client to complete a first run before the first fault."""


@dataclass
class FaultResult:
    name: str
    run_s_before: float = 0.0
    """Median duration of the runs completed in the steady phase before the fault (its recovery times
    include a run's duration, under the same load)."""
    rate_before: float = 0.0
    rate_during: float = 0.0
    runs: int = 0
    failed: int = 0
    """Runs in the window that failed or whose stream broke."""
    not_allowed: int = 0
    """Of those, the ones the fault's rule does not allow."""
    recovery_s: float | None = None
    recovery_what: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class ChaosReport:
    clients: int
    faults: list[FaultResult] = field(default_factory=list)
    checks: dict[str, int] = field(default_factory=dict)
    """End-of-run books: each is a count of what went wrong (0 expected)."""
    runs: int = 0
    completed: int = 0

    @property
    def passed(self) -> bool:
        return all(f.not_allowed == 0 and f.recovery_s is not None for f in self.faults) and not any(
            self.checks.values()
        )

    def table(self) -> str:
        head = (
            f"{'fault':<15} {'load held':>13} {'run p50':>8} {'runs':>5} {'failed':>6} {'not allowed':>11} "
            f"{'recovery':>9}  measured"
        )
        lines = [head, "-" * len(head)]
        for f in self.faults:
            held = f"{f.rate_during:5.1f}/{f.rate_before:5.1f}/s"
            recovery = "never" if f.recovery_s is None else f"{f.recovery_s:7.2f}s"
            counts = f"{f.run_s_before:7.2f}s {f.runs:>5} {f.failed:>6} {f.not_allowed:>11}"
            lines.append(f"{f.name:<15} {held:>13} {counts} {recovery:>9}  {f.recovery_what}")
        lines.append("")
        lines.append(f"end of run ({self.runs} runs, {self.completed} completed, {self.clients} clients):")
        for name, count in self.checks.items():
            lines.append(f"  {name:<52} {count}")
        lines.append(f"verdict: {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


# ---------------------------------------------------------------- polling


async def until(probe: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.02) -> float | None:
    """Seconds until `probe()` holds (None: not within `timeout`)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            if await probe():
                return time.monotonic() - began
        except Exception:  # the thing asked is down: keep asking
            pass
        await asyncio.sleep(interval)
    return None


async def replica_health(mesh: ChaosMesh, replica_id: str) -> str:
    async with OrchestratorClient(mesh.orchestrator_address) as client:
        response = await client.list_agents(timeout=2)
    for agent in response.agents:
        for replica in agent.replicas:
            if replica.id == replica_id:
                return str(replica.health)
    return "absent"


async def all_passing(mesh: ChaosMesh) -> bool:
    for index in range(len(mesh.ports)):
        if await replica_health(mesh, mesh.replica_id(index)) != "passing":
            return False
    return True


async def registered_in_consul(mesh: ChaosMesh) -> bool:
    async with httpx.AsyncClient(timeout=2) as http:
        response = await http.get(f"http://{mesh.consul.http_addr}/v1/health/service/{AGENT}?passing=1")
    return response.status_code == 200 and len(response.json()) == len(mesh.ports)


def completed_after(load: Load, moment: float) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return any(r.outcome == "completed" and r.started >= moment for r in load.runs)

    return probe


# ---------------------------------------------------------------- the faults


async def kill_replica(mesh: ChaosMesh, load: Load, result: FaultResult) -> None:
    mesh.signal_replica(0, signal.SIGKILL)
    result.recovery_s = await until(lambda: _not_passing(mesh, mesh.replica_id(0)), timeout=30)
    result.recovery_what = "replica out of rotation"
    mesh.wait_replica(0)
    mesh.start_replica(0)
    if await until(lambda: all_passing(mesh), timeout=30) is None:
        result.notes.append("the restarted replica did not come back passing")


async def _not_passing(mesh: ChaosMesh, replica_id: str) -> bool:
    return await replica_health(mesh, replica_id) != "passing"


async def term_replica(mesh: ChaosMesh, load: Load, result: FaultResult) -> None:
    began = time.monotonic()
    mesh.signal_replica(1, signal.SIGTERM)
    await asyncio.to_thread(mesh.wait_replica, 1)
    result.recovery_s = time.monotonic() - began
    result.recovery_what = "replica drained and exited"
    mesh.start_replica(1)
    if await until(lambda: all_passing(mesh), timeout=30) is None:
        result.notes.append("the restarted replica did not come back passing")


async def restart_consul(mesh: ChaosMesh, load: Load, result: FaultResult) -> None:
    await asyncio.to_thread(mesh.consul.stop)
    await asyncio.to_thread(mesh.consul.start)
    result.recovery_s = await until(lambda: registered_in_consul(mesh), timeout=60)
    result.recovery_what = "every replica re-registered, passing"


async def restart_redis(mesh: ChaosMesh, load: Load, result: FaultResult) -> None:
    await asyncio.to_thread(mesh.redis.stop)  # SIGTERM: Redis flushes its AOF and exits
    await asyncio.to_thread(mesh.redis.start)
    back = time.monotonic()
    result.recovery_s = await until(completed_after(load, back), timeout=60)
    result.recovery_what = "a run started after the restart completed"


async def kill_bridge(mesh: ChaosMesh, load: Load, result: FaultResult) -> None:
    await asyncio.to_thread(mesh.kill_bridge)
    await asyncio.to_thread(mesh.start_bridge)
    back = time.monotonic()
    result.recovery_s = await until(completed_after(load, back), timeout=60)
    result.recovery_what = "a run started after the restart completed"


async def stall_redis(mesh: ChaosMesh, load: Load, result: FaultResult) -> None:
    assert mesh.redis.proc is not None
    mesh.redis.proc.send_signal(signal.SIGSTOP)
    await asyncio.sleep(float(ENV["MESHSCOPE_REDIS_SOCKET_TIMEOUT_S"]) * 3)
    mesh.redis.proc.send_signal(signal.SIGCONT)
    back = time.monotonic()
    result.recovery_s = await until(completed_after(load, back), timeout=60)
    result.recovery_what = "a run started after SIGCONT completed"


Fault = Callable[[ChaosMesh, Load, FaultResult], Awaitable[None]]
FAULTS: dict[str, tuple[Fault, Callable[[RunRecord], bool]]] = {
    # name: (inject and recover, which failed runs the fault's rule allows)
    "kill-replica": (kill_replica, lambda r: r.streamed),
    "term-replica": (term_replica, lambda r: False),
    "restart-consul": (restart_consul, lambda r: False),
    "restart-redis": (restart_redis, lambda r: True),
    "kill-bridge": (kill_bridge, lambda r: True),
    "stall-redis": (stall_redis, lambda r: True),
}


# ---------------------------------------------------------------- the books


async def check_tasks(mesh: ChaosMesh, load: Load) -> dict[str, int]:
    """Every task readable and finished; each broken stream's chunks stored in order, once."""
    unreadable = unfinished = resumed_wrong = 0
    config = ClientConfig(streaming=False, httpx_client=httpx.AsyncClient(timeout=30))
    client = await ClientFactory(config).create_from_url(f"{mesh.bridge_url}/agents/{AGENT}")
    try:
        for record in (r for r in load.runs if r.task_id):
            try:
                task = await client.get_task(a2a_pb2.GetTaskRequest(id=record.task_id))
            except Exception:
                unreadable += 1
                continue
            if task.status.state in (a2a_pb2.TASK_STATE_SUBMITTED, a2a_pb2.TASK_STATE_WORKING):
                unfinished += 1
            if record.outcome == "broken":
                stored = "".join("".join(p.text for p in a.parts) for a in task.artifacts)
                if not stored.startswith("".join(record.chunks)):
                    resumed_wrong += 1
    finally:
        await client.close()
    return {
        "tasks unreadable": unreadable,
        "tasks left running": unfinished,
        "broken streams not resumable without loss or repeat": resumed_wrong,
    }


async def check_transcripts(mesh: ChaosMesh, load: Load) -> dict[str, int]:
    lost = duplicated = 0
    async with OrchestratorClient(mesh.orchestrator_address) as client:
        for context in load.contexts:
            lines = [line async for line in client.history(context)]
            said = Counter(line.text for line in lines if line.role == "user")
            duplicated += sum(count - 1 for count in said.values() if count > 1)
            answers = Counter(line.text for line in lines if line.role == "assistant")
            duplicated += sum(count - 1 for count in answers.values() if count > 1)
            for record in load.runs:
                if record.context_id == context and record.outcome == "completed" and not said[record.text]:
                    lost += 1
    return {"acknowledged turns lost from the transcript": lost, "transcript lines written twice": duplicated}


async def check_locks(mesh: ChaosMesh) -> dict[str, int]:
    import redis.asyncio as redis

    ttl_s = float(ENV["MESHSCOPE_SESSION_LOCK_TTL_S"])
    client = redis.Redis.from_url(mesh.redis.url)
    try:

        async def no_locks() -> bool:
            return not [key async for key in client.scan_iter(match="*:lock:*")]

        cleared = await until(no_locks, timeout=ttl_s + 5, interval=0.2)
        left = len([key async for key in client.scan_iter(match="*:lock:*")])
    finally:
        await client.aclose()
    return {"session locks left after the lock TTL": left if cleared is None else 0}


async def check_sessions_take_turns(mesh: ChaosMesh, load: Load) -> dict[str, int]:
    config = ClientConfig(streaming=False, httpx_client=httpx.AsyncClient(timeout=60))
    client = await ClientFactory(config).create_from_url(f"{mesh.bridge_url}/agents/{AGENT}")
    refused = 0
    try:
        for context in load.contexts:
            message = a2a_pb2.Message(
                message_id=f"final-{context}",
                role=a2a_pb2.ROLE_USER,
                context_id=context,
                parts=[a2a_pb2.Part(text="one more turn")],
            )
            items = [item async for item in client.send_message(a2a_pb2.SendMessageRequest(message=message))]
            tasks = [i.task for i in items if i.HasField("task")]
            if not tasks or tasks[-1].status.state != a2a_pb2.TASK_STATE_COMPLETED:
                refused += 1
    finally:
        await client.close()
    return {"sessions that could not take another turn": refused}


# ---------------------------------------------------------------- the run


async def run_chaos(
    folder: Path,
    clients: int,
    faults: Sequence[str],
    echo: Callable[[str], None] = print,
    steady_s: float = 3.0,
) -> ChaosReport:
    """Start the mesh, hold `clients` clients of load (warmed up: each has completed a run), inject
    `faults` in order, each after `steady_s` of undisturbed load, and check the books."""
    mesh = ChaosMesh(folder)
    report = ChaosReport(clients)
    await asyncio.to_thread(mesh.start)
    load = Load(mesh.bridge_url, AGENT, clients)
    try:
        await load.start()

        async def warm() -> bool:
            return len({r.client for r in load.runs if r.outcome == "completed"}) == clients

        await until(warm, timeout=WARM_UP_S, interval=0.2)
        for name in faults:
            inject, allowed = FAULTS[name]
            steady_from = time.monotonic()
            await asyncio.sleep(steady_s)
            began = time.monotonic()
            steady = [r for r in load.runs if r.outcome == "completed" and steady_from <= r.ended < began]
            result = FaultResult(
                name,
                run_s_before=statistics.median(r.ended - r.started for r in steady) if steady else 0.0,
                rate_before=len(steady) / (began - steady_from),
            )
            echo(f"chaos: {name} ...")
            await inject(mesh, load, result)
            await asyncio.sleep(SETTLE_S)
            ended = time.monotonic()
            window = [r for r in load.overlapping(began, ended) if r.ended]
            result.rate_during = load.completed_between(began, ended) / (ended - began)
            result.runs = len(window)
            failed = [r for r in window if r.outcome != "completed"]
            result.failed = len(failed)
            result.not_allowed = sum(1 for r in failed if not allowed(r))
            result.notes += sorted({f"{r.outcome}: {r.reason}: {r.message[:120]}" for r in failed})[:6]
            report.faults.append(result)
            counted = f"{result.failed} failed ({result.not_allowed} not allowed)"
            echo(f"chaos: {name}: {counted}, recovery {result.recovery_s}")
        await load.stop()
        report.runs = len(load.runs)
        report.completed = sum(1 for r in load.runs if r.outcome == "completed")
        report.checks |= await check_tasks(mesh, load)
        report.checks |= await check_transcripts(mesh, load)
        report.checks |= await check_locks(mesh)
        report.checks |= await check_sessions_take_turns(mesh, load)
    finally:
        await asyncio.to_thread(mesh.stop)
    report.checks["tracebacks in the mesh's logs"] = sum(
        1 for lines in mesh.logs().values() for line in lines if "Traceback" in line
    )
    return report


def summary(report: ChaosReport) -> dict[str, Any]:
    """The report as JSON-ready data (docs/chaos.md's table is made from it)."""
    return {
        "clients": report.clients,
        "runs": report.runs,
        "completed": report.completed,
        "faults": [f.__dict__ for f in report.faults],
        "checks": report.checks,
        "passed": report.passed,
        "median_rate_before": statistics.median(f.rate_before for f in report.faults) if report.faults else 0,
    }
