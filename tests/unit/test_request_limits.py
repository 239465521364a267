"""The per-worker limits of ``dockyard.http.limits``, without a server: which bodies are cut, how
the cut reaches the handler, and that nothing else is (end to end: tests/e2e/test_hostile_clients.py)."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from dockyard.errors import BodyStalled, Unavailable
from dockyard.http.limits import BodyWatch, UploadSlots


async def never() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def test_a_body_that_brings_nothing_is_cut_with_body_stalled_and_the_task_goes_on() -> None:
    """A receive that waits for ever raises BodyStalled once the timeout has passed; the
    cancellation that interrupted it is the watch's own and does not linger in the task."""

    async def handler() -> str:
        watch = BodyWatch(0.2, min_rate=0)
        reader = watch.start(never)
        try:
            with pytest.raises(BodyStalled) as caught:
                await reader.receive()
        finally:
            watch.stop(reader)
        assert caught.value.status == 408
        assert caught.value.headers["Connection"] == "close"
        assert watch.stalls == 1
        assert await reader.receive() == {"type": "http.disconnect"}  # given up on: no more waiting
        await asyncio.sleep(0)  # not cancelled again
        return "went on"

    assert asyncio.run(handler()) == "went on"


def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    """Cancelling a request (a shutdown, a client gone) while it reads is not turned into a 408."""

    async def handler() -> None:
        watch = BodyWatch(60.0)
        reader = watch.start(never)
        task = asyncio.ensure_future(reader.receive())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        watch.stop(reader)
        assert watch.stalls == 0

    asyncio.run(handler())


def test_time_the_server_spends_between_reads_does_not_count() -> None:
    """Pieces that come at once, with the handler busy far longer than the timeout between
    reads (a slow storage write), never make a stall: only waiting for the client counts."""

    async def handler() -> int:
        async def piece() -> Message:
            return {"type": "http.request", "body": b"", "more_body": True}

        watch = BodyWatch(0.1, min_rate=1_000_000)
        reader = watch.start(piece)
        for _ in range(3):
            await reader.receive()
            await asyncio.sleep(0.3)  # the handler's own work, three timeouts long
        watch.stop(reader)
        return watch.stalls

    assert asyncio.run(handler()) == 0


def test_upload_slots_refuse_past_the_limit_with_retry_after() -> None:
    """Slots are taken up to the limit, refused past it, and free again when given back."""
    slots = UploadSlots(2)
    assert [slots.take(), slots.take(), slots.take()] == [True, True, False]
    busy = slots.busy()
    assert isinstance(busy, Unavailable)
    assert busy.status == 503
    assert busy.headers["Retry-After"] == "1"
    assert "registry.max_uploads_in_flight" in busy.message
    slots.give()
    assert slots.take()
