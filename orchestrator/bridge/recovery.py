"""Tasks a killed bridge left running: found at the next start, and ended FAILED.

A bridge that stops gracefully ends its running tasks itself (`Bridge.drain`). One that is killed
(SIGKILL, a crash, a lost machine) cannot: its tasks stay WORKING in the store, their runs already
cancelled with the bridge's connection to the orchestrator, and a client that resubscribes would
wait forever. So every run records which bridge runs it (`meshscope.bridge` in the task's
metadata: `<host>:<port>/<boot id>`, the bridge's address and a fresh id per process start), and a
bridge starting on the same address ends the unfinished tasks of its earlier lives: FAILED,
retryable, reason CUT_OFF, with a message saying so, written like any task event (subscribers on
other replicas get it through the event table). The task's history and the artifacts it had
streamed stay as stored: a client that resubscribes or reads it gets everything it missed and the
end.

A replica that comes back on another address (a Kubernetes Deployment's new pod) does not find the
tasks of the pod it replaces; those stay WORKING (docs/bridge.md, "Persistence").
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.server.models import TaskModel
from a2a.server.owner_resolver import resolve_user_scope
from a2a.types import a2a_pb2
from google.protobuf import timestamp_pb2
from sqlalchemy import select

from meshscope.orchestrator.bridge.stores import TaskStores

__all__ = ["BRIDGE_KEY", "BridgeInstance", "fail_orphans"]

log = logging.getLogger(__name__)

BRIDGE_KEY = "meshscope.bridge"
"""Task metadata: the bridge instance that runs (or ran) the task's latest run."""
_UNFINISHED = ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")


class BridgeInstance:
    """This bridge process: its address (`host:port`, the slot a restart comes back to) and boot id."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.boot = uuid.uuid4().hex[:12]
        self.id = f"{address}/{self.boot}"

    def earlier_life(self, recorded: object) -> bool:
        """Whether `recorded` names an earlier process on this bridge's address."""
        return isinstance(recorded, str) and recorded.startswith(self.address + "/") and recorded != self.id


class _Owner(User):
    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def is_authenticated(self) -> bool:
        return bool(self._name)

    @property
    def user_name(self) -> str:
        return self._name


async def fail_orphans(stores: TaskStores, instance: BridgeInstance) -> int:
    """End FAILED every unfinished task an earlier process on `instance.address` left (see the module
    docstring); how many. Nothing to do in memory (nothing survives a restart)."""
    if stores.engine is None:
        return 0
    from a2a.server.cluster.database_task_store import VersionedDatabaseTaskStore
    from a2a.server.cluster.task_store import ConcurrentTaskModificationError

    assert isinstance(stores.tasks, VersionedDatabaseTaskStore)
    # Only unfinished tasks are read (a filter in the database: the table holds every task ever run),
    # and only the columns needed to tell whose they are.
    query = select(TaskModel.id, TaskModel.owner, TaskModel.task_metadata).where(
        TaskModel.status["state"].as_string().in_(_UNFINISHED)
    )
    orphans: list[tuple[str, str]] = []
    async with stores.engine.connect() as connection:
        async for task_id, owner, recorded in await connection.stream(query):
            if instance.earlier_life((recorded or {}).get(BRIDGE_KEY)):
                orphans.append((task_id, owner or ""))
    ended = 0
    for task_id, owner in orphans:
        context = ServerCallContext(user=_Owner(owner))
        assert resolve_user_scope(context) == owner
        stored = await stores.tasks.get(task_id, context)
        if stored is None or stored.task.status.state not in (
            a2a_pb2.TASK_STATE_SUBMITTED,
            a2a_pb2.TASK_STATE_WORKING,
        ):
            continue  # finished meanwhile
        task = stored.task
        status = a2a_pb2.TaskStatus(state=a2a_pb2.TASK_STATE_FAILED)
        status.timestamp.CopyFrom(_now())
        status.message.CopyFrom(
            a2a_pb2.Message(
                message_id=uuid.uuid4().hex,
                role=a2a_pb2.ROLE_AGENT,
                task_id=task.id,
                context_id=task.context_id,
                parts=[
                    a2a_pb2.Part(
                        text="UNAVAILABLE: the bridge running this task stopped before the task ended; "
                        "send the message again"
                    )
                ],
            )
        )
        metadata: dict[str, str | bool] = {
            "meshscope.code": "UNAVAILABLE",
            "meshscope.reason": "ERROR_REASON_CUT_OFF",
            "meshscope.retryable": True,
            "meshscope.streamed": bool(task.artifacts),
        }
        task.status.CopyFrom(status)
        task.metadata.update(metadata)
        event = a2a_pb2.TaskStatusUpdateEvent(task_id=task.id, context_id=task.context_id, status=status)
        event.metadata.update(metadata)
        try:
            await stores.tasks.save(
                task, event=event, prev=None, prev_version=stored.version, context=context
            )
        except ConcurrentTaskModificationError:
            continue  # written meanwhile (cancelled through another replica): that write stands
        ended += 1
    if ended:
        log.warning(
            "ended %d task(s) an earlier bridge on %s left running: FAILED, retryable",
            ended,
            instance.address,
        )
    return ended


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return stamp
