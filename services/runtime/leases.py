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
import functools
import logging
import time
from dataclasses import dataclass

from meshscope.services.runtime.state import SessionStore, StateKey

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
        self._renewing: dict[str, asyncio.Task[None]] = {}
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
        """Stop the renewal task and any renewal in flight (at shutdown, after the last turn)."""
        tasks = [*self._renewing.values(), *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        # Waking every sixth of the TTL renews each lease when it is between a
        # third and a half of the TTL old: well before it could expire. Each renewal
        # runs in its own task, so one stuck call (a store timing out) delays no other
        # lease; a lease whose renewal is still in flight is not renewed twice.
        while self._held:
            await asyncio.sleep(self._ttl_s / 6)
            now = time.monotonic()
            for owner, lease in list(self._held.items()):
                if owner in self._renewing or now - lease.renewed_at < self.renew_after_s:
                    continue
                renewal = asyncio.get_running_loop().create_task(self._renew(owner, lease))
                self._renewing[owner] = renewal
                renewal.add_done_callback(functools.partial(self._renewed, owner))

    def _renewed(self, owner: str, _done: asyncio.Task[None]) -> None:
        self._renewing.pop(owner, None)

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
