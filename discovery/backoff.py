"""Exponential back-off with full jitter.

Written out rather than taken from tenacity: the loops that use it run for
the life of the process and log every step, which a retry decorator hides.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays base, 2*base, 4*base... capped, each drawn uniformly from [delay/2, delay]."""

    def __init__(self, base_s: float = 0.2, cap_s: float = 2.0) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.cap_s, self.base_s * (2**self.attempt))
        self.attempt += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0
