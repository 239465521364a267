"""A project's push and pull admission rules and its vulnerability allow-list, as rows.

One ``admission_rules`` row per (project, stage, check): ``stage`` is "push" or "pull", ``check``
one of the checks ``policy/admission.py`` knows, ``mode`` "enforce" or "warn", with the
vulnerability threshold (``severity``) or the required label keys (``labels``) where the check
takes one. One ``vuln_allowlist`` row per (project, vulnerability id). The evaluator in
``dockyard.policy.admission`` is pure over these records; ``services/admission.py`` checks and
records every change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import aware, utcnow
from dockyard.store.schema import (
    admission_rules,
    manifest_references,
    manifests,
    repositories,
    repository_blobs,
    trusted_keys,
    vuln_allowlist,
)


@dataclass(frozen=True, slots=True)
class AdmissionRule:
    """One rule: at ``stage`` (push, pull), run ``check`` in ``mode`` (enforce, warn)."""

    stage: str
    check: str
    mode: str
    severity: str | None = None  # vulnerabilities: the lowest severity that counts
    labels: tuple[str, ...] = ()  # labels: the keys an image must carry

    @property
    def name(self) -> str:
        return f"{self.stage}.{self.check}"


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """A vulnerability a project accepts, why, and until when (None: for good)."""

    vulnerability: str  # an OSV id or alias: matches a vulnerability with this id or alias
    reason: str
    expires_at: datetime | None = None  # the entry stops counting at this instant
    created_at: datetime | None = field(default=None, compare=False)
    created_by: str | None = field(default=None, compare=False)


# -- rules -------------------------------------------------------------------------------------


async def rules_of(conn: AsyncConnection, project_id: int) -> list[AdmissionRule]:
    rows = await conn.execute(sa.select(admission_rules).where(admission_rules.c.project_id == project_id)
                              .order_by(admission_rules.c.stage, admission_rules.c.check))
    return [AdmissionRule(r.stage, r.check, r.mode, r.severity, tuple(r.labels or ())) for r in rows]


async def replace_rules(conn: AsyncConnection, project_id: int, rules: Iterable[AdmissionRule]) -> None:
    """Make the project's rules exactly ``rules`` (inside the caller's transaction)."""
    await conn.execute(sa.delete(admission_rules).where(admission_rules.c.project_id == project_id))
    now = utcnow()
    values = [{"project_id": project_id, "stage": r.stage, "check": r.check, "mode": r.mode,
               "severity": r.severity, "labels": list(r.labels) or None, "created_at": now, "updated_at": now}
              for r in rules]
    if values:
        await conn.execute(sa.insert(admission_rules), values)


# -- the allow-list ----------------------------------------------------------------------------


async def allowlist_of(conn: AsyncConnection, project_id: int) -> list[AllowEntry]:
    rows = await conn.execute(sa.select(vuln_allowlist).where(vuln_allowlist.c.project_id == project_id)
                              .order_by(vuln_allowlist.c.vulnerability))
    return [AllowEntry(r.vulnerability, r.reason, aware(r.expires_at), aware(r.created_at), r.created_by)
            for r in rows]


async def put_allowed(conn: AsyncConnection, project_id: int, entry: AllowEntry) -> None:
    """Add the entry, or replace the reason and expiry of the one with the same id."""
    await delete_allowed(conn, project_id, entry.vulnerability)
    await conn.execute(sa.insert(vuln_allowlist).values(
        project_id=project_id, vulnerability=entry.vulnerability, reason=entry.reason,
        expires_at=entry.expires_at, created_at=entry.created_at or utcnow(), created_by=entry.created_by))


async def delete_allowed(conn: AsyncConnection, project_id: int, vulnerability: str) -> bool:
    result = await conn.execute(sa.delete(vuln_allowlist).where(
        vuln_allowlist.c.project_id == project_id, vuln_allowlist.c.vulnerability == vulnerability))
    return bool(result.rowcount)


# -- what the pull rules read ------------------------------------------------------------------


async def trusted_key_names(conn: AsyncConnection, project_id: int) -> list[tuple[str, str]]:
    """(name, hex fingerprint) of each key the project trusts, for a refusal's message."""
    rows = await conn.execute(sa.select(trusted_keys.c.name, trusted_keys.c.fingerprint)
                              .where(trusted_keys.c.project_id == project_id).order_by(trusted_keys.c.name))
    return [(r.name, r.fingerprint) for r in rows]


async def parent_digests(conn: AsyncConnection, repository: str, digest: str) -> list[str]:
    """The indexes of the repository that list ``digest`` as a child."""
    rows = await conn.execute(
        sa.select(manifests.c.digest).join(manifest_references, manifest_references.c.manifest_id == manifests.c.id)
        .join(repositories, repositories.c.id == manifests.c.repository_id)
        .where(repositories.c.name == repository, manifest_references.c.kind == "manifest",
               manifest_references.c.digest == digest).order_by(manifests.c.id).limit(20))
    return [r.digest for r in rows]


async def missing_references(conn: AsyncConnection, repository: str, blobs: list[str], children: list[str]
                             ) -> list[str]:
    """Which blobs and child manifests the repository lacks (unlocked: the push checks again, locked,
    in its own transaction)."""
    repository_id = await conn.scalar(sa.select(repositories.c.id).where(repositories.c.name == repository))
    if repository_id is None:
        return blobs + children
    have = set((await conn.scalars(sa.select(repository_blobs.c.digest).where(
        repository_blobs.c.repository_id == repository_id, repository_blobs.c.digest.in_(blobs or [""])))).all())
    have |= set((await conn.scalars(sa.select(manifests.c.digest).where(
        manifests.c.repository_id == repository_id, manifests.c.digest.in_(children or [""])))).all())
    return [d for d in blobs + children if d not in have]


async def manifest_content(conn: AsyncConnection, repository: str, digest: str) -> tuple[str, bytes] | None:
    """(media type, bytes) of a manifest of the repository, by digest."""
    row = (await conn.execute(sa.select(manifests.c.media_type, manifests.c.content)
                              .join(repositories, repositories.c.id == manifests.c.repository_id)
                              .where(repositories.c.name == repository, manifests.c.digest == digest))).first()
    return None if row is None else (row.media_type, bytes(row.content))
