"""The rules a push is checked against, read by project name in one lookup per request.

``store/policies.py`` owns writing them; this module reads what enforcement needs: the project's
quota and naming patterns, and (for manifest pushes and deletes) its immutable-tag rules, joined
into one query so a request costs one round trip however many tags it names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.db import Database
from dockyard.store.policies import ImmutableRule, ProjectRules
from dockyard.store.schema import immutable_rules, projects

_PROJECT_COLUMNS = (projects.c.id, projects.c.quota_bytes, projects.c.repository_pattern, projects.c.tag_pattern)

PROJECT_RULES = sa.select(*_PROJECT_COLUMNS).where(projects.c.name == sa.bindparam("project"))

RULES_WITH_IMMUTABLE = (
    sa.select(*_PROJECT_COLUMNS, immutable_rules.c.id, immutable_rules.c.repository_glob,
              immutable_rules.c.tag_glob, immutable_rules.c.created_at, immutable_rules.c.created_by)
    .select_from(projects.outerjoin(immutable_rules, immutable_rules.c.project_id == projects.c.id))
    .where(projects.c.name == sa.bindparam("project")).order_by(immutable_rules.c.id))


@dataclass(frozen=True, slots=True)
class Rules:
    """A project's rules as one request sees them; ``project`` None: the project has no row
    (a repository pushed without access control), so nothing is enforced."""

    project: ProjectRules | None
    immutable: tuple[ImmutableRule, ...] = ()


def _project(row: Any) -> ProjectRules:
    return ProjectRules(int(row[0]), row[1], row[2], row[3])


async def project_rules_now(db: Database, project: str) -> Rules:
    """Quota and naming patterns, as a hot-path read outside any transaction (an upload POST)."""
    row = await db.first(PROJECT_RULES, project=project)
    return Rules(None if row is None else _project(row))


async def project_rules(conn: AsyncConnection, project: str, *, immutable: bool = True) -> Rules:
    """Quota, naming patterns and (``immutable``) immutable-tag rules, inside the caller's transaction."""
    if not immutable:
        row = (await conn.execute(PROJECT_RULES, {"project": project})).first()
        return Rules(None if row is None else _project(row))
    rows = (await conn.execute(RULES_WITH_IMMUTABLE, {"project": project})).all()
    if not rows:
        return Rules(None)
    found = tuple(ImmutableRule(r[4], r[0], r[5], r[6], r[7], r[8]) for r in rows if r[4] is not None)
    return Rules(_project(rows[0]), found)
