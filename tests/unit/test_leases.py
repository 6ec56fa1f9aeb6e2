"""The lease keeper renews every held lock, however slow one renewal is."""

from __future__ import annotations

import asyncio
from collections import Counter

from meshscope.services.runtime.leases import LeaseKeeper
from meshscope.services.runtime.state import InMemorySessionStore, StateKey
from meshscope.testing import wait_for


class OneSlowRenewal(InMemorySessionStore):
    """Renewing session "stuck" hangs, as a store call can until its timeout."""

    def __init__(self) -> None:
        super().__init__()
        self.renewals: Counter[str] = Counter()

    async def renew(self, session_id: str, agent: str, owner: str, ttl_s: float) -> bool:
        self.renewals[session_id] += 1
        if session_id == "stuck":
            await asyncio.sleep(60)
        return await super().renew(session_id, agent, owner, ttl_s)


async def test_a_stuck_renewal_does_not_let_other_locks_expire() -> None:
    ttl = 0.6
    store = OneSlowRenewal()
    keeper = LeaseKeeper(store, ttl)
    try:
        for session, owner in (("stuck", "a"), ("fine", "b")):
            assert await store.acquire(session, "agent", owner, ttl)
            keeper.hold(StateKey("u", session, "agent"), owner)

        async def fine_renewals() -> int:
            return store.renewals["fine"]

        # Three renewals of "fine" span more than its TTL twice over, while "stuck" hangs.
        await wait_for(fine_renewals, lambda n: n >= 3, timeout=10)
        assert store.renewals["stuck"] == 1  # in flight, not started again
        assert not await store.acquire("fine", "agent", "intruder", ttl)
    finally:
        await keeper.close()
