"""``dockyard scrub`` and ``dockyard jobs``: the integrity scrub by hand, and the record of job runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dockyard.cli.access import JSON_HELP, _show, as_admin
from dockyard.cli.options import config_options

if TYPE_CHECKING:
    from dockyard.app import Components
    from dockyard.auth.principals import Principal
    from dockyard.services.scrub import ScrubReport


@click.command()
@config_options
@click.option("--json", "as_json", is_flag=True, help="print one JSON object: examined, bytes_read, missing, "
              "corrupt, orphans_removed, resumed_from (and more)")
@click.option("--dry-run", is_flag=True, help="report what it finds, change nothing: no file removed, no blob "
              "marked corrupt or verified, the saved position not moved")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True, max=1e6), metavar="MB/S",
              help="read at most this many MB (10^6 bytes) a second (default scrub.rate_mb_per_s)")
@click.option("--restart", is_flag=True, help="start a new pass from the first digest instead of where the "
              "last run stopped")
def scrub(config_file: Path | None, data_dir: Path | None, as_json: bool, dry_run: bool, rate: float | None,
          restart: bool) -> None:
    """Re-hash stored blobs and reconcile the database with storage.

    Reads every blob in digest order (rate-limited), continuing after the digest where the last
    run stopped. Reports blobs whose bytes are missing, and blobs whose bytes are corrupt (these are
    no longer served: blob GET/HEAD answer 404 until the blob is pushed again). At the end of a pass,
    removes orphans: blob files no database row names, older than gc.grace_period. Shows a progress
    bar on a terminal (plain lines otherwise, on stderr); the run is recorded (`dockyard jobs`).
    """
    from dockyard.cli.progress import progress
    from dockyard.jobs.runs import recorded_run, tally_report
    from dockyard.jobs.scrub import NAME, bytes_per_second
    from dockyard.services.scrub import ScrubService
    from dockyard.services.throttle import TokenBucket

    async def action(parts: Components, _me: Principal) -> ScrubReport:
        service = ScrubService(parts.db, parts.store, grace_period=parts.config.gc.grace_period)
        position = await service.position(restart=restart)
        limit = bytes_per_second(rate if rate is not None else parts.config.scrub.rate_mb_per_s)
        async with recorded_run(parts.db, NAME, dry_run=dry_run) as tally:
            with progress("scrubbing blobs", total=position.bytes, unit="B") as advance:
                report = await service.run(TokenBucket(limit), dry_run=dry_run, restart=restart,
                                           on_blob=lambda size, digest: advance(size, digest))
            tally_report(tally, report)
        return report

    report = as_admin(config_file, data_dir, action)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
        return
    for digest in report.missing:
        click.echo(f"missing  {digest}: recorded, but storage does not have its bytes (push it again)")
    for digest in report.corrupt:
        click.echo(f"corrupt  {digest}: its bytes do not hash to it; no longer served (push it again)")
    for digest in report.orphans_removed:
        click.echo(f"orphan   {digest}: no row names it; " + ("would be removed" if dry_run else "removed"))
    click.echo(report.summary())


@click.command()
@config_options
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP + " (an array)")
@click.option("--job", help="only this job's runs (gc, retention, scrub, uploads-purge)")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="how many runs")
def jobs(config_file: Path | None, data_dir: Path | None, as_json: bool, job: str | None, limit: int) -> None:
    """Recent runs of the background jobs, newest first: scheduled or by hand, with their node,
    start and end, outcome, whether it was a dry run, items examined and removed, bytes freed."""
    from dockyard.services.jobs import JobsService

    rows = as_admin(config_file, data_dir,
                    lambda parts, me: JobsService(parts.db).recent_runs(me, job=job, limit=limit))
    _show(rows, ["id", "job", "node", "started_at", "ended_at", "outcome", "dry_run", "examined", "removed",
                 "bytes_freed"], as_json, "no job runs yet")


COMMANDS = (scrub, jobs)
