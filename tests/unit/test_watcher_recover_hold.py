"""Review of [5/13]: the watcher's hold after a Consul outage is counted from the last failed
query, but the query that finds Consul back is sent a whole back-off delay after that failure,
and the back-off grows to 5-10 s (full jitter of a 10 s cap), past the 5 s hold. So after a
long outage the hold has always run out when Consul first answers: a restarted dev agent that
has not seen the replicas re-register yet answers "no replica", and the watcher publishes
that. Seen with real processes (Consul SIGKILLed for 25 s, then restarted): the orchestrator
logged "every replica of analyst (2) left discovery at once ... (panic)" the moment Consul
answered; only the panic grace kept runs routed (with MESHSCOPE_PANIC_GRACE_S=0 they get "no
healthy replica" until the agents re-register).

Here the back-off delay (0.6 s) is longer than the hold (0.3 s), as 5-10 s is than 5 s."""

from __future__ import annotations

import asyncio
from typing import Any

import discovery.watcher as watcher_module
from discovery.backoff import Backoff
from discovery.config import ConsulSettings
from discovery.watcher import ConsulWatcher

ENTRY = {"Service": {"ID": "analyst@127.0.0.1:1", "Address": "127.0.0.1", "Port": 1}, "Checks": []}


class _Health:
    """Consul answers with the replica, then is down once, then answers (restarted) with none."""

    def __init__(self) -> None:
        self.calls = 0

    async def service(self, agent: str, **_: Any) -> tuple[str, list[dict[str, Any]]]:
        self.calls += 1
        if self.calls == 1:
            return "10", [ENTRY]
        if self.calls == 2:
            raise ConnectionError("Consul is down")
        if self.calls == 3:
            return "1", []  # restarted: the replica has not re-registered yet
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


class _Client:
    def __init__(self) -> None:
        self.health = _Health()

    async def close(self) -> None:
        pass


class _SlowBackoff(Backoff):
    def next_delay(self) -> float:
        return 0.6


async def test_the_hold_after_an_outage_covers_the_first_answer(monkeypatch: Any) -> None:
    client = _Client()
    monkeypatch.setattr(watcher_module, "connect", lambda settings: client)
    monkeypatch.setattr(watcher_module, "Backoff", _SlowBackoff)
    settings = ConsulSettings(recover_hold_s=0.3)
    watcher = ConsulWatcher(settings, agents=["analyst"])
    published: list[int] = []
    watcher.add_listener(lambda agent, instances: published.append(len(instances)))
    await watcher.start()
    try:
        for _ in range(200):
            if client.health.calls >= 4:
                break
            await asyncio.sleep(0.01)
        assert client.health.calls >= 4, "the watcher did not get Consul's answer after the outage"
    finally:
        await watcher.stop()
    assert published == [1], f"the replica set went {published}: emptied right after the outage"
