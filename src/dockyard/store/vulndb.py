"""The vulnerability database: OSV advisories, the packages they affect, and each import's revision.

    vuln_advisories   one row per advisory id (severity already scored), ``modified`` as OSV gives it
    vuln_affected     one row per affected entry: (ecosystem, package) indexed, ranges/versions as JSON
    vulndb_revisions  one row per import or sync with its counts; the highest id is the current one

An upsert of an advisory whose ``modified`` is unchanged does nothing; a changed one is rewritten
and its affected rows replaced. ``fit`` clips what the columns cannot hold before it gets here
(PostgreSQL enforces the lengths of ``store/limits.py``). The rows are plain records: turning
OSV documents into them, and them into matching candidates, is the service's (``dockyard.scan``
and the store do not import each other).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from dockyard.store import limits
from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import aware, utcnow
from dockyard.store.schema import vuln_advisories, vuln_affected, vulndb_revisions

LOOKUP_CHUNK = 400  # package names per candidates query


Key = tuple[str, str]  # (ecosystem, package) as stored


@dataclass(frozen=True, slots=True)
class AffectedRow:
    ecosystem: str  # as stored: "Debian:12", "Red Hat:enterprise_linux:9", "PyPI"
    package: str  # as stored (PyPI: PEP 503-normalised)
    ranges: list[dict[str, Any]]  # OSV's form: [{"type": ..., "events": [{"fixed": ...}, ...]}]
    versions: tuple[str, ...]
    severity: str | None


@dataclass(frozen=True, slots=True)
class AdvisoryRow:
    id: str
    modified: datetime | None
    withdrawn: bool
    aliases: tuple[str, ...]
    summary: str | None
    severity: str
    score: float | None
    vector: str | None
    affected: tuple[AffectedRow, ...] = ()


@dataclass(frozen=True, slots=True)
class EntryRow:
    """One stored affected entry, its JSON columns as their stored text: the caller decodes them in
    bulk (decoding ten thousand of them one by one through SQLAlchemy was most of a match's time)."""

    advisory_id: str
    ecosystem: str
    package: str
    ranges_json: str
    versions_json: str
    severity: str | None


@dataclass(frozen=True, slots=True)
class HeaderRow:
    """What a vulnerability report shows of an advisory."""

    id: str
    aliases_json: str
    summary: str | None
    severity: str
    score: float | None


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True, slots=True)
class RevisionRow:
    id: int
    imported_at: datetime
    source: str
    added: int
    updated: int
    unchanged: int

    def to_json(self) -> dict[str, Any]:
        return {"revision": self.id, "imported_at": self.imported_at.isoformat(), "source": self.source,
                "added": self.added, "updated": self.updated, "unchanged": self.unchanged}


def _clean(text: str | None) -> str | None:
    """Text every database stores: without NUL characters and lone surrogates."""
    if text is None or limits.can_hold(text, len(text)):
        return text
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def fit(advisory: AdvisoryRow) -> tuple[AdvisoryRow | None, list[str]]:
    """The advisory as the columns can hold it (None: refused), and what was dropped, for the report."""
    if not limits.can_hold(advisory.id, limits.VULN_ID):
        return None, [f"{advisory.id[:60]!r}...: an id over {limits.VULN_ID} characters or not text: refused"]
    problems: list[str] = []
    entries = []
    for entry in advisory.affected:
        ecosystem = entry.ecosystem
        if not limits.can_hold(ecosystem, limits.ECOSYSTEM) or not limits.can_hold(entry.package,
                                                                                     limits.PACKAGE_NAME):
            problems.append(f"{advisory.id}: an affected package name or ecosystem over the column size, skipped")
            continue
        entries.append(entry)
    aliases = tuple(a for a in advisory.aliases if limits.can_hold(a, limits.VULN_ID))
    vector = advisory.vector
    if vector is not None and not limits.can_hold(vector, limits.CVSS_VECTOR):
        vector = None
    return dataclasses.replace(advisory, affected=tuple(entries), aliases=aliases, vector=vector,
                               summary=_clean(advisory.summary)), problems


def _advisory_row(advisory: AdvisoryRow) -> dict[str, Any]:
    return {"id": advisory.id, "modified": advisory.modified, "aliases": list(advisory.aliases),
            "summary": advisory.summary, "severity": advisory.severity, "score": advisory.score,
            "vector": advisory.vector, "withdrawn": advisory.withdrawn}


def _affected_rows(advisory: AdvisoryRow) -> list[dict[str, Any]]:
    return [{"advisory_id": advisory.id, "ecosystem": e.ecosystem, "package": e.package,
             "ranges": e.ranges, "versions": list(e.versions), "severity": e.severity}
            for e in advisory.affected]


async def upsert(conn: AsyncConnection, batch: Sequence[AdvisoryRow]) -> UpsertCounts:
    """Insert new advisories, rewrite those whose ``modified`` changed (or is unknown), skip the rest.

    ``batch`` holds each id once (the last of a duplicate wins) and has gone through ``fit``.
    """
    unique = {a.id: a for a in batch}
    if conn.dialect.name == "postgresql":
        # asyncpg prepares each statement; after a few runs PostgreSQL may keep a generic plan made
        # while the tables were nearly empty (a sequential scan), which then scans every advisory
        # for each batch of a large import: an import went from 40 s to 12 min.
        await conn.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
    existing: dict[str, datetime | None] = {}
    ids = list(unique)
    for start in range(0, len(ids), 1000):
        rows = await conn.execute(sa.select(vuln_advisories.c.id, vuln_advisories.c.modified)
                                  .where(vuln_advisories.c.id.in_(ids[start:start + 1000])))
        existing.update({row.id: aware(row.modified) for row in rows})
    new = [a for a in unique.values() if a.id not in existing]
    changed = [a for a in unique.values()
               if a.id in existing and (a.modified is None or existing[a.id] != a.modified)]
    if changed:
        changed_ids = [a.id for a in changed]
        await conn.execute(sa.delete(vuln_affected).where(vuln_affected.c.advisory_id.in_(changed_ids)))
        await conn.execute(sa.delete(vuln_advisories).where(vuln_advisories.c.id.in_(changed_ids)))
    rewritten = new + changed
    if rewritten:
        await conn.execute(sa.insert(vuln_advisories), [_advisory_row(a) for a in rewritten])
        affected = [row for a in rewritten for row in _affected_rows(a)]
        if affected:
            await conn.execute(sa.insert(vuln_affected), affected)
    return UpsertCounts(len(new), len(changed), len(unique) - len(rewritten))


async def add_revision(conn: AsyncConnection, source: str, counts: UpsertCounts) -> int:
    """Record an import; its id is the database's new revision."""
    result = await conn.execute(sa.insert(vulndb_revisions).values(
        imported_at=utcnow(), source=source[:limits.VULNDB_SOURCE], added=counts.added, updated=counts.updated,
        unchanged=counts.unchanged).returning(vulndb_revisions.c.id))
    return int(result.scalar_one())


async def analyze(conn: AsyncConnection) -> None:
    """Refresh PostgreSQL's statistics of the tables an import changed: with none yet, it plans the
    match lookup as a scan of every advisory (seconds instead of tens of milliseconds)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("ANALYZE vuln_advisories, vuln_affected"))


async def current_revision(conn: AsyncConnection) -> int | None:
    found = await conn.scalar(sa.select(sa.func.max(vulndb_revisions.c.id)))
    return None if found is None else int(found)


async def revisions(conn: AsyncConnection, limit: int = 10) -> list[RevisionRow]:
    """The latest imports, newest first."""
    rows = await conn.execute(sa.select(vulndb_revisions).order_by(vulndb_revisions.c.id.desc()).limit(limit))
    return [RevisionRow(r.id, aware(r.imported_at), r.source, r.added, r.updated, r.unchanged) for r in rows]


async def advisories_per_ecosystem(conn: AsyncConnection) -> dict[str, int]:
    """How many advisories (withdrawn ones too) name a package of each ecosystem."""
    query = (sa.select(vuln_affected.c.ecosystem, sa.func.count(sa.distinct(vuln_affected.c.advisory_id)))
             .group_by(vuln_affected.c.ecosystem).order_by(vuln_affected.c.ecosystem))
    return {ecosystem: int(count) for ecosystem, count in await conn.execute(query)}


async def advisory_count(conn: AsyncConnection) -> int:
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(vuln_advisories)) or 0)


async def entries(conn: AsyncConnection, keys: Collection[Key]) -> dict[Key, list[EntryRow]]:
    """The affected entries stored under each of ``keys`` (of withdrawn advisories too: ``headers``
    leaves those out, for the few entries that match)."""
    wanted = set(keys)
    ecosystems = sorted({e for e, _ in wanted})
    names = sorted({n for _, n in wanted})
    found: dict[Key, list[EntryRow]] = {}
    f = vuln_affected.c
    for start in range(0, len(names), LOOKUP_CHUNK):
        query = (sa.select(f.advisory_id, f.ecosystem, f.package, sa.cast(f.ranges, sa.Text),
                           sa.cast(f.versions, sa.Text), f.severity)
                 .where(f.ecosystem.in_(ecosystems), f.package.in_(names[start:start + LOOKUP_CHUNK])))
        for row in (await conn.execute(query)).all():
            key = (row[1], row[2])
            if key in wanted:
                found.setdefault(key, []).append(EntryRow(*row))
    return found


async def headers(conn: AsyncConnection, ids: Collection[str]) -> dict[str, HeaderRow]:
    """The advisories of ``ids`` that exist and are not withdrawn."""
    found: dict[str, HeaderRow] = {}
    unique = sorted(set(ids))
    a = vuln_advisories.c
    for start in range(0, len(unique), 1000):
        query = (sa.select(a.id, sa.cast(a.aliases, sa.Text), a.summary, a.severity, a.score)
                 .where(a.id.in_(unique[start:start + 1000]), a.withdrawn.is_(False)))
        for row in (await conn.execute(query)).all():
            found[row[0]] = HeaderRow(*row)
    return found
