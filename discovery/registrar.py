"""Keeping a replica registered for as long as it serves.

The registrar registers every agent a process hosts, then checks once per
`recheck_s` that the registry still holds them and registers again what it
lost (a restarted Consul dev agent forgets everything). While Consul is
unreachable it keeps retrying with jittered back-off (0.25 s doubling to
10 s), logging one line when the trouble starts and one when it ends (with
how long it lasted), DEBUG in between; the agent serves all along.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from meshscope.discovery.backoff import Backoff, Outage
from meshscope.discovery.consul_client import UNREACHABLE, describe_error
from meshscope.discovery.model import Registration
from meshscope.discovery.registry import RegistrationDenied, Registry

log = logging.getLogger("meshscope.discovery")


class Registrar:
    """Owns the registrations of one process."""

    def __init__(
        self,
        registry: Registry,
        registrations: Sequence[Registration],
        *,
        recheck_s: float = 1.0,
        call_timeout_s: float = 5.0,
        where: str = "the registry",
        backoff: Backoff | None = None,
    ) -> None:
        self.registry = registry
        self.registrations = list(registrations)
        self.recheck_s = recheck_s
        self.call_timeout_s = call_timeout_s
        self.where = where
        self.registered_once: set[str] = set()
        self._backoff = backoff or Backoff(base_s=0.25)
        self._outage = Outage(log, where)
        """One line when registering starts failing, one when it works again; DEBUG between."""
        self._delay = 0.0
        self._task: asyncio.Task[None] | None = None
        self.in_sync = asyncio.Event()
        """Set while every registration is known to be in the registry."""

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._maintain(), name="meshscope-registrar")

    async def _sync_once(self) -> None:
        present = await asyncio.wait_for(self.registry.registered_ids(), self.call_timeout_s)
        for registration in self.registrations:
            if registration.replica_id in present:
                continue
            self.in_sync.clear()
            await asyncio.wait_for(self.registry.register(registration), self.call_timeout_s)
            if registration.replica_id in self.registered_once:
                log.warning(
                    "re-registered %s as %s at %s: %s had lost it",
                    registration.agent,
                    registration.replica_id,
                    registration.address,
                    self.where,
                )
            else:
                self.registered_once.add(registration.replica_id)
                log.info(
                    "registered %s as %s at %s in %s",
                    registration.agent,
                    registration.replica_id,
                    registration.address,
                    self.where,
                )
        self.in_sync.set()

    async def _maintain(self) -> None:
        while True:
            try:
                await self._sync_once()
            except RegistrationDenied as exc:
                self._failed(str(exc), kind="denied", level=logging.ERROR)
            except UNREACHABLE as exc:
                self._failed(f"unreachable ({describe_error(exc)})", kind="unreachable")
            except Exception as exc:  # Consul answered with an error status
                self._failed(f"registration failed ({describe_error(exc)})", kind="refused")
            else:
                self._backoff.reset()
                self._outage.recovered()
                await asyncio.sleep(self.recheck_s)
                continue
            await asyncio.sleep(self._delay)

    def _failed(self, reason: str, *, kind: str, level: int = logging.WARNING) -> None:
        self.in_sync.clear()
        self._delay = self._backoff.next_delay()
        self._outage.failed(reason, self._delay, kind=kind, level=level, retrying="retrying registration")

    async def stop(self, timeout_s: float = 3.0) -> None:
        """Stop maintaining and deregister every replica (best effort, bounded)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

        async def deregister(registration: Registration) -> None:
            try:
                await self.registry.deregister(registration.replica_id)
                log.info("deregistered %s (%s)", registration.agent, registration.replica_id)
            except Exception as exc:
                log.warning("could not deregister %s: %s", registration.replica_id, describe_error(exc))

        try:
            # Together, under one limit: shutdown must not wait on Consul per agent.
            await asyncio.wait_for(asyncio.gather(*map(deregister, self.registrations)), timeout_s)
        except TimeoutError:
            log.warning("deregistration did not finish within %.1fs; continuing the shutdown", timeout_s)
        await self.registry.close()
