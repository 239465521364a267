"""``dockyard usage [PROJECT] [--json]``: storage each project and repository uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from dockyard.cli.access import JSON_HELP, _show, as_admin
from dockyard.cli.options import config_options


@click.command()
@config_options
@click.argument("project", required=False)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--bytes", "exact", is_flag=True, help="print sizes in bytes instead of KiB, MiB, GiB")
def usage(config_file: Path | None, data_dir: Path | None, project: str | None, as_json: bool,
          exact: bool) -> None:
    """Storage used by PROJECT and by each of its repositories; without PROJECT, by every project.

    Each blob counts once per project however many of its repositories link it, plus every
    manifest (stored in its repository's rows). EXCLUSIVE bytes are stored for this repository
    (or project) alone; SHARED bytes are blobs another repository (or project) links too, which
    deleting this one would not free. The quota (`dockyard quota set`) is checked against USED.
    """
    from dockyard.services.usage import UsageService

    def action(parts: Any, me: Any) -> Any:
        service = UsageService(parts.db, parts.accounts)
        return service.project(me, project) if project is not None else service.all_projects(me)

    found = as_admin(config_file, data_dir, action)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    size = str if exact else _human
    if project is None:
        rows = [{"project": p["project"], "used": size(p["used_bytes"]), "quota": _quota(p, size),
                 "exclusive": size(p["exclusive_bytes"]), "shared": size(p["shared_bytes"]),
                 "repositories": len(p["repositories"])} for p in found]
        _show(rows, ["project", "used", "quota", "exclusive", "shared", "repositories"], False, "no projects")
        return
    click.echo(f"project {found['project']}: {size(found['used_bytes'])} used of quota {_quota(found, size)} "
               f"({size(found['exclusive_bytes'])} its own, {size(found['shared_bytes'])} shared with other "
               "projects)")
    rows = [{"repository": r["name"], "used": size(r["used_bytes"]), "exclusive": size(r["exclusive_bytes"]),
             "shared": size(r["shared_bytes"]), "manifests": size(r["manifest_bytes"])}
            for r in found["repositories"]]
    _show(rows, ["repository", "used", "exclusive", "shared", "manifests"], False, "no repositories")


def _human(size: int) -> str:
    from dockyard.policy.quotas import human_size

    return human_size(size)


def _quota(report: dict[str, Any], size: Any) -> str:
    quota = report["quota_bytes"]
    return "none" if quota is None else str(size(quota))


COMMANDS = [usage]
