"""Accounts and access management: users, projects, teams, members, robots, the audit log, keys.

The HTTP API (``/api/v1``) and the CLI both call these methods with the acting principal; every
method checks that principal's rights with the same role table ``authorize`` uses, and records
an event in the same transaction as its change. A caller who may not see a project gets the
same ``NOT_FOUND`` as for one that does not exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from dockyard import events
from dockyard.auth.authorize import permissions
from dockyard.auth.passwords import Passwords, new_secret, secret_digest
from dockyard.auth.principals import REPOSITORY_ACTIONS, ROLES, Permission, Principal, Role, project_of
from dockyard.errors import Denied, RequestInvalid, ResourceExists, ResourceUnknown
from dockyard.services.access import ROBOT_PREFIX, AccessService, InvalidCredentials
from dockyard.store import accounts, limits, repositories
from dockyard.store import events as event_rows
from dockyard.store.clock import utcnow
from dockyard.store.db import Database

ADMIN = "admin"
_ACCOUNT_NAME = re.compile(rf"[a-z0-9][a-z0-9._-]{{0,{limits.ACCOUNT_NAME - 1}}}", flags=re.ASCII)
_PROJECT_NAME = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", flags=re.ASCII)
_GLOB = re.compile(r"[a-z0-9._/*?\[\]-]{1,255}", flags=re.ASCII)
_DURATION = re.compile(r"(\d{1,6})([mhdw])", flags=re.ASCII)
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MIN_PASSWORD_LENGTH = 8
MIN_EXPIRY = timedelta(minutes=1)
MAX_EXPIRY = timedelta(days=3650)  # ten years: far enough for any robot, and far from datetime's limits


def parse_expiry(text: str | None) -> timedelta | None:
    """``30d``, ``12h``, ``90m``, ``2w``, from one minute to ten years; ``never`` or empty for no expiry."""
    if text is None or text in ("", "never"):
        return None
    found = _DURATION.fullmatch(text.strip())
    if not found:
        raise RequestInvalid(f"expiry {text[:40]!r} is not a duration like 30d, 12h, 90m or 2w (or 'never')")
    expiry = timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])
    if expiry < MIN_EXPIRY:
        raise RequestInvalid(f"expiry {text[:40]!r} is too short: at least 1m (or 'never')")
    if expiry > MAX_EXPIRY:
        raise RequestInvalid(f"expiry {text[:40]!r} is too long: at most 10 years ({MAX_EXPIRY.days}d), "
                             "or 'never'")
    return expiry


def parse_time(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 time with a zone (``2026-11-28T09:00:00Z``), for audit filters; in UTC."""
    if not text:
        return None
    try:
        found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RequestInvalid(f"{name} must be an ISO 8601 time, e.g. 2026-11-28T09:00:00Z") from None
    if found.tzinfo is None:
        raise RequestInvalid(f"{name} needs a time zone, e.g. 2026-11-28T09:00:00Z")
    try:
        return found.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-01:00 is in the year 10000 in UTC
        raise RequestInvalid(f"{name} is out of range: give a time between the years 1 and 9999 in UTC") from None


def _check_name(kind: str, name: str, pattern: re.Pattern[str] = _ACCOUNT_NAME,
                size: int = limits.ACCOUNT_NAME) -> str:
    if not isinstance(name, str) or len(name) > size or not pattern.fullmatch(name):
        raise RequestInvalid(f"{kind} name {str(name)[:80]!r} is not valid: use lowercase letters, digits "
                             f"and . _ - (starting with a letter or digit, at most {size} characters)")
    return name


def check_account_name(kind: str, name: str) -> str:
    """A user, team or robot name (a robot's login adds its prefix and project)."""
    return _check_name(kind, name)


def check_project_name(name: str) -> str:
    return _check_name("project", name, _PROJECT_NAME, limits.PROJECT_NAME)


def robot_login(project: str | None, name: str) -> str:
    """A robot's login name (``robot+NAME``, or ``robot+PROJECT+NAME`` in a project), if it fits."""
    login = f"{ROBOT_PREFIX}{name}" if project is None else f"{ROBOT_PREFIX}{project}+{name}"
    if len(login) > limits.ROBOT_NAME:
        raise RequestInvalid(f"robot login {login[:80]!r}... is {len(login)} characters, more than "
                             f"{limits.ROBOT_NAME}: choose a shorter robot name")
    return login


def _known(kind: str, name: str, size: int) -> str:
    """A name to look up: one no column can hold is not found, on every backend, without a query."""
    if not isinstance(name, str) or not limits.can_hold(name, size):
        raise ResourceUnknown(f"{kind} {str(name)[:100]!r} not found")
    return name


def _check_password(password: str) -> str:
    is_text = isinstance(password, str) and limits.can_hold(password, 1024)  # no NUL, no lone surrogate
    if not is_text or len(password) < MIN_PASSWORD_LENGTH or len(password.encode()) > 1024:
        raise RequestInvalid(f"a password needs {MIN_PASSWORD_LENGTH} to 1024 bytes of text (no NUL character)")
    return password


def _check_role(role: str) -> Role:
    if role not in ROLES:
        raise RequestInvalid(f"role {str(role)[:40]!r} is not one of {', '.join(ROLES)}")
    return role


@dataclass(frozen=True, slots=True)
class NewRobot:
    login: str
    secret: str
    expires_at: datetime | None


def user_view(user: accounts.User) -> dict[str, Any]:
    return {"name": user.name, "admin": user.is_admin, "disabled": user.disabled,
            "created_at": user.created_at.isoformat()}


def project_view(project: accounts.Project) -> dict[str, Any]:
    return {"name": project.name, "public": project.public, "created_at": project.created_at.isoformat(),
            "created_by": project.created_by}


def robot_view(robot: accounts.Robot) -> dict[str, Any]:
    return {"name": robot.name, "project": robot.project, "actions": list(robot.actions),
            "repositories": list(robot.repositories),
            "expires_at": robot.expires_at.isoformat() if robot.expires_at else None,
            "revoked": robot.revoked, "created_by": robot.creator, "created_at": robot.created_at.isoformat()}


class AccountsService:
    def __init__(self, db: Database, passwords: Passwords, access: AccessService) -> None:
        self.db = db
        self.passwords = passwords
        self.access = access

    # -- bootstrap ------------------------------------------------------------------------------

    async def bootstrap_admin(self, password: str | None) -> str | None:
        """Create the system admin ``admin`` unless it exists (safe on every node and every start).

        Returns the generated password when this call created the account without one given.
        """
        async with self.db.read() as conn:
            if await accounts.find_user(conn, ADMIN) is not None:
                return None
        generated = None
        if not password:
            generated = password = new_secret()[:24]
        hashed = await self._hash(password)
        async with self.db.write() as conn:
            created = await accounts.create_user(conn, ADMIN, hashed, is_admin=True)
            if created:
                await events.record(conn, events.Change("user.created", target=ADMIN, details={"admin": True}),
                                    events.Actor("dockyard"))
        return generated if created else None

    # -- helpers --------------------------------------------------------------------------------

    async def _project(self, actor: Principal, name: str, need: Permission | None = None) -> accounts.Project:
        return (await self._project_and_permissions(actor, name, need))[0]

    async def project_and_permissions(self, actor: Principal, name: str) -> tuple[accounts.Project,
                                                                                  frozenset[Permission]]:
        """The project, if the actor may see it (else NOT_FOUND), and the permissions held there."""
        return await self._project_and_permissions(actor, name)

    async def _project_and_permissions(self, actor: Principal, name: str, need: Permission | None = None
                                       ) -> tuple[accounts.Project, frozenset[Permission]]:
        """The project, if the actor may see it (else NOT_FOUND, as if it did not exist), and what
        the actor holds there; ``need`` must be among it (else DENIED)."""
        _known("project", name, limits.PROJECT_NAME)
        async with self.db.read() as conn:
            project = await accounts.find_project(conn, name)
        if project is None:
            raise ResourceUnknown(f"project {name[:100]!r} not found", detail={"project": name[:100]})
        held = permissions(actor, await self.access.facts_of(actor, name, project.id, project.public))
        if not held and not project.public:
            raise ResourceUnknown(f"project {name[:100]!r} not found", detail={"project": name[:100]})
        if need is not None and need not in held:
            raise Denied(f"this needs the {need.replace('_', ' ')} permission in project {name!r}")
        return project, held

    async def _hash(self, password: str) -> str:
        # argon2 is memory-hard and takes milliseconds: off the event loop, like every check.
        return await anyio.to_thread.run_sync(self.passwords.hash, password)

    @staticmethod
    def _require_admin(actor: Principal) -> None:
        if not actor.is_system_admin:
            raise Denied("only a system admin may do this")

    async def _user(self, name: str) -> accounts.User:
        _known("user", name, limits.ACCOUNT_NAME)
        async with self.db.read() as conn:
            user = await accounts.find_user(conn, name)
        if user is None:
            raise ResourceUnknown(f"user {name[:100]!r} not found", detail={"user": name[:100]})
        return user

    # -- users ----------------------------------------------------------------------------------

    async def add_user(self, actor: Principal, name: str, password: str, *, admin: bool = False) -> dict[str, Any]:
        self._require_admin(actor)
        _check_name("user", name)
        if name.startswith("robot"):
            raise RequestInvalid("user names may not start with 'robot' (robot accounts use it)")
        hashed = await self._hash(_check_password(password))
        async with self.db.write() as conn:
            if not await accounts.create_user(conn, name, hashed, is_admin=admin):
                raise ResourceExists(f"user {name!r} exists already")
            await events.record(conn, events.Change("user.created", target=name, details={"admin": admin}))
            user = await accounts.find_user(conn, name)
        assert user is not None
        return user_view(user)

    async def list_users(self, actor: Principal) -> list[dict[str, Any]]:
        self._require_admin(actor)
        async with self.db.read() as conn:
            return [user_view(u) for u in await accounts.list_users(conn)]

    async def update_user(self, actor: Principal, name: str, *, password: str | None = None,
                          current_password: str | None = None, disabled: bool | None = None,
                          admin: bool | None = None, verify_own_password: bool = True) -> dict[str, Any]:
        """Change a user. One's own password changes only with ``current_password`` (a stolen
        token must not be enough to take an account over), unless ``verify_own_password`` is
        False: the operator at the server's console (the CLI), who may reset any password."""
        own = actor.kind == "user" and actor.name == name
        if not (own and disabled is None and admin is None):
            self._require_admin(actor)
        if own and password is not None and verify_own_password:
            await self._check_current_password(name, current_password)
        user = await self._user(name)
        values: dict[str, Any] = {}
        changes: dict[str, Any] = {}
        if password is not None:
            values["password_hash"] = await self._hash(_check_password(password))
            changes["password_changed"] = True
        if disabled is not None:
            values["disabled"] = changes["disabled"] = bool(disabled)
        if admin is not None:
            values["is_admin"] = changes["admin"] = bool(admin)
        if not values:
            raise RequestInvalid("nothing to change: give a password, disabled or admin")
        async with self.db.write() as conn:
            await accounts.update_user(conn, user.id, **values)
            if password is not None:
                # A new password ends old sessions; a disabled account is refused on every
                # request anyway, and its sessions come back if it is enabled again.
                await accounts.revoke_refresh_tokens(conn, name)
            await events.record(conn, events.Change("user.updated", target=name, details=changes))
            updated = await accounts.find_user(conn, name)
        assert updated is not None
        return user_view(updated)

    async def _check_current_password(self, name: str, current_password: str | None) -> None:
        """``current_password`` is the user's password; a wrong one counts as a failed login (so
        the login rate limits hold), and answers 403, not 401: the caller's credentials are fine."""
        if not current_password:
            raise RequestInvalid("changing your own password needs current_password: your current password")
        try:
            await self.access.login(name, current_password, events.CURRENT_ACTOR.get().address,
                                    record_success=False)
        except InvalidCredentials:
            raise Denied("current_password is not your current password") from None

    async def delete_user(self, actor: Principal, name: str) -> None:
        self._require_admin(actor)
        if name == ADMIN:
            raise RequestInvalid("the admin account cannot be deleted (disable it instead)")
        user = await self._user(name)
        async with self.db.write() as conn:
            await accounts.delete_user(conn, user.id)
            await accounts.revoke_refresh_tokens(conn, name)
            await events.record(conn, events.Change("user.deleted", target=name))

    # -- projects -------------------------------------------------------------------------------

    async def add_project(self, actor: Principal, name: str, *, public: bool = False) -> dict[str, Any]:
        self._require_admin(actor)
        check_project_name(name)
        async with self.db.write() as conn:
            if not await accounts.ensure_project(conn, name, public=public, created_by=actor.name or "cli"):
                raise ResourceExists(f"project {name!r} exists already")
            await events.record(conn, events.Change("project.created", project=name, details={"public": public}))
            project = await accounts.find_project(conn, name)
        assert project is not None
        return project_view(project)

    async def list_projects(self, actor: Principal) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            found = await accounts.list_projects(conn)
            if actor.is_system_admin:
                return [project_view(p) for p in found]
            mine = set(await accounts.member_projects(conn, actor.id)) if actor.kind == "user" and actor.id else set()
        return [project_view(p) for p in found if p.public or p.name in mine]

    async def get_project(self, actor: Principal, name: str) -> dict[str, Any]:
        return project_view(await self._project(actor, name))

    async def update_project(self, actor: Principal, name: str, *, public: bool) -> dict[str, Any]:
        project = await self._project(actor, name, "manage_settings")
        async with self.db.write() as conn:
            await accounts.update_project(conn, project.id, public=bool(public))
            await events.record(conn, events.Change("project.updated", project=name, details={"public": public}))
            updated = await accounts.find_project(conn, name)
        assert updated is not None
        return project_view(updated)

    async def delete_project(self, actor: Principal, name: str) -> None:
        self._require_admin(actor)
        project = await self._project(actor, name)
        async with self.db.write() as conn:
            left = await repositories.in_project(conn, name, limit=4)
            if left:
                more = ", ..." if len(left) > 3 else ""
                raise ResourceExists(f"project {name!r} still has repositories ({', '.join(left[:3])}{more}): delete "
                                     "its repositories first with `dockyard repo delete` (or DELETE "
                                     "/api/v1/repositories/NAME)", detail={"repositories": left[:3]})
            await accounts.delete_project(conn, project.id)
            await events.record(conn, events.Change("project.deleted", project=name))

    # -- teams ----------------------------------------------------------------------------------

    async def add_team(self, actor: Principal, project: str, team: str) -> None:
        found = await self._project(actor, project, "manage_members")
        _check_name("team", team)
        async with self.db.write() as conn:
            if not await accounts.create_team(conn, found.id, team):
                raise ResourceExists(f"team {team!r} exists already in project {project!r}")
            await events.record(conn, events.Change("team.created", project=project, target=team))

    async def list_teams(self, actor: Principal, project: str) -> list[dict[str, Any]]:
        found = await self._project(actor, project, "manage_members")
        async with self.db.read() as conn:
            return [{"name": name, "members": members} for name, members in await accounts.list_teams(conn, found.id)]

    async def delete_team(self, actor: Principal, project: str, team: str) -> None:
        found = await self._project(actor, project, "manage_members")
        team_id = await self._team(found, team)
        async with self.db.write() as conn:
            await accounts.delete_team(conn, team_id)
            await events.record(conn, events.Change("team.deleted", project=project, target=team))

    async def add_team_member(self, actor: Principal, project: str, team: str, user: str) -> None:
        found = await self._project(actor, project, "manage_members")
        team_id = await self._team(found, team)
        member = await self._user(user)
        async with self.db.write() as conn:
            await accounts.add_team_member(conn, team_id, member.id)
            await events.record(conn, events.Change("team.member_added", project=project, target=team,
                                                    details={"user": user}))

    async def remove_team_member(self, actor: Principal, project: str, team: str, user: str) -> None:
        found = await self._project(actor, project, "manage_members")
        team_id = await self._team(found, team)
        member = await self._user(user)
        async with self.db.write() as conn:
            if not await accounts.remove_team_member(conn, team_id, member.id):
                raise ResourceUnknown(f"user {user!r} is not in team {team!r}")
            await events.record(conn, events.Change("team.member_removed", project=project, target=team,
                                                    details={"user": user}))

    async def _team(self, project: accounts.Project, team: str) -> int:
        _known("team", team, limits.ACCOUNT_NAME)
        async with self.db.read() as conn:
            team_id = await accounts.find_team(conn, project.id, team)
        if team_id is None:
            raise ResourceUnknown(f"team {team[:64]!r} not found in project {project.name!r}")
        return team_id

    # -- members --------------------------------------------------------------------------------

    async def _resolve(self, actor: Principal, project: accounts.Project, who: str
                       ) -> tuple[str, int | None, int | None]:
        """(display name, user id, team id) of ``user:NAME``, ``team:NAME``, ``PROJECT/TEAM`` or a
        bare name (a team of this project if one has that name, else a user).

        Another project's teams exist only for those who may list them (its admins and system
        admins): for anyone else, a team of a project they cannot see and a team of a project
        that does not exist get the same answer, which names neither the project nor its teams.
        """
        kind, _, bare = who.partition(":") if who.startswith(("user:", "team:")) else ("", "", who)
        _known("user or team", bare, limits.PROJECT_NAME + 1 + limits.ACCOUNT_NAME)
        if kind != "user":
            owner_name, slash, team = bare.rpartition("/")
            team_id = await self._visible_team(actor, project, owner_name if slash else project.name, team)
            if team_id is not None:
                return f"{owner_name if slash else project.name}/{team}", None, team_id
            if kind == "team" or slash:
                raise ResourceUnknown(f"team {bare[:100]!r} not found")
        async with self.db.read() as conn:
            user = await accounts.find_user(conn, bare)
        if user is None:
            raise ResourceUnknown(f"no user or team named {bare[:100]!r}")
        return user.name, user.id, None

    async def _visible_team(self, actor: Principal, project: accounts.Project, owner_name: str, team: str
                            ) -> int | None:
        """The id of team ``owner_name/team`` if the actor may name it in ``project``: a team of
        ``project`` itself, one already bound there (its admins see it listed), or one of a project
        whose teams the actor may list (manage members there); else None, as for no such team."""
        async with self.db.read() as conn:
            owner = project if owner_name == project.name else await accounts.find_project(conn, owner_name)
            team_id = await accounts.find_team(conn, owner.id, team) if owner is not None else None
            if owner is None or team_id is None or owner.id == project.id \
                    or await accounts.is_member(conn, project.id, team_id=team_id):
                return team_id
        held = permissions(actor, await self.access.facts_of(actor, owner.name, owner.id, owner.public))
        return team_id if "manage_members" in held else None

    async def set_member(self, actor: Principal, project: str, who: str, role: str) -> dict[str, str]:
        found = await self._project(actor, project, "manage_members")
        checked = _check_role(role)
        name, user_id, team_id = await self._resolve(actor, found, who)
        async with self.db.write() as conn:
            await accounts.set_member(conn, found.id, checked, user_id=user_id, team_id=team_id)
            await events.record(conn, events.Change("member.set", project=project, target=name,
                                                    details={"role": checked}))
        return {"kind": "user" if user_id else "team", "name": name, "role": checked}

    async def remove_member(self, actor: Principal, project: str, who: str) -> None:
        found = await self._project(actor, project, "manage_members")
        name, user_id, team_id = await self._resolve(actor, found, who)
        async with self.db.write() as conn:
            if not await accounts.remove_member(conn, found.id, user_id=user_id, team_id=team_id):
                raise ResourceUnknown(f"{name!r} holds no role in project {project!r}")
            await events.record(conn, events.Change("member.removed", project=project, target=name))

    async def list_members(self, actor: Principal, project: str) -> list[dict[str, str]]:
        found = await self._project(actor, project, "manage_members")
        async with self.db.read() as conn:
            return await accounts.list_members(conn, found.id)

    # -- robots ---------------------------------------------------------------------------------

    async def add_robot(self, actor: Principal, project: str | None, name: str, actions: list[str],
                        repositories: list[str], expires: timedelta | None) -> NewRobot:
        """A robot account; its secret is returned here once and stored only as a hash."""
        _check_name("robot", name)
        wanted = [a.strip() for a in actions if a.strip()]
        if not wanted or any(a not in REPOSITORY_ACTIONS for a in wanted):
            raise RequestInvalid("robot permissions must be some of pull, push, delete")
        globs = [g.strip() for g in repositories if g.strip()]
        if not globs or any(not _GLOB.fullmatch(g) for g in globs):
            raise RequestInvalid("give at least one repository glob (lowercase names, / and * ? [ ])")
        if project is None:
            self._require_admin(actor)
            login = robot_login(None, name)
            project_id = None
        else:
            found, permitted = await self._project_and_permissions(actor, project, "manage_robots")
            # Never more than the creator holds in the project.
            held = {p for p in permitted if p in REPOSITORY_ACTIONS}
            if not set(wanted) <= held:
                missing = ", ".join(sorted(set(wanted) - held))
                raise Denied(f"a robot cannot hold more than its creator: you lack {missing} in {project!r}")
            globs = [g if g.startswith(f"{project}/") else f"{project}/{g}" for g in globs]
            login = robot_login(project, name)
            project_id = found.id
        secret = new_secret()
        expires_at = utcnow() + expires if expires is not None else None
        async with self.db.write() as conn:
            created = await accounts.create_robot(
                conn, name=login, project_id=project_id, secret_hash=secret_digest(secret), actions=sorted(wanted),
                repositories=globs, expires_at=expires_at, created_by=actor.id)
            if not created:
                raise ResourceExists(f"robot {login!r} exists already: rotate its secret or delete it")
            await events.record(conn, events.Change("robot.created", project=project, target=login, details={
                "actions": sorted(wanted), "repositories": globs,
                "expires_at": expires_at.isoformat() if expires_at else None}))
        return NewRobot(login, secret, expires_at)

    async def _robot(self, actor: Principal, login: str) -> accounts.Robot:
        """The robot ``login``, if the actor may manage it.

        The answer depends only on what the actor may see, decided from the name before the robot
        is looked up: a robot of a project the actor cannot see (or that does not exist), a
        system-wide robot (for all but system admins) and a robot that does not exist are all
        "robot '…' not found"; in a project the actor sees without managing its robots, every
        robot name is refused alike.
        """
        _known("robot", login, limits.ROBOT_NAME)
        unknown = ResourceUnknown(f"robot {login[:160]!r} not found")
        project: str | None = None
        if not actor.is_system_admin:
            prefix, _, rest = login.partition("+")
            project, plus, name = rest.partition("+")
            if prefix != "robot" or not plus or not project or not name or "+" in name:
                raise unknown  # a system-wide robot (robot+NAME), or no robot name at all
            try:
                await self._project(actor, project, "manage_robots")
            except ResourceUnknown:
                raise unknown from None
        async with self.db.read() as conn:
            robot = await accounts.find_robot(conn, login)
        if robot is None or (not actor.is_system_admin and robot.project != project):
            raise unknown
        return robot

    async def list_robots(self, actor: Principal, project: str | None) -> list[dict[str, Any]]:
        if project is None:
            self._require_admin(actor)
            project_id = None
        else:
            project_id = (await self._project(actor, project, "manage_robots")).id
        async with self.db.read() as conn:
            return [robot_view(r) for r in await accounts.list_robots(conn, project_id)]

    async def rotate_robot(self, actor: Principal, login: str) -> NewRobot:
        robot = await self._robot(actor, login)
        secret = new_secret()
        async with self.db.write() as conn:
            await accounts.update_robot(conn, robot.id, secret_hash=secret_digest(secret), rotated_at=utcnow())
            await accounts.revoke_refresh_tokens(conn, login)
            await events.record(conn, events.Change("robot.rotated", project=robot.project, target=login))
        return NewRobot(login, secret, robot.expires_at)

    async def revoke_robot(self, actor: Principal, login: str) -> None:
        robot = await self._robot(actor, login)
        async with self.db.write() as conn:
            await accounts.update_robot(conn, robot.id, revoked=True)
            await accounts.revoke_refresh_tokens(conn, login)
            await events.record(conn, events.Change("robot.revoked", project=robot.project, target=login))

    async def delete_robot(self, actor: Principal, login: str) -> None:
        robot = await self._robot(actor, login)
        async with self.db.write() as conn:
            await accounts.delete_robot(conn, robot.id)
            await accounts.revoke_refresh_tokens(conn, login)
            await events.record(conn, events.Change("robot.deleted", project=robot.project, target=login))

    # -- audit ----------------------------------------------------------------------------------

    async def audit(self, actor: Principal, *, project: str | None = None, repository: str | None = None,
                    user: str | None = None, action: str | None = None, since: datetime | None = None,
                    until: datetime | None = None, before_id: int | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
        """Events, newest first. A system admin sees all; others see the projects where they hold
        the view audit permission (maintainer and admin)."""
        scope: list[str] | None = None
        for name, value in (("project", project), ("repository", repository), ("user", user), ("action", action)):
            if value is not None and not limits.can_hold(value, limits.PRINCIPAL_NAME):
                raise RequestInvalid(f"the {name} filter {value[:40]!r} is too long or holds a NUL character")
        if repository is not None and project is None:
            project = project_of(repository)
        if not actor.is_system_admin:
            if project is not None:
                await self._project(actor, project, "view_audit")
            else:
                scope = []
                for visible in await self.list_projects(actor):
                    if "view_audit" in permissions(actor, await self.access.facts(actor, visible["name"])):
                        scope.append(visible["name"])
        if not 1 <= limit <= 1000:
            raise RequestInvalid("limit must be between 1 and 1000")
        async with self.db.read() as conn:
            rows = await event_rows.search(conn, project=project, repository=repository, actor=user, action=action,
                                           since=since, until=until, projects=scope, before_id=before_id,
                                           limit=limit)
        return [r.to_dict() for r in rows]

    # -- keys -----------------------------------------------------------------------------------

    async def rotate_signing_key(self, actor: Principal) -> str:
        self._require_admin(actor)
        return await self.access.keys.rotate()
