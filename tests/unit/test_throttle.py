"""The token bucket: bytes taken never run ahead of burst + rate x elapsed (on a clock of its own)."""

from __future__ import annotations

import pytest

from dockyard.services.throttle import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(("rate", "burst", "reads"), [
    (1_000_000, 1_000_000, [4 * 1024 * 1024] * 5),  # reads larger than the burst
    (1_000, 500, [100] * 50),  # many small ones
    (10, None, [1, 99, 7, 1000, 3]),  # burst defaults to a second's worth
])
async def test_taken_stays_within_burst_plus_rate_times_elapsed(rate: float, burst: float | None,
                                                                reads: list[int]) -> None:
    clock = Clock()
    bucket = TokenBucket(rate, burst, clock=clock, sleep=clock.sleep)
    for amount in reads:
        await bucket.take(amount)
        assert bucket.taken <= bucket.burst + rate * clock.now + 1e-6
    assert bucket.taken == sum(reads)
    assert clock.now == pytest.approx(max(0.0, (sum(reads) - bucket.burst) / rate))
    assert bucket.waited == pytest.approx(clock.now)


async def test_time_that_passed_refills_up_to_the_burst_only() -> None:
    clock = Clock()
    bucket = TokenBucket(100, 50, clock=clock, sleep=clock.sleep)
    clock.now = 1000.0  # idle for a long time: still only the burst is free
    await bucket.take(150)
    assert bucket.waited == pytest.approx(1.0)


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)
