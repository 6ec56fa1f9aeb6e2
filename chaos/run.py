"""One chaos run: a mesh under load, six faults one after another, then the books are checked.

Faults, each while CLIENTS A2A clients stream runs through the bridge (`chaos.load`):

  kill-replica    SIGKILL one agent replica; runs that fail before streaming anything: must be 0 (the
                  orchestrator retries them on the other replica). Recovery: until the replica is out
                  of rotation (the orchestrator lists it as not passing, or not at all).
  term-replica    SIGTERM one replica, as a rolling restart does, and start it again: 0 failed runs.
                  Recovery: its drain (until it exited).
  restart-consul  stop and start Consul (a dev agent: it comes back empty): 0 failed runs.
                  Recovery: until every replica is registered and passing again.
  restart-redis   stop Redis (SIGTERM: the AOF is flushed) and start it: runs in flight while it is
                  down may fail, none started after it is back; no acknowledged turn lost and no transcript
                  line written twice (checked at the end, over the whole run). Recovery: until a run
                  started after it completes.
  kill-bridge     SIGKILL the bridge, start it again on the same address with its SQLite task store:
                  the runs it cut, and runs sent while it was down, may fail, none after; every task
                  readable, no task left running, each stream the kill broke resumable (the stored
                  task's artifacts start with exactly the chunks the client saw).
                  Recovery: until a run started after the restart completes.
  stall-redis     SIGSTOP Redis for longer than the socket timeout, then SIGCONT: runs in flight during
                  the stall may fail, none started after; the mesh recovers by itself, and no session
                  stays locked (checked at the end). Recovery: until a run started after SIGCONT completes.

A fault's window runs from its injection until every run that was in flight before it was repaired
has ended, so each such run is judged by that fault's rule; a run that fails outside every window
is counted against the run at the end.

At the end the load stops and the books are checked: no failed run outside a window; every task the
clients saw is readable, and no task in the store (ListTasks) is left SUBMITTED or WORKING; every
completed run's user line is in its session's transcript exactly once (and no line is there twice);
no lock key is left in Redis once the lock TTL has passed; every client's session takes one more
turn; no traceback in the log of any process, every life of a restarted one included (and the
SIGTERMed replica must exit 0).
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
    outage: tuple[float, float] = (0.0, 0.0)
    """When what the fault took away was gone (time.monotonic()): from the injection until it was
    back (the process restarted and serving, Redis answering again)."""
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
    began = time.monotonic()
    mesh.signal_replica(0, signal.SIGKILL)
    result.recovery_s = await until(lambda: _not_passing(mesh, mesh.replica_id(0)), timeout=30)
    result.recovery_what = "replica out of rotation"
    mesh.wait_replica(0)
    mesh.start_replica(0)
    if await until(lambda: all_passing(mesh), timeout=30) is None:
        result.notes.append("the restarted replica did not come back passing")
    result.outage = (began, time.monotonic())


async def _not_passing(mesh: ChaosMesh, replica_id: str) -> bool:
    return await replica_health(mesh, replica_id) != "passing"


async def term_replica(mesh: ChaosMesh, load: Load, result: FaultResult) -> None:
    began = time.monotonic()
    mesh.signal_replica(1, signal.SIGTERM)
    status = await asyncio.to_thread(mesh.wait_replica, 1)
    result.recovery_s = time.monotonic() - began
    result.recovery_what = "replica drained and exited"
    if status != 0:  # a drain that crashed is a failure even if no run saw it
        result.not_allowed += 1
        result.notes.append(f"the SIGTERMed replica exited {status}, not 0")
    mesh.start_replica(1)
    if await until(lambda: all_passing(mesh), timeout=30) is None:
        result.notes.append("the restarted replica did not come back passing")
    result.outage = (began, time.monotonic())


async def restart_consul(mesh: ChaosMesh, load: Load, result: FaultResult) -> None:
    began = time.monotonic()
    await asyncio.to_thread(mesh.consul.stop)
    await asyncio.to_thread(mesh.consul.start)
    result.recovery_s = await until(lambda: registered_in_consul(mesh), timeout=60)
    result.recovery_what = "every replica re-registered, passing"
    result.outage = (began, time.monotonic())


async def restart_redis(mesh: ChaosMesh, load: Load, result: FaultResult) -> None:
    began = time.monotonic()
    await asyncio.to_thread(mesh.redis.stop)  # SIGTERM: Redis flushes its AOF and exits
    await asyncio.to_thread(mesh.redis.start)
    back = time.monotonic()
    result.outage = (began, back)
    result.recovery_s = await until(completed_after(load, back), timeout=60)
    result.recovery_what = "a run started after the restart completed"


async def kill_bridge(mesh: ChaosMesh, load: Load, result: FaultResult) -> None:
    began = time.monotonic()
    await asyncio.to_thread(mesh.kill_bridge)
    await asyncio.to_thread(mesh.start_bridge)
    back = time.monotonic()
    result.outage = (began, back)
    result.recovery_s = await until(completed_after(load, back), timeout=60)
    result.recovery_what = "a run started after the restart completed"


async def stall_redis(mesh: ChaosMesh, load: Load, result: FaultResult) -> None:
    assert mesh.redis.proc is not None
    began = time.monotonic()
    mesh.redis.proc.send_signal(signal.SIGSTOP)
    await asyncio.sleep(float(ENV["MESHSCOPE_REDIS_SOCKET_TIMEOUT_S"]) * 3)
    mesh.redis.proc.send_signal(signal.SIGCONT)
    back = time.monotonic()
    result.outage = (began, back)
    result.recovery_s = await until(completed_after(load, back), timeout=60)
    result.recovery_what = "a run started after SIGCONT completed"


def _during_outage(record: RunRecord, result: FaultResult) -> bool:
    """The run was in flight while what the fault took away was gone (it started before it was back)."""
    return record.started < result.outage[1]


Fault = Callable[[ChaosMesh, Load, FaultResult], Awaitable[None]]
FAULTS: dict[str, tuple[Fault, Callable[[RunRecord, FaultResult], bool]]] = {
    # name: (inject and recover, which failed runs the fault's rule allows)
    "kill-replica": (kill_replica, lambda r, f: r.streamed),  # on the killed replica, after its first event
    "term-replica": (term_replica, lambda r, f: False),
    "restart-consul": (restart_consul, lambda r, f: False),
    "restart-redis": (restart_redis, _during_outage),  # runs may fail while Redis is down, not after
    "kill-bridge": (kill_bridge, _during_outage),  # the streams the kill cut, and runs sent meanwhile
    "stall-redis": (stall_redis, _during_outage),
}


# ---------------------------------------------------------------- the books


async def check_tasks(mesh: ChaosMesh, load: Load) -> dict[str, int]:
    """Every task a client saw readable; no task in the store unfinished; each broken stream's chunks
    a prefix of its stored artifacts (nothing the client got is missing from the task, none came
    twice before the break)."""
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
            if record.outcome == "broken":
                stored = "".join("".join(p.text for p in a.parts) for a in task.artifacts)
                if not stored.startswith("".join(record.chunks)):
                    resumed_wrong += 1
        # Every task in the store, the ones no client saw the id of included (a stream cut before
        # its first event): none may be left running.
        for state in (a2a_pb2.TASK_STATE_SUBMITTED, a2a_pb2.TASK_STATE_WORKING):
            token = ""
            while True:
                page = await client.list_tasks(
                    a2a_pb2.ListTasksRequest(status=state, page_size=100, page_token=token)
                )
                unfinished += len(page.tasks)
                token = page.next_page_token
                if not token:
                    break
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
        windows: list[tuple[float, float]] = []
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
            back = result.outage[1] or time.monotonic()

            async def outage_runs_ended(back: float = back) -> bool:  # each run that saw it: judged here
                return not any(r.started < back for r in load.in_flight.values())

            await until(outage_runs_ended, timeout=120, interval=0.1)
            ended = time.monotonic()
            windows.append((began, ended))
            window = [r for r in load.overlapping(began, ended) if r.ended]
            result.rate_during = load.completed_between(began, ended) / (ended - began)
            result.runs = len(window)
            failed = [r for r in window if r.outcome != "completed"]
            result.failed = len(failed)
            result.not_allowed += sum(1 for r in failed if not allowed(r, result))
            result.notes += sorted({f"{r.outcome}: {r.reason}: {r.message[:120]}" for r in failed})[:6]
            report.faults.append(result)
            counted = f"{result.failed} failed ({result.not_allowed} not allowed)"
            echo(f"chaos: {name}: {counted}, recovery {result.recovery_s}")
        await load.stop()
        report.checks["runs failed outside every fault's window"] = sum(
            1
            for r in load.runs
            if r.outcome != "completed"
            and not any(r.started < end and r.ended >= start for start, end in windows)
        )
        report.runs = len(load.runs)
        report.completed = sum(1 for r in load.runs if r.outcome == "completed")
        report.checks |= await check_tasks(mesh, load)
        report.checks |= await check_transcripts(mesh, load)
        report.checks |= await check_locks(mesh)
        report.checks |= await check_sessions_take_turns(mesh, load)
    finally:
        await asyncio.to_thread(mesh.stop)
    report.checks["tracebacks in the mesh's logs (every process life)"] = sum(
        1 for _, lines in mesh.logs() for line in lines if "Traceback" in line
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
