"""One flush for many requests, a while later; at once where no event loop runs."""

from __future__ import annotations

import asyncio

from dockyard.http.batches import FlushLater


def test_many_requests_make_one_flush_after_the_delay() -> None:
    flushes: list[float] = []

    async def run() -> None:
        loop = asyncio.get_running_loop()
        later = FlushLater(lambda: (flushes.append(loop.time()), later.done()), 0.05)
        started = loop.time()
        for _ in range(100):
            later.request()
        assert flushes == []
        await asyncio.sleep(0.2)
        assert len(flushes) == 1
        assert flushes[0] - started >= 0.05
        later.request()  # after a flush, a request schedules the next one
        await asyncio.sleep(0.2)
        assert len(flushes) == 2

    asyncio.run(run())


def test_without_an_event_loop_the_flush_runs_at_once() -> None:
    flushes: list[int] = []
    later = FlushLater(lambda: (flushes.append(1), later.done()), 10)
    later.request()
    later.request()
    assert flushes == [1, 1]
