"""``dockyard gc`` and ``dockyard repo delete``: freeing storage by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dockyard.cli.access import as_admin
from dockyard.cli.options import config_options

if TYPE_CHECKING:
    from dockyard.app import Components
    from dockyard.auth.principals import Principal


@click.command()
@config_options
@click.option("--dry-run", is_flag=True, help="only report what would be freed; change nothing")
@click.option("--json", "as_json", is_flag=True,
              help="print one JSON object (manifests_deleted, blobs_deleted, bytes_freed, examined, dry_run, ...)")
def gc(config_file: Path | None, data_dir: Path | None, dry_run: bool, as_json: bool) -> None:
    """Collect garbage now: manifests and blobs nothing refers to any more.

    Looks at what deleted tags, manifests and repositories, moved tags and unused uploads left
    behind at least gc.grace_period ago, checks each again, and frees what nothing refers to.
    Safe while the registry serves (no read-only mode); runs as the scheduled job does, and is
    recorded the same way (`dockyard jobs`).
    """
    from dockyard.jobs.gc import run_gc

    async def action(parts: Components, _me: Principal) -> dict[str, Any]:
        return (await run_gc(parts.db, parts.collector, dry_run=dry_run)).as_dict()

    report = as_admin(config_file, data_dir, action)
    if as_json:
        click.echo(json.dumps(report))
        return
    prefix = "would delete" if dry_run else "deleted"
    for name in report["manifests"]:
        click.echo(f"{prefix} manifest {name}")
    for digest in report["blobs"]:
        click.echo(f"{prefix} blob {digest}")
    verb = "would free" if dry_run else "freed"
    click.echo(f"{verb} {report['manifests_deleted']} manifest(s), {report['blobs_deleted']} blob(s), "
               f"{report['bytes_freed']} bytes; {report['examined']} candidate(s) examined in "
               f"{report['duration_seconds']:.1f}s")


@click.group()
def repo() -> None:
    """Repositories: delete one with everything it holds."""


@repo.command("delete")
@config_options
@click.argument("name")
def repo_delete(config_file: Path | None, data_dir: Path | None, name: str) -> None:
    """Delete repository NAME with its tags and manifests.

    Its blobs' bytes are freed by garbage collection after gc.grace_period (those that no other
    repository links). Refused while an immutable rule protects one of its tags.
    """
    found = as_admin(config_file, data_dir, lambda parts, me: parts.repositories.delete(me, name))
    click.echo(f"deleted repository {name} ({found['tags']} tag(s), {found['manifests']} manifest(s), "
               f"{found['blobs']} blob link(s)); `dockyard gc` frees its storage after the grace period")


COMMANDS = (gc, repo)
