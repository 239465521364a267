"""Who is calling: anonymous, a user, or a robot account, and the roles a project can grant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["guest", "developer", "maintainer", "admin"]
ROLES: tuple[Role, ...] = ("guest", "developer", "maintainer", "admin")

Permission = Literal["pull", "push", "delete", "manage_robots", "manage_policies", "manage_members",
                     "manage_settings", "view_audit"]

# The role -> permission table (docs/access.md prints it; tests/unit/test_authorize.py checks it).
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    "guest": frozenset({"pull"}),
    "developer": frozenset({"pull", "push"}),
    "maintainer": frozenset({"pull", "push", "delete", "manage_robots", "manage_policies", "view_audit"}),
    "admin": frozenset({"pull", "push", "delete", "manage_robots", "manage_policies", "view_audit",
                        "manage_members", "manage_settings"}),
}
REPOSITORY_ACTIONS: frozenset[str] = frozenset({"pull", "push", "delete"})


def best_role(roles: list[Role]) -> Role | None:
    """The strongest of several roles (a user may hold one directly and others through teams)."""
    return max(roles, key=ROLES.index) if roles else None


@dataclass(frozen=True, slots=True)
class RobotRules:
    """What a robot account holds: actions on repositories matching globs, within its project."""

    project: str | None  # None: a system-wide robot (created by a system admin)
    actions: frozenset[str]
    repositories: tuple[str, ...]  # globs on full repository names; ``*`` also matches ``/``
    creator_is_admin: bool
    creator_id: int | None = None  # its rights never exceed what this user holds now


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["anonymous", "user", "robot"]
    name: str
    id: int | None = None
    is_admin: bool = False
    robot: RobotRules | None = None

    @property
    def subject(self) -> str:
        """The token ``sub`` claim: the login name, empty for anonymous."""
        return self.name

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"

    @property
    def is_system_admin(self) -> bool:
        """Only a user can be one; the flag on anything else means nothing."""
        return self.kind == "user" and self.is_admin


ANONYMOUS = Principal("anonymous", "")


def project_of(repository: str) -> str:
    """A repository's project is its first path component (``team-a/api/web`` -> ``team-a``)."""
    return repository.split("/", 1)[0]
