"""``dockyard vulndb import PATH | status | sync``: the offline vulnerability database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dockyard.cli.access import as_admin
from dockyard.cli.options import config_options
from dockyard.cli.progress import progress

if TYPE_CHECKING:
    from dockyard.app import Components
    from dockyard.auth.principals import Principal
    from dockyard.services.vulndb import ImportReport, VulnDbService


def _service(parts: Components) -> VulnDbService:
    from dockyard.services.vulndb import VulnDbService

    return VulnDbService(parts.db, parts.config.scan.vulndb)


def _print_report(report: ImportReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_json()))
        return
    for error in report.errors:
        click.echo(f"skipped: {error}", err=True)
    if report.bad > len(report.errors):
        click.echo(f"skipped: ... and {report.bad - len(report.errors)} more", err=True)
    click.echo(f"imported {report.source}: {report.summary()}")


@click.group()
def vulndb() -> None:
    """The offline vulnerability database (OSV advisories) scans match against."""


@vulndb.command("import")
@config_options
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="print one JSON object (revision, read, added, updated, unchanged, bad, clipped, errors)")
def vulndb_import(config_file: Path | None, data_dir: Path | None, path: Path, as_json: bool) -> None:
    """Import OSV advisories from PATH: a .json file, an osv.dev zip (e.g. Debian/all.zip), or a
    directory of them (nested directories too).

    Advisories already loaded with the same `modified` time are left as they are; files that are
    not advisories are skipped and named. Ends with a new database revision, which makes the
    registry re-match stored scans.
    """
    with progress(f"importing {path}", unit="advisories") as advance:
        async def action(parts: Components, _me: Principal) -> ImportReport:
            return await _service(parts).import_path(path, progress=advance)

        report = as_admin(config_file, data_dir, action)
    _print_report(report, as_json)


@vulndb.command("sync")
@config_options
@click.option("--json", "as_json", is_flag=True, help="print one JSON object, as `import --json` does")
def vulndb_sync(config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Download {scan.vulndb.url}/{ecosystem}/all.zip for each of scan.vulndb.ecosystems and import them.

    Needs access to the URL (osv.dev's bucket by default). An ecosystem that fails to download is
    reported and the others are imported; if none can be, nothing changes and the command fails.
    """
    with progress("syncing the vulnerability database", unit="advisories") as advance:
        async def action(parts: Components, _me: Principal) -> ImportReport:
            return await _service(parts).sync(progress=advance)

        report = as_admin(config_file, data_dir, action)
    _print_report(report, as_json)


@vulndb.command("status")
@config_options
@click.option("--json", "as_json", is_flag=True,
              help="print one JSON object (revision, imported_at, advisories, ecosystems, sources)")
def vulndb_status(config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Show the database's revision, what it holds per ecosystem, and the latest imports."""
    async def action(parts: Components, _me: Principal) -> dict[str, Any]:
        return (await _service(parts).status()).to_json()

    status = as_admin(config_file, data_dir, action)
    if as_json:
        click.echo(json.dumps(status))
        return
    if status["revision"] is None:
        click.echo("no advisories imported yet: run `dockyard vulndb import PATH` or `dockyard vulndb sync`")
        return
    click.echo(f"revision {status['revision']}, imported {status['imported_at']}, "
               f"{status['advisories']} advisories")
    for ecosystem, count in status["ecosystems"].items():
        click.echo(f"  {ecosystem}: {count}")
    click.echo("latest imports:")
    for source in status["sources"]:
        click.echo(f"  revision {source['revision']} at {source['imported_at']} from {source['source']}: "
                   f"{source['added']} added, {source['updated']} updated, {source['unchanged']} unchanged")


COMMANDS = (vulndb,)
