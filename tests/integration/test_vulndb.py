"""The vulnerability database on real SQLite and PostgreSQL: import (files, zips, nested, bad
input, re-import, updates), sync from a local HTTP server, status, and matching the Debian minbase."""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import threading
import zipfile
from collections.abc import AsyncIterator, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dockyard.cli import main
from dockyard.config import DatabaseConfig, VulnDbConfig
from dockyard.scan.report import Inventory
from dockyard.services.vulndb import SyncFailed, VulnDbService
from dockyard.store import migrate
from dockyard.store.db import Database
from tests.integration.test_cli_access import CHEAP
from tests.unit.test_matching import DEBIAN_12, MINBASE

DATA = Path(__file__).parents[1] / "data" / "osv"
ADVISORIES = sorted((DATA / "debian").glob("*.json"))
EXPECTED = json.loads((DATA / "bookworm-minbase.expected").read_text())["vulnerabilities"]
INVENTORY = Inventory(DEBIAN_12, tuple(MINBASE))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, DatabaseConfig())
    await migrate.upgrade(database)
    yield database
    await database.dispose()


def service(db: Database, **config: Any) -> VulnDbService:
    return VulnDbService(db, VulnDbConfig(**config))


def write_zip(path: Path, files: list[Path], extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            archive.write(file, f"{file.stem}/{file.name}")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def found(vulns: list[Any]) -> list[tuple[str, str, str | None, str]]:
    return sorted((v.id, v.package, v.fixed, v.severity) for v in vulns)


EXPECTED_ROWS = sorted((e["id"], e["package"], e["fixed"], e["severity"]) for e in EXPECTED)


async def test_import_then_match_the_minbase(db: Database) -> None:
    vulndb = service(db)
    assert await vulndb.revision() is None
    assert await vulndb.match(INVENTORY) == (None, [])
    seen: list[int] = []
    report = await vulndb.import_path(DATA / "debian", progress=seen.append)
    assert (report.read, report.added, report.updated, report.unchanged, report.bad) == (26, 26, 0, 0, 0)
    assert sum(seen) == 26
    revision, vulns = await vulndb.match(INVENTORY)
    assert revision == report.revision is not None
    assert found(vulns) == EXPECTED_ROWS
    assert [v.severity for v in vulns][:1] == ["critical"]
    assert vulns[-1].severity == "unknown"

    again = await vulndb.import_path(DATA / "debian")
    assert (again.added, again.updated, again.unchanged) == (0, 0, 26)
    assert again.revision == revision + 1

    status = (await vulndb.status()).to_json()
    assert status["revision"] == again.revision
    assert status["advisories"] == 26
    assert status["ecosystems"] == {"Debian": 1, "Debian:11": 1, "Debian:12": 24}
    assert [s["added"] for s in status["sources"]] == [0, 26]


async def test_a_changed_advisory_replaces_its_affected_rows(db: Database, tmp_path: Path) -> None:
    vulndb = service(db)
    await vulndb.import_path(DATA / "debian")
    changed = json.loads((DATA / "debian" / "DYT-2026-0001.json").read_text())
    changed["modified"] = "2026-12-01T00:00:00Z"
    changed["affected"][0]["ranges"][0]["events"][1]["fixed"] = "1:1.2.13.dfsg-1"  # now fixed in the installed one
    (tmp_path / "DYT-2026-0001.json").write_text(json.dumps(changed))
    withdrawn = json.loads((DATA / "debian" / "DYT-2026-0004.json").read_text())
    withdrawn["modified"] = "2026-12-01T00:00:00Z"
    withdrawn["withdrawn"] = "2026-12-01T00:00:00Z"
    (tmp_path / "DYT-2026-0004.json").write_text(json.dumps(withdrawn))
    report = await vulndb.import_path(tmp_path)
    assert (report.added, report.updated, report.unchanged) == (0, 2, 0)
    _, vulns = await vulndb.match(INVENTORY)
    assert found(vulns) == [row for row in EXPECTED_ROWS if row[0] not in ("DYT-2026-0001", "DYT-2026-0004")]


async def test_zip_nested_directories_and_a_directory_of_zips(db: Database, tmp_path: Path) -> None:
    vulndb = service(db)
    one = write_zip(tmp_path / "one.zip", ADVISORIES[:5])
    assert (await vulndb.import_path(one)).added == 5
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    write_zip(tree / "a" / "all.zip", ADVISORIES[5:15])
    write_zip(tree / "a" / "b" / "all.zip", ADVISORIES[15:20])
    for file in ADVISORIES[20:]:
        shutil.copy(file, tree / "a" / "b")
    report = await vulndb.import_path(tree)
    assert (report.read, report.added, report.bad) == (21, 21, 0)
    _, vulns = await vulndb.match(INVENTORY)
    assert found(vulns) == EXPECTED_ROWS


async def test_bad_files_are_counted_and_named_and_the_rest_imported(db: Database, tmp_path: Path) -> None:
    shutil.copy(ADVISORIES[0], tmp_path)
    (tmp_path / "broken.json").write_text("{\"id\": ")
    (tmp_path / "damaged.zip").write_bytes(b"PK\x03\x04garbage")
    write_zip(tmp_path / "mixed.zip", ADVISORIES[1:3], {"x/not-an-object.json": b"[]"})
    report = await service(db).import_path(tmp_path)
    assert (report.read, report.added, report.bad) == (3, 3, 3)
    assert any("broken.json: not an OSV advisory" in e for e in report.errors)
    assert any("damaged.zip: not a readable zip file" in e for e in report.errors)
    assert any("mixed.zip:x/not-an-object.json" in e for e in report.errors)


async def test_values_the_columns_cannot_hold_are_refused_or_clipped(db: Database, tmp_path: Path) -> None:
    """PostgreSQL enforces the column sizes: an over-long id is refused, an over-long package name
    skipped, NUL characters dropped; the import goes on and says so."""
    base = json.loads(ADVISORIES[0].read_text())
    docs = {
        "long-id.json": {**base, "id": "X" * 300},
        "long-package.json": {**base, "id": "DYT-LONG-PACKAGE", "affected": [
            {"package": {"ecosystem": "Debian:12", "name": "p" * 300}}, *base["affected"]]},
        "long-ecosystem.json": {**base, "id": "DYT-LONG-ECOSYSTEM", "affected": [
            {"package": {"ecosystem": "E" * 100, "name": "zlib"}}]},
        "nul.json": {**base, "id": "DYT-NUL", "summary": "a\u0000b\ud800c", "aliases": ["A" * 200, "CVE-1"]},
        "nul-id.json": {**base, "id": "DYT-\u0000"},
    }
    for name, doc in docs.items():
        (tmp_path / name).write_text(json.dumps(doc))
    report = await service(db).import_path(tmp_path)
    assert (report.read, report.added, report.bad, report.clipped) == (5, 3, 2, 2)
    assert sum("refused" in e for e in report.errors) == 2
    _, vulns = await service(db).match(INVENTORY)
    assert sorted(v.id for v in vulns if v.package == "zlib1g") == ["DYT-LONG-PACKAGE", "DYT-NUL"]
    nul = next(v for v in vulns if v.id == "DYT-NUL")
    assert nul.aliases == ("CVE-1",)
    assert nul.summary is not None
    assert "\x00" not in nul.summary


async def test_a_missing_path_is_a_clear_error(db: Database, tmp_path: Path) -> None:
    from dockyard.errors import RequestInvalid

    with pytest.raises(RequestInvalid, match="does not exist"):
        await service(db).import_path(tmp_path / "nothing-here")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving(root: Path) -> Iterator[str]:
    """A local HTTP server serving ``root``, laid out as osv.dev's bucket ({ecosystem}/all.zip); its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def osv_mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "mirror"
    root.mkdir()
    with serving(root) as url:
        yield url, root


async def test_sync_downloads_each_ecosystem_and_reports_the_missing(db: Database,
                                                                    osv_mirror: tuple[str, Path]) -> None:
    url, root = osv_mirror
    (root / "Debian").mkdir()
    write_zip(root / "Debian" / "all.zip", ADVISORIES)
    (root / "Rocky Linux").mkdir()
    write_zip(root / "Rocky Linux" / "all.zip", [], {"RLSA-1.json": json.dumps({
        "id": "RLSA-1", "modified": "2026-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "Rocky Linux:9", "name": "openssl"}}]}).encode()})
    vulndb = service(db, url=url + "/", ecosystems="Debian, Rocky Linux,Alpine")
    report = await vulndb.sync()
    assert (report.read, report.added, report.bad) == (27, 27, 1)
    [error] = report.errors
    assert error.startswith(f"{url}/Alpine/all.zip: download failed: Client error '404")
    assert report.source == url
    _, vulns = await vulndb.match(INVENTORY)
    assert found(vulns) == EXPECTED_ROWS
    assert (await vulndb.status()).ecosystems["Rocky Linux:9"] == 1


async def test_sync_with_nothing_downloadable_fails_and_changes_nothing(db: Database,
                                                                       osv_mirror: tuple[str, Path]) -> None:
    url, _ = osv_mirror
    vulndb = service(db, url=url, ecosystems="Debian")
    with pytest.raises(SyncFailed, match="no ecosystem could be downloaded"):
        await vulndb.sync()
    assert await vulndb.revision() is None


@pytest.fixture
def dockyard(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for key, value in {**CHEAP, "DOCKYARD_DATABASE__URL": database_url}.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> Result:
        result = runner.invoke(main, [*args, "--data-dir", str(tmp_path / "data")])
        assert (result.exit_code == 0) is ok, (args, result.output)
        assert "Traceback" not in result.output
        return result
    return run


def test_cli_import_status_and_sync(dockyard, tmp_path: Path, osv_mirror: tuple[str, Path],  # type: ignore[no-untyped-def]
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert "no advisories imported yet" in dockyard("vulndb", "status").output
    (tmp_path / "bad.json").write_text("nope")
    shutil.copy(ADVISORIES[0], tmp_path)
    result = dockyard("vulndb", "import", str(tmp_path))
    assert "skipped: " in result.output
    assert "bad.json: not an OSV advisory" in result.output
    assert "revision 1: 1 advisories read (1 added, 0 updated, 0 unchanged), 1 bad" in result.output
    report = json.loads(dockyard("vulndb", "import", str(DATA / "debian"), "--json").stdout)
    assert (report["revision"], report["added"], report["unchanged"]) == (2, 25, 1)
    status = json.loads(dockyard("vulndb", "status", "--json").stdout)
    assert status["revision"] == 2
    assert status["advisories"] == 26
    text = dockyard("vulndb", "status").output
    assert "revision 2" in text
    assert "Debian:12: 24" in text
    assert "Error" in dockyard("vulndb", "import", str(tmp_path / "missing"), ok=False).output

    url, root = osv_mirror
    monkeypatch.setenv("DOCKYARD_SCAN__VULNDB__URL", url)
    monkeypatch.setenv("DOCKYARD_SCAN__VULNDB__ECOSYSTEMS", "Debian")
    failed = dockyard("vulndb", "sync", ok=False)
    assert "no ecosystem could be downloaded" in failed.output
    (root / "Debian").mkdir()
    write_zip(root / "Debian" / "all.zip", ADVISORIES)
    synced = json.loads(dockyard("vulndb", "sync", "--json").stdout)
    assert (synced["revision"], synced["unchanged"], synced["bad"]) == (3, 26, 0)
