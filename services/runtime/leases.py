"""Keeping the session locks of running turns alive, from one task per process.

A session lock is a lease with a TTL (`SessionStore.acquire`); a turn that
runs longer than the TTL must renew it or another replica could start a turn
in the same session. Renewing from a task per turn costs a task creation and
a cancellation on every turn, and bench/agent_path.py showed that churn in the
64-client throughput, although almost no turn lives long enough to need a
renewal. So one task renews every lease held in this process that is older
than a third of the TTL, and exits when there is nothing left to keep.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from services.runtime.state import SessionStore, StateKey

log = logging.getLogger("meshscope.leases")


@dataclass(slots=True)
class _Lease:
    key: StateKey
    renewed_at: float


class LeaseKeeper:
    """Renews the locks `hold` was told about until `drop`; one renewal task at most."""

    def __init__(self, store: SessionStore, ttl_s: float) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._held: dict[str, _Lease] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def renew_after_s(self) -> float:
        """A lease is renewed once it is this old: a third of the TTL."""
        return self._ttl_s / 3

    def hold(self, key: StateKey, owner: str) -> None:
        """Keep `owner`'s freshly acquired lock on `key` alive until `drop(owner)`."""
        self._held[owner] = _Lease(key, time.monotonic())
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="meshscope-lease-keeper")

    def drop(self, owner: str) -> None:
        """Stop renewing `owner`'s lock (its turn ended; the caller releases it)."""
        self._held.pop(owner, None)

    async def close(self) -> None:
        """Stop the renewal task (at shutdown, after the last turn)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        # Waking every sixth of the TTL renews each lease when it is between a
        # third and a half of the TTL old: well before it could expire.
        while self._held:
            await asyncio.sleep(self._ttl_s / 6)
            now = time.monotonic()
            due = [
                (owner, lease)
                for owner, lease in self._held.items()
                if now - lease.renewed_at >= self.renew_after_s
            ]
            # Concurrently: one slow renewal must not hold up the others.
            await asyncio.gather(*(self._renew(owner, lease) for owner, lease in due))

    async def _renew(self, owner: str, lease: _Lease) -> None:
        key = lease.key
        try:
            held = await self._store.renew(key.session_id, key.agent, owner, self._ttl_s)
        except Exception as exc:  # keep trying: the lease may still outlive the outage
            log.warning("could not renew the lock of session %r: %s", key.session_id, exc)
            return
        if owner not in self._held:  # the turn ended while the renewal was in flight
            return
        if held:
            lease.renewed_at = time.monotonic()
        else:
            log.warning("lock of session %r for %r was lost while its turn ran", key.session_id, key.agent)
            self._held.pop(owner, None)
