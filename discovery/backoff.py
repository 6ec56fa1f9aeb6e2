"""Exponential back-off with full jitter, and how an outage is told in the logs.

Written out rather than taken from tenacity: the loops that use it run for
the life of the process, and an outage is logged once when it starts and
once when it ends (DEBUG in between), which a retry decorator does not do.
"""

from __future__ import annotations

import logging
import random
import time

DEFAULT_BASE_S = 0.2
DEFAULT_CAP_S = 10.0
"""Longest pause between two tries, in seconds: a Consul that comes back is seen within
this long, and a long outage costs each retrying loop one request per 5-10 s."""


class Backoff:
    """Delays base, 2*base, 4*base... capped, each drawn uniformly from [delay/2, delay] (seconds)."""

    def __init__(self, base_s: float = DEFAULT_BASE_S, cap_s: float = DEFAULT_CAP_S) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0

    def next_delay(self) -> float:
        # min() before the power: the exponent stays small however long the outage lasts.
        delay = self.cap_s if self.attempt > 60 else min(self.cap_s, self.base_s * (2**self.attempt))
        self.attempt += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


class Outage:
    """One dependency's outages, as one line when each starts and one when it ends.

    Several loops may share one `Outage` (a watcher's queries): the first failure
    starts it, later ones (from any loop) are DEBUG, and the first success ends it.
    """

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.since: float | None = None
        """time.monotonic() when the current outage began; None while all is well."""
        self.failures = 0
        self.kind = ""

    def failed(
        self,
        reason: str,
        delay: float,
        *,
        kind: str = "unreachable",
        level: int = logging.WARNING,
        retrying: str = "retrying",
        then: str = "then with growing back-off",
    ) -> None:
        """Record a failure; `delay` (seconds) is when the loop tries again, `then` how after that.

        Logged at `level` when an outage starts or its `kind` changes (Consul stops
        refusing and starts being unreachable, say), at DEBUG otherwise.
        """
        self.failures += 1
        if self.since is None or kind != self.kind:
            self.since = self.since if self.since is not None else time.monotonic()
            self.kind = kind
            self.log.log(
                level,
                "%s: %s; %s in %.1fs, %s (further failures logged at DEBUG)",
                self.what,
                reason,
                retrying,
                delay,
                then,
            )
        else:
            self.log.debug("%s: still failing (%s); %s in %.1fs", self.what, reason, retrying, delay)

    def recovered(self) -> None:
        """Record a success; ends the outage, if there is one, with how long it lasted."""
        if self.since is None:
            return
        self.log.warning(
            "%s: answering again after %.1fs (%d failed attempt(s))",
            self.what,
            time.monotonic() - self.since,
            self.failures,
        )
        self.since = None
        self.failures = 0
