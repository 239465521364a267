"""``authorize``: the one pure decision of what a principal may do (DESIGN.md decision 4).

Everything it needs arrives as data: the principal, the resource asked for, and the facts about
the project that resource is in. It never touches the database, so it can be tested as a table.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from dockyard.auth.principals import (
    REPOSITORY_ACTIONS,
    ROLE_PERMISSIONS,
    Permission,
    Principal,
    Role,
    project_of,
)
from dockyard.auth.scopes import Grant

CATALOG = Grant("registry", "catalog", ("*",))
# What a token must carry to be accepted on /api/v1: registry tokens (pull, push, the catalog)
# are refused there, so a leaked pull token cannot manage the account that asked for it.
MANAGEMENT = Grant("management", "api", ("*",))


@dataclass(frozen=True, slots=True)
class ProjectFacts:
    """What ``authorize`` needs to know about one project, for one principal."""

    name: str
    exists: bool
    public: bool = False
    role: Role | None = None  # the principal's best role (a robot: its creator's role)


def permissions(principal: Principal, facts: ProjectFacts) -> frozenset[Permission]:
    """Everything a user holds in a project, management included."""
    if principal.is_system_admin:
        return ROLE_PERMISSIONS["admin"]
    if principal.kind != "user" or not facts.exists:
        return frozenset()
    return ROLE_PERMISSIONS[facts.role] if facts.role else frozenset()


def repository_actions(principal: Principal, repository: str, facts: ProjectFacts, *,
                       users_create_projects: bool = False) -> frozenset[str]:
    """The registry actions (pull, push, delete) the principal may take on a repository."""
    if principal.is_system_admin:
        return REPOSITORY_ACTIONS
    if principal.kind == "robot":
        return _robot_actions(principal, repository, facts)
    allowed: set[str] = set()
    if facts.exists:
        if facts.public:
            allowed.add("pull")
        if principal.kind == "user" and facts.role is not None:
            allowed |= ROLE_PERMISSIONS[facts.role] & REPOSITORY_ACTIONS
    elif principal.kind == "user" and users_create_projects:
        allowed |= {"pull", "push"}  # the push creates the project, with the user as its admin
    return frozenset(allowed)


def _robot_actions(principal: Principal, repository: str, facts: ProjectFacts) -> frozenset[str]:
    rules = principal.robot
    if rules is None or not facts.exists:
        return frozenset()
    # A robot never gets less than anonymous callers: public projects are pullable.
    public: frozenset[str] = frozenset({"pull"}) if facts.public else frozenset()
    if rules.project is not None and project_of(repository) != rules.project:
        return public
    if not any(fnmatchcase(repository, glob) for glob in rules.repositories):
        return public
    # Never more than its creator holds now: a creator who loses a role takes it from the robot too.
    if rules.creator_is_admin:
        creator: frozenset[str] = REPOSITORY_ACTIONS
    else:
        creator = (ROLE_PERMISSIONS[facts.role] & REPOSITORY_ACTIONS) if facts.role else frozenset()
        if facts.public:
            creator |= {"pull"}
    return public | (rules.actions & creator & REPOSITORY_ACTIONS)


def is_management(grant: Grant) -> bool:
    """Whether ``grant`` names the management API (``management:api:*``)."""
    return (grant.type, grant.name) == (MANAGEMENT.type, MANAGEMENT.name)


def authorize(principal: Principal, wanted: Grant, facts: ProjectFacts | None, *,
              users_create_projects: bool = False) -> Grant:
    """The part of ``wanted`` the principal may have: the intersection, never an error.

    ``facts`` describes the project of a ``repository`` resource (None for other types).
    """
    asked = set(wanted.actions)
    if wanted.type == "registry" and wanted.name == "catalog":
        # Anyone may list; the listing holds only what the caller may pull.
        return Grant(wanted.type, wanted.name, ("*",) if "*" in asked else ())
    if is_management(wanted):
        # Any account may use /api/v1 (what it may do there is decided per operation); nobody
        # anonymous may.
        return Grant(wanted.type, wanted.name, ("*",) if "*" in asked and not principal.is_anonymous else ())
    if wanted.type != "repository" or facts is None:
        return Grant(wanted.type, wanted.name, ())
    allowed = repository_actions(principal, wanted.name, facts, users_create_projects=users_create_projects)
    if "*" in asked:
        asked = set(REPOSITORY_ACTIONS)
    granted = tuple(a for a in ("pull", "push", "delete") if a in asked and a in allowed)
    return Grant(wanted.type, wanted.name, granted)
