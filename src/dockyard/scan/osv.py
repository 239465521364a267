"""OSV advisories (https://ossf.github.io/osv-schema/) as records, and reading them from disk.

``read(path)`` yields one ``Item`` per advisory file found under ``path``, streamed:

    path is a .json file        that one advisory
    path is a .zip file         each member ending in .json (osv.dev's ``{ecosystem}/all.zip``
                                holds one advisory per member); members are read one at a time,
                                never the whole archive into memory
    path is a directory         every .json and .zip below it, nested directories too, in name order

A file that cannot be read or is not an advisory is an ``Item`` with ``error`` set (naming the
file and the reason): the import counts and reports it, and goes on.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockyard.scan import severity as severities

EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
MAX_ADVISORY_BYTES = 16 * 1024 * 1024  # one advisory larger than this is not an advisory


class OsvError(ValueError):
    """A document that is not a usable OSV advisory; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Range:
    type: str  # "ECOSYSTEM", "SEMVER", "GIT"
    events: tuple[tuple[str, str], ...]  # (kind, version) in the advisory's order

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "events": [{kind: version} for kind, version in self.events]}


@dataclass(frozen=True, slots=True)
class Affected:
    """One ``affected`` entry: a package of an ecosystem, and which of its versions."""

    ecosystem: str  # as the advisory writes it: "Debian:12", "Alpine:v3.18", "PyPI"
    package: str
    ranges: tuple[Range, ...] = ()
    versions: tuple[str, ...] = ()  # explicitly affected versions
    severity: str | None = None  # the entry's own (database_specific / ecosystem_specific / vector)


@dataclass(frozen=True, slots=True)
class Advisory:
    id: str
    modified: datetime | None
    withdrawn: bool
    aliases: tuple[str, ...]
    summary: str | None
    severity: str  # one of report.SEVERITIES ("unknown" when the advisory gives none)
    score: float | None = None  # CVSS base score
    vector: str | None = None
    affected: tuple[Affected, ...] = ()


@dataclass(frozen=True, slots=True)
class Item:
    """One file (or zip member) read: its advisory, or why it is not one."""

    source: str  # "path/to/file.json" or "path/to/all.zip:member.json"
    advisory: Advisory | None = None
    error: str | None = None


def parse(data: Any) -> Advisory:
    """An OSV document as an ``Advisory``; raises ``OsvError`` if it is not one."""
    if not isinstance(data, Mapping):
        raise OsvError("not a JSON object")
    ident = data.get("id")
    if not isinstance(ident, str) or not ident.strip():
        raise OsvError("no \"id\"")
    summary = data.get("summary") or data.get("details")
    scored = severities.of_advisory(data)
    affected = data.get("affected") or []
    if not isinstance(affected, list):
        raise OsvError(f"{ident}: \"affected\" is not a list")
    return Advisory(
        id=ident.strip(), modified=_timestamp(data.get("modified")), withdrawn=bool(data.get("withdrawn")),
        aliases=tuple(a for a in data.get("aliases") or () if isinstance(a, str)),
        summary=summary.strip().splitlines()[0][:1000] if isinstance(summary, str) and summary.strip() else None,
        severity=scored.severity, score=scored.score, vector=scored.vector,
        affected=tuple(entry for raw in affected if (entry := _affected(ident, raw)) is not None))


def _affected(ident: str, raw: Any) -> Affected | None:
    if not isinstance(raw, Mapping):
        raise OsvError(f"{ident}: an \"affected\" entry is not an object")
    package = raw.get("package")
    if not isinstance(package, Mapping):
        return None  # an entry without a package (a bare GIT range): nothing installed can match it
    ecosystem, name = package.get("ecosystem"), package.get("name")
    if not isinstance(ecosystem, str) or not isinstance(name, str) or not ecosystem or not name:
        raise OsvError(f"{ident}: an \"affected\" package has no ecosystem or name")
    ranges = tuple(_range(ident, r) for r in raw.get("ranges") or ())
    versions = tuple(str(v) for v in raw.get("versions") or () if isinstance(v, str | int | float))
    return Affected(ecosystem, name, ranges, versions, severities.of_affected(raw))


def _range(ident: str, raw: Any) -> Range:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("events"), list):
        raise OsvError(f"{ident}: a range has no \"events\" list")
    events = []
    for event in raw["events"]:
        if not isinstance(event, Mapping):
            raise OsvError(f"{ident}: a range event is not an object")
        for kind in EVENT_KINDS:
            if isinstance(event.get(kind), str):
                events.append((kind, event[kind]))
    return Range(str(raw.get("type") or "ECOSYSTEM"), tuple(events))


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_bytes(source: str, raw: bytes) -> Item:
    """One file's bytes as an ``Item`` (never raises for bad content)."""
    try:
        return Item(source, parse(json.loads(raw)))
    except (OsvError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return Item(source, error=f"{source}: not an OSV advisory: {exc}")


def read(path: Path) -> Iterator[Item]:
    """Every advisory file under ``path`` (a .json file, a .zip file, or a directory of them)."""
    if path.is_dir():
        yield from _read_dir(path)
    elif path.suffix.lower() == ".zip":
        yield from _read_zip(path)
    else:
        yield _read_file(path)


def _read_dir(root: Path) -> Iterator[Item]:
    for directory, subdirs, names in os.walk(root, onerror=None):
        subdirs.sort()
        for name in sorted(names):
            path = Path(directory, name)
            suffix = path.suffix.lower()
            if suffix == ".zip":
                yield from _read_zip(path)
            elif suffix == ".json":
                yield _read_file(path)


def _read_file(path: Path) -> Item:
    try:
        if path.stat().st_size > MAX_ADVISORY_BYTES:
            return Item(str(path), error=f"{path}: larger than {MAX_ADVISORY_BYTES} bytes, not an advisory")
        return parse_bytes(str(path), path.read_bytes())
    except OSError as exc:
        return Item(str(path), error=f"{path}: cannot read it: {exc.strerror or exc}")


def _read_zip(path: Path) -> Iterator[Item]:
    try:
        archive = zipfile.ZipFile(path)  # reads the central directory only
    except (OSError, zipfile.BadZipFile) as exc:
        yield Item(str(path), error=f"{path}: not a readable zip file: {exc}")
        return
    with archive:
        for member in archive.infolist():
            if member.is_dir() or not member.filename.lower().endswith(".json"):
                continue
            source = f"{path}:{member.filename}"
            if member.file_size > MAX_ADVISORY_BYTES:
                yield Item(source, error=f"{source}: larger than {MAX_ADVISORY_BYTES} bytes, not an advisory")
                continue
            try:
                with archive.open(member) as stream:
                    raw = stream.read()
            except (OSError, zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:  # a damaged member
                yield Item(source, error=f"{source}: cannot read it from the zip: {exc}")
                continue
            yield parse_bytes(source, raw)
