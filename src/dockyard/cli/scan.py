"""``dockyard scan REPOSITORY:TAG|REPOSITORY@DIGEST``: an image's scan report, scanning it now if
there is no current result (the same JSON as the API with ``--json``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dockyard.cli.access import as_admin
from dockyard.cli.options import config_options

if TYPE_CHECKING:
    from dockyard.app import Components
    from dockyard.auth.principals import Principal

WIDE = 200
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "unknown": "dim"}


def split_image(image: str) -> tuple[str, str]:
    """``name:tag`` or ``name@digest`` (a bare name means ``latest``) as (repository, reference)."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, digest
    name, colon, tag = image.rpartition(":")
    if colon and "/" not in tag and name:
        return name, tag
    return image, "latest"


@click.command()
@config_options
@click.argument("image")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON (what the API returns)")
def scan(config_file: Path | None, data_dir: Path | None, image: str, as_json: bool) -> None:
    """Show the scan report of IMAGE (REPOSITORY:TAG or REPOSITORY@DIGEST), scanning it now when it
    has no current result: packages, vulnerabilities by severity, secrets (masked), malware."""
    repository, reference = split_image(image)

    async def action(parts: Components, _me: Principal) -> dict[str, Any]:
        return (await parts.scanning.report(repository, reference)).to_json()

    report = as_admin(config_file, data_dir, action)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    print_report(f"{repository}:{reference}" if not reference.startswith("sha256:") else f"{repository}@{reference}",
                 report)


def print_report(title: str, report: dict[str, Any]) -> None:
    from rich.console import Console

    # Piped or captured: wide enough that no path or id in a table is cut.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else WIDE)
    console.print(f"[bold]{title}[/bold]  {report['digest']}")
    for child in report.get("children", ()):
        console.print()
        console.print(f"[bold]platform {child.get('platform') or '?'}[/bold]  {child['digest']}")
        _print_image(console, child)
    if "children" not in report:
        _print_image(console, report)
    if report.get("children"):
        console.print()
        console.print(_summary_line(report))


def _print_image(console: Any, report: dict[str, Any]) -> None:
    from rich.table import Table

    if report["status"] != "done":
        console.print(f"status: {report['status']}" + (f" ({report['error']})" if report.get("error") else ""))
        return
    distro = report.get("distro") or {}
    console.print(f"scanned {report['scanned_at']} by {report['scanner_version']}, vulnerability database "
                  f"revision {report['vulndb_revision'] if report['vulndb_revision'] is not None else 'none'}; "
                  f"{distro.get('pretty_name') or distro.get('id') or 'unknown distribution'}")
    by_type: dict[str, int] = {}
    for package in report["packages"]:
        by_type[package["type"]] = by_type.get(package["type"], 0) + 1
    console.print(f"packages: {len(report['packages'])}"
                  + (f" ({', '.join(f'{n} {t}' for t, n in sorted(by_type.items()))})" if by_type else ""))
    console.print(_summary_line(report))
    if report["vulnerabilities"]:
        table = Table("severity", "id", "package", "installed", "fixed", "summary")
        for v in report["vulnerabilities"]:
            style = SEVERITY_STYLE.get(v["severity"], "")
            table.add_row(f"[{style}]{v['severity']}[/{style}]" if style else v["severity"], v["id"], v["package"],
                          v["installed"], v["fixed"] or "-", (v["summary"] or "")[:60])
        console.print(table)
    if report["secrets"]:
        table = Table("secret", "path", "line", "layer", "value", "state")
        for s in report["secrets"]:
            table.add_row(s["rule"], s["path"], str(s["line"]), s["layer"][:19], s["masked"],
                          "removed, still in a layer" if s["removed"] else "present")
        console.print(table)
    else:
        console.print("secrets: none found")
    if report["malware"]:
        table = Table("malware", "path", "layer", "state")
        for m in report["malware"]:
            table.add_row(m["signature"], m["path"], m["layer"][:19], "removed" if m["removed"] else "present")
        console.print(table)
    elif report.get("malware_engine"):
        console.print(f"malware: none found ({report['malware_engine']})")
    else:
        console.print("malware: not scanned (scan.clamd.socket is not set)")
    skipped = report.get("skipped_large", 0) + report.get("skipped_binary", 0)
    if skipped:
        console.print(f"[dim]{report['files_scanned']} file(s) searched for secrets; {report['skipped_large']} too "
                      f"large and {report['skipped_binary']} binary skipped[/dim]")


def _summary_line(report: dict[str, Any]) -> str:
    summary = report["summary"]
    total = sum(summary.values())
    counts = ", ".join(f"{summary[s]} {s}" for s in ("critical", "high", "medium", "low", "unknown"))
    return f"vulnerabilities: {total} ({counts})"


COMMANDS = (scan,)
