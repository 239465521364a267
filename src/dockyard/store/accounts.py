"""Users, projects, teams, memberships, robots, refresh tokens, signing keys and login failures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import aware, utcnow
from dockyard.store.schema import (
    login_failures,
    project_members,
    projects,
    refresh_tokens,
    robots,
    signing_keys,
    team_members,
    teams,
    users,
)
from dockyard.store.statements import insert_ignore, upsert


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    password_hash: str
    is_admin: bool
    disabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    name: str
    public: bool
    created_at: datetime
    created_by: str | None


@dataclass(frozen=True, slots=True)
class Robot:
    id: int
    name: str
    project_id: int | None
    project: str | None
    secret_hash: str
    actions: tuple[str, ...]
    repositories: tuple[str, ...]
    expires_at: datetime | None
    revoked: bool
    created_by: int | None
    creator: str | None
    creator_is_admin: bool
    created_at: datetime
    creator_disabled: bool = False  # a robot holds no more than its creator: nothing, while disabled


# -- users ------------------------------------------------------------------------------------

def _user(row: Any) -> User:
    return User(row.id, row.name, row.password_hash, bool(row.is_admin), bool(row.disabled),
                aware(row.created_at) or utcnow())


async def find_user(conn: AsyncConnection, name: str) -> User | None:
    row = (await conn.execute(sa.select(users).where(users.c.name == name))).first()
    return None if row is None else _user(row)


async def list_users(conn: AsyncConnection) -> list[User]:
    return [_user(r) for r in await conn.execute(sa.select(users).order_by(users.c.name))]


async def create_user(conn: AsyncConnection, name: str, password_hash: str, *, is_admin: bool = False) -> bool:
    """False when a user of that name exists already (the insert is skipped, not an error)."""
    now = utcnow()
    return await insert_ignore(conn, users, [{"name": name, "password_hash": password_hash, "is_admin": is_admin,
                                              "disabled": False, "created_at": now, "updated_at": now}]) == 1


async def update_user(conn: AsyncConnection, user_id: int, **values: Any) -> None:
    await conn.execute(sa.update(users).where(users.c.id == user_id).values(updated_at=utcnow(), **values))


async def delete_user(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(sa.delete(users).where(users.c.id == user_id))


USER_STATUS = sa.select(users.c.id, users.c.disabled, users.c.is_admin).where(
    users.c.name == sa.bindparam("name"))


# -- projects ---------------------------------------------------------------------------------

def _project(row: Any) -> Project:
    return Project(row.id, row.name, bool(row.public), aware(row.created_at) or utcnow(), row.created_by)


async def find_project(conn: AsyncConnection, name: str) -> Project | None:
    row = (await conn.execute(sa.select(projects).where(projects.c.name == name))).first()
    return None if row is None else _project(row)


async def list_projects(conn: AsyncConnection) -> list[Project]:
    return [_project(r) for r in await conn.execute(sa.select(projects).order_by(projects.c.name))]


async def ensure_project(conn: AsyncConnection, name: str, *, public: bool, created_by: str | None) -> bool:
    """Create the project unless it exists; True when this call created it."""
    return await insert_ignore(conn, projects, [{"name": name, "public": public, "created_at": utcnow(),
                                                 "created_by": created_by}]) == 1


async def update_project(conn: AsyncConnection, project_id: int, **values: Any) -> None:
    await conn.execute(sa.update(projects).where(projects.c.id == project_id).values(**values))


async def delete_project(conn: AsyncConnection, project_id: int) -> None:
    await conn.execute(sa.delete(projects).where(projects.c.id == project_id))


PROJECT_VISIBILITY = sa.select(projects.c.id, projects.c.public).where(projects.c.name == sa.bindparam("name"))

# The roles a user holds in a project, directly and through teams.
USER_ROLES = sa.select(project_members.c.role).where(
    project_members.c.project_id == sa.bindparam("project_id"),
    sa.or_(project_members.c.user_id == sa.bindparam("user_id"),
           project_members.c.team_id.in_(
               sa.select(team_members.c.team_id).where(team_members.c.user_id == sa.bindparam("user_id")))))


async def user_roles(conn: AsyncConnection, project_id: int, user_id: int) -> list[str]:
    return list((await conn.scalars(USER_ROLES, {"project_id": project_id, "user_id": user_id})).all())


async def member_projects(conn: AsyncConnection, user_id: int) -> list[str]:
    """Names of the projects where the user holds any role (directly or through a team)."""
    query = sa.select(projects.c.name).join(project_members, project_members.c.project_id == projects.c.id).where(
        sa.or_(project_members.c.user_id == user_id,
               project_members.c.team_id.in_(sa.select(team_members.c.team_id).where(
                   team_members.c.user_id == user_id)))).distinct()
    return list((await conn.scalars(query)).all())


# -- teams and members ------------------------------------------------------------------------

async def find_team(conn: AsyncConnection, project_id: int, name: str) -> int | None:
    return await conn.scalar(sa.select(teams.c.id).where(teams.c.project_id == project_id, teams.c.name == name))


async def create_team(conn: AsyncConnection, project_id: int, name: str) -> bool:
    return await insert_ignore(conn, teams, [{"project_id": project_id, "name": name,
                                              "created_at": utcnow()}]) == 1


async def delete_team(conn: AsyncConnection, team_id: int) -> None:
    await conn.execute(sa.delete(teams).where(teams.c.id == team_id))


async def list_teams(conn: AsyncConnection, project_id: int) -> list[tuple[str, list[str]]]:
    """Each team of the project with its members' names."""
    found: dict[str, list[str]] = {}
    query = (sa.select(teams.c.name, users.c.name.label("user"))
             .select_from(teams.outerjoin(team_members, team_members.c.team_id == teams.c.id)
                          .outerjoin(users, users.c.id == team_members.c.user_id))
             .where(teams.c.project_id == project_id).order_by(teams.c.name, users.c.name))
    for row in await conn.execute(query):
        members = found.setdefault(row.name, [])
        if row.user is not None:
            members.append(row.user)
    return list(found.items())


async def add_team_member(conn: AsyncConnection, team_id: int, user_id: int) -> None:
    await insert_ignore(conn, team_members, [{"team_id": team_id, "user_id": user_id}])


async def remove_team_member(conn: AsyncConnection, team_id: int, user_id: int) -> bool:
    result = await conn.execute(sa.delete(team_members).where(
        team_members.c.team_id == team_id, team_members.c.user_id == user_id))
    return bool(result.rowcount)


def _member_filter(user_id: int | None, team_id: int | None) -> sa.ColumnElement[bool]:
    if user_id is not None:
        return project_members.c.user_id == user_id
    return project_members.c.team_id == team_id


async def set_member(conn: AsyncConnection, project_id: int, role: str, *, user_id: int | None = None,
                     team_id: int | None = None) -> None:
    principal = f"user:{user_id}" if user_id is not None else f"team:{team_id}"
    await upsert(conn, project_members, {"project_id": project_id, "principal": principal, "user_id": user_id,
                                         "team_id": team_id, "role": role, "created_at": utcnow()},
                 keys=["project_id", "principal"])


async def remove_member(conn: AsyncConnection, project_id: int, *, user_id: int | None = None,
                        team_id: int | None = None) -> bool:
    result = await conn.execute(sa.delete(project_members).where(
        project_members.c.project_id == project_id, _member_filter(user_id, team_id)))
    return bool(result.rowcount)


async def is_member(conn: AsyncConnection, project_id: int, *, user_id: int | None = None,
                    team_id: int | None = None) -> bool:
    """Whether the user or team holds a role in the project (directly: a team's members aside)."""
    found = await conn.scalar(sa.select(project_members.c.project_id).where(
        project_members.c.project_id == project_id, _member_filter(user_id, team_id)).limit(1))
    return found is not None


async def list_members(conn: AsyncConnection, project_id: int) -> list[dict[str, str]]:
    team_projects = projects.alias("team_projects")
    query = (sa.select(project_members.c.role, users.c.name.label("user"), teams.c.name.label("team"),
                       team_projects.c.name.label("team_project"))
             .select_from(project_members.outerjoin(users, users.c.id == project_members.c.user_id)
                          .outerjoin(teams, teams.c.id == project_members.c.team_id)
                          .outerjoin(team_projects, team_projects.c.id == teams.c.project_id))
             .where(project_members.c.project_id == project_id))
    found = []
    for row in await conn.execute(query):
        if row.user is not None:
            found.append({"kind": "user", "name": row.user, "role": row.role})
        else:
            found.append({"kind": "team", "name": f"{row.team_project}/{row.team}", "role": row.role})
    return sorted(found, key=lambda m: (m["kind"], m["name"]))


# -- robots -----------------------------------------------------------------------------------

_creators = users.alias("creators")
_ROBOT_QUERY = (sa.select(robots, projects.c.name.label("project"), _creators.c.name.label("creator"),
                          _creators.c.is_admin.label("creator_is_admin"),
                          _creators.c.disabled.label("creator_disabled"))
                .select_from(robots.outerjoin(projects, projects.c.id == robots.c.project_id)
                             .outerjoin(_creators, _creators.c.id == robots.c.created_by)))


def _robot(row: Any) -> Robot:
    return Robot(row.id, row.name, row.project_id, row.project, row.secret_hash, tuple(row.actions),
                 tuple(row.repositories), aware(row.expires_at), bool(row.revoked), row.created_by,
                 row.creator, bool(row.creator_is_admin), aware(row.created_at) or utcnow(),
                 bool(row.creator_disabled))


async def find_robot(conn: AsyncConnection, name: str) -> Robot | None:
    row = (await conn.execute(_ROBOT_QUERY.where(robots.c.name == name))).first()
    return None if row is None else _robot(row)


async def list_robots(conn: AsyncConnection, project_id: int | None) -> list[Robot]:
    where = robots.c.project_id.is_(None) if project_id is None else robots.c.project_id == project_id
    return [_robot(r) for r in await conn.execute(_ROBOT_QUERY.where(where).order_by(robots.c.name))]


async def create_robot(conn: AsyncConnection, *, name: str, project_id: int | None, secret_hash: str,
                       actions: list[str], repositories: list[str], expires_at: datetime | None,
                       created_by: int | None) -> bool:
    return await insert_ignore(conn, robots, [{
        "name": name, "project_id": project_id, "secret_hash": secret_hash, "actions": actions,
        "repositories": repositories, "expires_at": expires_at, "revoked": False, "created_by": created_by,
        "created_at": utcnow()}]) == 1


async def update_robot(conn: AsyncConnection, robot_id: int, **values: Any) -> None:
    await conn.execute(sa.update(robots).where(robots.c.id == robot_id).values(**values))


async def delete_robot(conn: AsyncConnection, robot_id: int) -> None:
    await conn.execute(sa.delete(robots).where(robots.c.id == robot_id))


# -- refresh tokens ---------------------------------------------------------------------------

async def store_refresh_token(conn: AsyncConnection, token_hash: str, subject: str, lifetime: timedelta) -> None:
    now = utcnow()
    await conn.execute(sa.insert(refresh_tokens).values(
        token_hash=token_hash, subject=subject, created_at=now, expires_at=now + lifetime, revoked=False))


async def find_refresh_token(conn: AsyncConnection, token_hash: str) -> tuple[str, datetime, bool] | None:
    row = (await conn.execute(sa.select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash))).first()
    if row is None:
        return None
    return row.subject, aware(row.expires_at) or utcnow(), bool(row.revoked)


async def revoke_refresh_tokens(conn: AsyncConnection, subject: str) -> int:
    result = await conn.execute(sa.update(refresh_tokens).where(
        refresh_tokens.c.subject == subject, refresh_tokens.c.revoked.is_(False)).values(revoked=True))
    return int(result.rowcount or 0)


# -- signing keys -----------------------------------------------------------------------------

async def signing_key_rows(conn: AsyncConnection, *, retired_after: datetime) -> list[tuple[str, str, bytes, bool]]:
    """(kid, algorithm, private PEM, retired) of every key still valid for verification, newest first."""
    query = sa.select(signing_keys).where(sa.or_(signing_keys.c.retired_at.is_(None),
                                                 signing_keys.c.retired_at > retired_after)).order_by(
        signing_keys.c.created_at.desc(), signing_keys.c.kid)
    return [(r.kid, r.algorithm, bytes(r.private_pem), r.retired_at is not None) for r in await conn.execute(query)]


SIGNING_KEY_EXISTS = sa.select(signing_keys.c.kid).where(signing_keys.c.kid == sa.bindparam("kid"))


async def add_signing_key(conn: AsyncConnection, kid: str, algorithm: str, private_pem: bytes) -> None:
    await insert_ignore(conn, signing_keys, [{"kid": kid, "algorithm": algorithm, "private_pem": private_pem,
                                              "created_at": utcnow()}])


async def retire_signing_keys(conn: AsyncConnection, keep: str) -> None:
    await conn.execute(sa.update(signing_keys).where(
        signing_keys.c.kid != keep, signing_keys.c.retired_at.is_(None)).values(retired_at=utcnow()))


# -- login failures ---------------------------------------------------------------------------

async def failure_counts(conn: AsyncConnection, keys: list[str], since: datetime) -> dict[str, tuple[int, datetime]]:
    query = sa.select(login_failures).where(login_failures.c.key.in_(keys), login_failures.c.window_start > since)
    return {r.key: (int(r[2]), aware(r.window_start) or utcnow()) for r in await conn.execute(query)}


async def record_failure(conn: AsyncConnection, key: str, since: datetime) -> None:
    """Count one failure for ``key``, starting a new window when the last one began before ``since``.

    One statement: two requests failing at once must not both find no row and both insert it."""
    now = utcnow()
    stale = login_failures.c.window_start <= since
    await upsert(conn, login_failures, {"key": key, "window_start": now, "count": 1}, ["key"], updates={
        "window_start": sa.case((stale, now), else_=login_failures.c.window_start),
        "count": sa.case((stale, 1), else_=login_failures.c.count + 1)})


async def clear_failures(conn: AsyncConnection, key: str) -> None:
    await conn.execute(sa.delete(login_failures).where(login_failures.c.key == key))
