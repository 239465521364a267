"""The scheduled integrity scrub: a pass every ``scrub.interval``, under the scheduler's lease, each
run of ``ScrubService`` continuing from where the last one stopped (see ``services/scrub.py``).

The scheduler looks every hour at most (``LOOK_EVERY``), so a pass cut short by a restart goes on
within the hour, and a node restarted daily does not start a pass each time: a new pass starts only
``scrub.interval`` after the last one ended (``ScrubService.is_due``)."""

from __future__ import annotations

from datetime import timedelta

from dockyard.config import ScrubConfig
from dockyard.jobs.scheduler import Job
from dockyard.services.scrub import ScrubReport, ScrubService
from dockyard.services.throttle import TokenBucket

NAME = "scrub"
LOOK_EVERY = timedelta(hours=1)


def bytes_per_second(rate_mb_per_s: float) -> float:
    """``scrub.rate_mb_per_s`` (MB: 10^6 bytes) in bytes a second."""
    return rate_mb_per_s * 1_000_000


def scrub_job(service: ScrubService, settings: ScrubConfig) -> Job:
    async def run() -> ScrubReport:
        report = await service.run(TokenBucket(bytes_per_second(settings.rate_mb_per_s)))
        return report

    async def is_due() -> bool:
        return await service.is_due(settings.interval)

    look_every = max(min(settings.interval, LOOK_EVERY), timedelta(seconds=1))  # "0s": scrub without pause
    return Job(NAME, look_every.total_seconds(), run, is_due)
