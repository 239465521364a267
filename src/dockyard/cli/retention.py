"""``dockyard retention | tag``: retention policies, their plans, and restoring what a run deleted.

``retention set`` and ``retention show`` (the policy as data) are in ``cli/policies.py``; ``plan``,
``apply`` and ``tag restore`` are here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dockyard.cli.access import as_admin
from dockyard.cli.options import config_options

if TYPE_CHECKING:
    from dockyard.services.retention_plans import Plan


@click.group()
def retention() -> None:
    """Retention policies per project: set and show them, preview a run (plan), run it (apply).

    A run deletes only tags (and untagged manifests) the policy does not keep; what it deletes can
    be brought back with `dockyard tag restore` within retention.restore_window.
    """


@retention.command("plan")
@config_options
@click.argument("project")
@click.option("--explain", is_flag=True, help="also list every kept tag and manifest with the rule that keeps it")
@click.option("--json", "as_json", is_flag=True, help="print the whole plan (every item, kept or not) as JSON")
def retention_plan(config_file: Path | None, data_dir: Path | None, project: str, explain: bool,
                   as_json: bool) -> None:
    """Show what a retention run would delete in PROJECT, and the bytes it would free.

    Changes nothing but saves the plan: `dockyard retention apply PROJECT` then does exactly this
    plan, and refuses if the repositories changed in between.
    """
    plan = as_admin(config_file, data_dir, lambda parts, me: parts.retention.plan(me, project))
    if as_json:
        click.echo(json.dumps(plan.to_dict(), indent=2))
        return
    print_plan(plan, explain=explain)
    if plan.removed_count:
        click.echo(f"\nTo apply it: dockyard retention apply {plan.project} --plan {plan.id}")


@retention.command("apply")
@config_options
@click.argument("project")
@click.option("--plan", "plan_id", type=click.IntRange(1, 2**31 - 1), metavar="ID",
              help="the plan to apply (default: PROJECT's latest plan)")
@click.option("--json", "as_json", is_flag=True, help="print what was done as JSON")
def retention_apply(config_file: Path | None, data_dir: Path | None, project: str, plan_id: int | None,
                    as_json: bool) -> None:
    """Delete what PROJECT's retention plan removes: its latest plan, or --plan ID.

    Refused if a tag was pushed, moved or deleted since the plan was made (plan again). With no
    plan saved, plans and applies in one go and prints the plan. Deleted tags can be brought back
    with `dockyard tag restore` within retention.restore_window.
    """
    applied = as_admin(config_file, data_dir, lambda parts, me: parts.retention.apply(me, project, plan_id))
    if as_json:
        click.echo(json.dumps(applied.to_dict(), indent=2))
        return
    if plan_id is None and applied.plan.id is not None:
        print_plan(applied.plan, explain=False)
        click.echo("")
    click.echo(f"Applied plan {applied.plan.id}: deleted {applied.deleted_tags} tag(s) and "
               f"{applied.deleted_manifests} untagged manifest(s); about {_size(applied.plan.bytes_freed)} "
               "will be freed by garbage collection.")
    for skipped in applied.skipped:
        what = f"{skipped['repository']}:{skipped['tag']}" if skipped["tag"] else \
            f"{skipped['repository']}@{skipped['digest']}"
        click.echo(f"  skipped {what}: {skipped['why']}")
    if applied.deleted_tags:
        click.echo("Restore a deleted tag with: dockyard tag restore REPOSITORY:TAG")


def print_plan(plan: Plan, *, explain: bool) -> None:
    """The plan as people read it: per repository what goes (and with --explain what stays), why."""
    click.echo(f"Retention plan {plan.id} for project {plan.project} "
               f"({plan.created_at:%Y-%m-%d %H:%M:%S} UTC)")
    if not plan.repositories:
        click.echo("\nNo retention policy applies to any repository of this project: nothing to do.")
        return
    for repository in plan.repositories:
        shown = repository.items if explain else repository.removed
        kept = len(repository.items) - len(repository.removed)
        click.echo(f"\n{repository.name}  (policy {repository.policy!r}: {len(repository.removed)} to remove, "
                   f"{kept} kept)")
        rows = [_row(item) for item in shown]
        if not rows:
            click.echo("  nothing to remove")
            continue
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            cells = [r[i].ljust(widths[i]) if i != 3 else r[i].rjust(widths[i]) for i in range(4)]
            click.echo(f"  {'  '.join(cells)}  {r[4]}".rstrip())
    click.echo(f"\nTotal: {plan.removed_count} item(s) to remove, {_size(plan.bytes_freed)} "
               f"({plan.bytes_freed} bytes) freed")


def _row(item: Any) -> list[str]:
    mark = "keep" if item.kept else "remove"
    what = f"tag {item.tag}" if item.tag is not None else "untagged"
    size = "" if item.kept else _size(item.bytes)
    return [mark, what, _short(item.digest), size, _DIGEST.sub(lambda m: _short(m.group(0)), item.reason)]


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _short(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}"


def _size(size: int) -> str:
    from dockyard.policy.checks import format_size

    return format_size(size)


@click.group()
def tag() -> None:
    """Tags: bring back a tag that a retention run deleted."""


@tag.command("restore")
@config_options
@click.argument("reference", metavar="REPOSITORY:TAG")
def tag_restore(config_file: Path | None, data_dir: Path | None, reference: str) -> None:
    """Bring back REPOSITORY:TAG, deleted by a retention run, pointing at the same digest.

    Works within retention.restore_window of the deletion, while the tag does not exist again.
    """
    repository, _, name = reference.rpartition(":")
    if not repository or not name or "/" in name:
        raise click.BadParameter("write it as REPOSITORY:TAG, e.g. team-a/api:v1.2.0", param_hint="REPOSITORY:TAG")
    found = as_admin(config_file, data_dir, lambda parts, me: parts.retention.restore(me, repository, name))
    click.echo(f"restored {found['repository']}:{found['tag']} -> {found['digest']}")


COMMANDS = [retention, tag]
