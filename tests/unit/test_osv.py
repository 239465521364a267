"""OSV parsing, severity and the streamed readers (scan/osv.py, scan/severity.py)."""

from __future__ import annotations

import json
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dockyard.scan import osv, severity

DATA = Path(__file__).parents[1] / "data" / "osv" / "debian"
V3_CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
V4_MEDIUM = "CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:N/VC:H/VI:L/VA:N/SC:N/SI:N/SA:N"


def doc(**fields: Any) -> dict[str, Any]:
    return {"id": "TEST-1", "modified": "2026-01-02T03:04:05Z", "affected": [], **fields}


def test_parse_reads_every_field() -> None:
    advisory = osv.parse(json.loads((DATA / "DYT-2026-0022.json").read_text()))
    assert advisory.id == "DYT-2026-0022"
    assert advisory.modified == datetime(2026, 11, 1, tzinfo=UTC)
    assert advisory.aliases == ("CVE-2026-90022",)
    assert advisory.summary is not None
    assert advisory.summary.startswith("libzstd: three ranges")
    assert (advisory.severity, advisory.score) == ("low", 3.3)
    assert not advisory.withdrawn
    [entry] = advisory.affected
    assert (entry.ecosystem, entry.package) == ("Debian:12", "libzstd")
    assert [r.events for r in entry.ranges][1] == (("introduced", "1.5.4+dfsg2-1"), ("fixed", "1.5.4+dfsg2-6"))


def test_withdrawn_versions_and_details_as_summary() -> None:
    advisory = osv.parse(doc(withdrawn="2026-02-01T00:00:00Z", details="first line\nsecond", affected=[
        {"package": {"ecosystem": "PyPI", "name": "Django"}, "versions": ["4.2", "4.2.1"],
         "database_specific": {"severity": "Moderate"}}]))
    assert advisory.withdrawn
    assert advisory.summary == "first line"
    assert advisory.affected[0].versions == ("4.2", "4.2.1")
    assert advisory.affected[0].severity == "medium"
    assert advisory.severity == "unknown"


@pytest.mark.parametrize(("data", "message"), [
    ([1, 2], "not a JSON object"),
    ({"summary": "no id"}, "no \"id\""),
    (doc(affected={"a": 1}), "not a list"),
    (doc(affected=[{"package": {"name": "x"}}]), "no ecosystem or name"),
    (doc(affected=[{"package": {"ecosystem": "npm", "name": "x"}, "ranges": [{"type": "SEMVER"}]}]), "events"),
])
def test_not_an_advisory(data: Any, message: str) -> None:
    with pytest.raises(osv.OsvError, match=message):
        osv.parse(data)


@pytest.mark.parametrize(("fields", "expected"), [
    ({"severity": [{"type": "CVSS_V3", "score": V3_CRITICAL}]}, ("critical", 9.8)),
    ({"severity": [{"type": "CVSS_V4", "score": V4_MEDIUM}]}, ("medium", 6.9)),
    ({"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}]}, ("high", 7.5)),
    ({"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N"}]}, ("low", 3.3)),
    ({"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N"}]}, ("unknown", 0.0)),
    # a malformed vector falls back to the database's word
    ({"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/garbage"}], "database_specific": {"severity": "HIGH"}},
     ("high", None)),
    ({"database_specific": {"severity": "Moderate"}}, ("medium", None)),
    ({"database_specific": {"severity": "important"}}, ("high", None)),
    ({"database_specific": {"severity": "CRITICAL"}}, ("critical", None)),
    ({"database_specific": {"severity": "negligible"}}, ("low", None)),
    ({"database_specific": {"severity": "whatever"}}, ("unknown", None)),
    ({"severity": [{"type": "Ubuntu", "score": "medium"}]}, ("medium", None)),
    ({}, ("unknown", None)),
])
def test_severity(fields: dict[str, Any], expected: tuple[str, float | None]) -> None:
    scored = severity.of_advisory(doc(**fields))
    assert (scored.severity, scored.score) == expected


def test_v4_wins_over_v3() -> None:
    scored = severity.of_advisory(doc(severity=[{"type": "CVSS_V3", "score": V3_CRITICAL},
                                                {"type": "CVSS_V4", "score": V4_MEDIUM}]))
    assert (scored.severity, scored.vector) == ("medium", V4_MEDIUM)


@pytest.mark.parametrize(("score", "name"), [(9.0, "critical"), (8.9, "high"), (7.0, "high"), (6.9, "medium"),
                                             (4.0, "medium"), (3.9, "low"), (0.1, "low"), (0.0, "unknown")])
def test_bands_on_both_sides(score: float, name: str) -> None:
    assert severity.band(score) == name


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def ids(items: list[osv.Item]) -> list[str]:
    return sorted(i.advisory.id for i in items if i.advisory)


def test_reads_a_directory_nested_directories_and_one_file(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    shutil.copy(DATA / "DYT-2026-0001.json", tmp_path)
    shutil.copy(DATA / "DYT-2026-0002.json", nested)
    (nested / "notes.txt").write_text("not read")
    assert ids(list(osv.read(tmp_path))) == ["DYT-2026-0001", "DYT-2026-0002"]
    assert ids(list(osv.read(nested / "DYT-2026-0002.json"))) == ["DYT-2026-0002"]
    assert len(ids(list(osv.read(DATA)))) == 26


def test_reads_a_zip_and_a_directory_of_zips(tmp_path: Path) -> None:
    files = sorted(DATA.glob("*.json"))
    write_zip(tmp_path / "debian.zip", {f.name: f.read_bytes() for f in files[:20]})
    (tmp_path / "more").mkdir()
    write_zip(tmp_path / "more" / "all.zip", {f.name: f.read_bytes() for f in files[20:]} | {"README": b"x"})
    assert len(ids(list(osv.read(tmp_path / "debian.zip")))) == 20
    assert len(ids(list(osv.read(tmp_path)))) == 26


def test_bad_files_are_reported_by_name_and_reading_goes_on(tmp_path: Path) -> None:
    shutil.copy(DATA / "DYT-2026-0001.json", tmp_path / "b-good.json")
    (tmp_path / "a-broken.json").write_text("{not json")
    (tmp_path / "c-list.json").write_text("[1, 2]")
    (tmp_path / "d-binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "e-damaged.zip").write_bytes(b"PK\x03\x04 not really a zip")
    write_zip(tmp_path / "f.zip", {"no-id.json": b'{"summary": "x"}',
                                   "ok.json": (DATA / "DYT-2026-0002.json").read_bytes()})
    items = list(osv.read(tmp_path))
    assert ids(items) == ["DYT-2026-0001", "DYT-2026-0002"]
    errors = sorted(i.error or "" for i in items if i.advisory is None)
    assert len(errors) == 5
    assert "a-broken.json: not an OSV advisory" in errors[0]
    assert "c-list.json: not an OSV advisory: not a JSON object" in errors[1]
    assert "d-binary.json" in errors[2]
    assert "e-damaged.zip: not a readable zip file" in errors[3]
    assert "f.zip:no-id.json: not an OSV advisory: no \"id\"" in errors[4]


def test_a_missing_file_is_an_item_with_the_reason(tmp_path: Path) -> None:
    [item] = osv.read(tmp_path / "gone.json")
    assert item.advisory is None
    assert item.error is not None
    assert "gone.json: cannot read it" in item.error
