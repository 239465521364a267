"""Per-project policies as rows (DESIGN.md decision 7): retention policies, immutable-tag rules,
naming rules and the storage quota. The evaluators in ``dockyard.policy`` are pure functions over
these; the services check and record every change (audit events)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.schema import immutable_rules, projects, retention_policies
from dockyard.store.statements import insert_ignore, upsert

# -- naming rules and quota (columns of the project) -------------------------------------------


@dataclass(frozen=True, slots=True)
class ProjectRules:
    project_id: int
    quota_bytes: int | None
    repository_pattern: str | None  # a regex the repository name after "<project>/" must match
    tag_pattern: str | None  # a regex every pushed tag must match


async def project_rules(conn: AsyncConnection, project_id: int) -> ProjectRules | None:
    row = (await conn.execute(sa.select(projects.c.id, projects.c.quota_bytes, projects.c.repository_pattern,
                                        projects.c.tag_pattern).where(projects.c.id == project_id))).first()
    return None if row is None else ProjectRules(row.id, row.quota_bytes, row.repository_pattern, row.tag_pattern)


async def set_quota(conn: AsyncConnection, project_id: int, quota_bytes: int | None) -> None:
    await conn.execute(sa.update(projects).where(projects.c.id == project_id).values(quota_bytes=quota_bytes))


async def set_naming(conn: AsyncConnection, project_id: int, *, repository_pattern: str | None,
                     tag_pattern: str | None) -> None:
    await conn.execute(sa.update(projects).where(projects.c.id == project_id).values(
        repository_pattern=repository_pattern, tag_pattern=tag_pattern))


# -- immutable tags ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImmutableRule:
    id: int
    project_id: int
    repository_glob: str  # over the repository name after "<project>/"
    tag_glob: str
    created_at: datetime
    created_by: str | None


async def immutable_rules_of(conn: AsyncConnection, project_id: int) -> list[ImmutableRule]:
    rows = await conn.execute(sa.select(immutable_rules).where(immutable_rules.c.project_id == project_id)
                              .order_by(immutable_rules.c.id))
    return [ImmutableRule(r.id, r.project_id, r.repository_glob, r.tag_glob, r.created_at, r.created_by)
            for r in rows]


async def add_immutable_rule(conn: AsyncConnection, project_id: int, repository_glob: str, tag_glob: str,
                             created_by: str | None) -> bool:
    """False if the project has this rule already."""
    result = await insert_ignore(conn, immutable_rules, [{
        "project_id": project_id, "repository_glob": repository_glob, "tag_glob": tag_glob,
        "created_at": utcnow(), "created_by": created_by}])
    return bool(result)


async def delete_immutable_rule(conn: AsyncConnection, project_id: int, rule_id: int) -> bool:
    result = await conn.execute(sa.delete(immutable_rules).where(
        immutable_rules.c.project_id == project_id, immutable_rules.c.id == rule_id))
    return result.rowcount > 0


# -- retention ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetentionRules:
    """What a retention policy keeps; None leaves a rule out. See ``dockyard.policy.retention``."""

    repository_glob: str = "*"
    keep_last: int | None = None
    keep_days: int | None = None
    keep_pulled_days: int | None = None
    keep_tags: str | None = None
    keep_tags_invert: bool = False
    untagged_days: int | None = None
    schedule: str | None = None


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    id: int
    project_id: int
    rules: RetentionRules
    created_at: datetime
    updated_at: datetime
    last_run_at: datetime | None


_RULE_FIELDS = tuple(f.name for f in fields(RetentionRules))


def _policy(row: Any) -> RetentionPolicy:
    rules = RetentionRules(**{name: getattr(row, name) for name in _RULE_FIELDS})
    return RetentionPolicy(row.id, row.project_id, rules, row.created_at, row.updated_at, row.last_run_at)


async def retention_policies_of(conn: AsyncConnection, project_id: int) -> list[RetentionPolicy]:
    rows = await conn.execute(sa.select(retention_policies).where(retention_policies.c.project_id == project_id)
                              .order_by(retention_policies.c.repository_glob))
    return [_policy(r) for r in rows]


async def all_retention_policies(conn: AsyncConnection) -> list[RetentionPolicy]:
    rows = await conn.execute(sa.select(retention_policies).order_by(retention_policies.c.id))
    return [_policy(r) for r in rows]


async def put_retention_policy(conn: AsyncConnection, project_id: int, rules: RetentionRules) -> None:
    """Create or replace the project's policy for ``rules.repository_glob``."""
    now = utcnow()
    values = {name: getattr(rules, name) for name in _RULE_FIELDS}
    await upsert(conn, retention_policies, {"project_id": project_id, **values, "created_at": now,
                                            "updated_at": now},
                 keys=("project_id", "repository_glob"), updates={**values, "updated_at": now})


async def delete_retention_policy(conn: AsyncConnection, project_id: int, repository_glob: str) -> bool:
    result = await conn.execute(sa.delete(retention_policies).where(
        retention_policies.c.project_id == project_id, retention_policies.c.repository_glob == repository_glob))
    return result.rowcount > 0


async def mark_retention_run(conn: AsyncConnection, policy_id: int, at: datetime) -> None:
    await conn.execute(sa.update(retention_policies).where(retention_policies.c.id == policy_id)
                       .values(last_run_at=at))
