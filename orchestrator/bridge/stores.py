"""Where the bridge keeps tasks: a2a-sdk's database stores, SQLite or PostgreSQL.

- tasks: `VersionedDatabaseTaskStore` (a2a-sdk's `a2a.server.cluster`): each task with a version,
  and every event that changed it appended to a `task_events` table in the same transaction. A
  writer holding a stale copy gets `ConcurrentTaskModificationError` instead of overwriting a
  newer one (upstream a2a-python #1188, a replica resuming from a stale task copy), and a cancel
  recorded by one replica stops the run on the replica executing it at its next write.
- events across replicas: `DatabaseTaskEventStream` reads that table, so SubscribeToTask on a
  replica that is not running the task serves the task as stored, then every later event, in
  order, each once (MESHSCOPE_BRIDGE_POLL_INTERVAL_S apart at most). On the replica running it,
  a subscriber taps the live stream instead. Either way a client whose stream broke subscribes
  again and gets the task as it now is, then what follows: nothing it missed is lost and nothing
  after the snapshot comes twice.
- push-notification configs: `DatabasePushNotificationConfigStore`, in the same database.

MESHSCOPE_BRIDGE_DATABASE_URL picks the database: `sqlite+aiosqlite:///<file>` (the default,
`.meshscope/bridge.db` under the working directory: embedded, nothing to start, one bridge
process), `postgresql+asyncpg://user:password@host/db` (several bridge replicas share it), or
`memory` (a2a-sdk's in-memory stores: one process, tasks lost when it exits; for development and
for measuring the bridge without its store).
SQLite runs in WAL mode with a busy timeout, so concurrent runs wait for the write lock rather
than fail. The tables are created at start when missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from a2a.server.cluster import (
    DatabaseTaskEventStream,
    TaskEventStream,
    VersionedDatabaseTaskStore,
    VersionedTaskStore,
)
from a2a.server.tasks import (
    DatabasePushNotificationConfigStore,
    InMemoryPushNotificationConfigStore,
    InMemoryTaskStore,
    PushNotificationConfigStore,
    TaskStore,
)
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["TaskStores", "open_stores"]

MEMORY = "memory"
"""MESHSCOPE_BRIDGE_DATABASE_URL's value for tasks in this process's memory (a2a-sdk's in-memory stores)."""
SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long an SQLite writer waits for the lock (concurrent runs each write per event)."""


@dataclass
class TaskStores:
    """The bridge's stores (over one engine, or in memory); `close` disposes of its connections."""

    tasks: VersionedTaskStore | TaskStore
    events: TaskEventStream | None
    """None in memory: one process, nobody else to tell."""
    push_configs: PushNotificationConfigStore
    engine: AsyncEngine | None = None

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _make_folder_of(path: str) -> None:
    """SQLite creates its file but not the folders above it (`.meshscope/` on a first start)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


async def open_stores(database_url: str, *, poll_interval_s: float) -> TaskStores:
    """Connect, create the tables when missing, and return the stores.

    Raises OSError (an SQLite folder that cannot be made) or SQLAlchemy's `DBAPIError` / `OSError`
    (a database that cannot be reached); the caller reports either in one line.
    """
    if database_url == MEMORY:
        return TaskStores(InMemoryTaskStore(), None, InMemoryPushNotificationConfigStore())
    url = make_url(database_url)
    options: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            _make_folder_of(url.database)
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    else:
        options["pool_pre_ping"] = True
    engine = create_async_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    try:
        tasks = VersionedDatabaseTaskStore(engine)
        events = DatabaseTaskEventStream(engine, poll_interval_s=poll_interval_s)
        push_configs = DatabasePushNotificationConfigStore(engine)
        await tasks.initialize()
        await events.initialize()
        await push_configs.initialize()
    except BaseException:
        await engine.dispose()
        raise
    return TaskStores(tasks, events, push_configs, engine)
