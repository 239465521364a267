"""The scheduled integrity scrub: every ``scrub.interval``, under the scheduler's lease, one run of
``ScrubService`` from where the last one stopped (see ``services/scrub.py``)."""

from __future__ import annotations

from dockyard.config import ScrubConfig
from dockyard.jobs.scheduler import Job
from dockyard.services.scrub import ScrubReport, ScrubService
from dockyard.services.throttle import TokenBucket

NAME = "scrub"


def bytes_per_second(rate_mb_per_s: float) -> float:
    """``scrub.rate_mb_per_s`` (MB: 10^6 bytes) in bytes a second."""
    return rate_mb_per_s * 1_000_000


def scrub_job(service: ScrubService, settings: ScrubConfig) -> Job:
    async def run() -> ScrubReport:
        report = await service.run(TokenBucket(bytes_per_second(settings.rate_mb_per_s)))
        return report

    return Job(NAME, settings.interval.total_seconds(), run)
