"""A token bucket over bytes: a job that reads storage (the scrub) stays under a rate.

Tokens (bytes) refill at ``rate`` per second up to ``burst``; ``take(n)`` spends ``n`` after the
bytes were read and, when that leaves the bucket in debt, sleeps until the debt is repaid. So over
any run, ``taken <= burst + rate x elapsed`` plus at most the last read: the average stays at or
under ``rate`` whatever the sizes of the reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if rate <= 0:
            raise ValueError("the rate must be positive")
        self.rate = rate
        self.burst = rate if burst is None else burst  # one second's worth by default
        self.clock = clock
        self.sleep = sleep
        self.tokens = self.burst
        self.updated = clock()
        self.taken = 0  # every byte accounted for
        self.waited = 0.0  # seconds slept to stay under the rate

    async def take(self, amount: int) -> None:
        """Spend ``amount`` tokens; sleep while the bucket is in debt."""
        self._refill()
        self.tokens -= amount
        self.taken += amount
        if self.tokens < 0:
            delay = -self.tokens / self.rate
            self.waited += delay
            await self.sleep(delay)
            self._refill()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
