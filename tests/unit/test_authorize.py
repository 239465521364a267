"""The pure access decision (DESIGN.md decision 4) as tables: roles, visibility, principals, robots.

Every expectation here is written out from issue 4 and SPEC.md §5, not derived from the code under
test: the role table the issue describes, anonymous pull of public projects, system admins who may
do everything, and robots that hold explicit actions on explicit repository globs, never more than
their creator holds now.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import pytest

from dockyard.auth.authorize import (
    CATALOG,
    MANAGEMENT,
    ProjectFacts,
    authorize,
    is_management,
    permissions,
    repository_actions,
)
from dockyard.auth.principals import (
    ANONYMOUS,
    REPOSITORY_ACTIONS,
    ROLE_PERMISSIONS,
    ROLES,
    Principal,
    RobotRules,
    best_role,
    project_of,
)
from dockyard.auth.scopes import Grant

# -- the role table, as issue 4 ("Roles per project") writes it -------------------------------------

ISSUE_ROLE_TABLE: dict[str, frozenset[str]] = {
    "guest": frozenset({"pull"}),
    "developer": frozenset({"pull", "push"}),
    "maintainer": frozenset({"pull", "push", "delete", "manage_policies", "manage_robots"}),
    "admin": frozenset({"pull", "push", "delete", "manage_policies", "manage_robots",
                        "manage_members", "manage_settings"}),
}
ISSUE_PERMISSIONS = frozenset().union(*ISSUE_ROLE_TABLE.values())
# What the implementation adds on top of the issue's vocabulary: reading a project's audit log
# (issue item 8 says who may search it nowhere; maintainers and admins may).
EXTENSIONS: dict[str, frozenset[str]] = {
    "guest": frozenset(), "developer": frozenset(),
    "maintainer": frozenset({"view_audit"}), "admin": frozenset({"view_audit"}),
}
ALL = frozenset({"pull", "push", "delete"})
NONE: frozenset[str] = frozenset()
PULL = frozenset({"pull"})
PULL_PUSH = frozenset({"pull", "push"})


def test_roles_are_the_four_the_issue_names_weakest_first() -> None:
    assert ROLES == ("guest", "developer", "maintainer", "admin")


def test_role_table_is_the_issue_table() -> None:
    restricted = {role: perms & ISSUE_PERMISSIONS for role, perms in ROLE_PERMISSIONS.items()}
    assert restricted == ISSUE_ROLE_TABLE


def test_role_table_adds_only_view_audit_to_the_issue_table() -> None:
    extra = {role: perms - ISSUE_PERMISSIONS for role, perms in ROLE_PERMISSIONS.items()}
    assert extra == EXTENSIONS


def test_each_role_holds_everything_the_weaker_ones_hold() -> None:
    for weaker, stronger in pairwise(ROLES):
        assert ROLE_PERMISSIONS[weaker] < ROLE_PERMISSIONS[stronger], (weaker, stronger)


def test_repository_actions_are_pull_push_delete() -> None:
    assert REPOSITORY_ACTIONS == ALL


@pytest.mark.parametrize(("roles", "best"), [
    ([], None),
    (["guest"], "guest"),
    (["guest", "developer"], "developer"),  # guest directly, developer through a team
    (["developer", "guest"], "developer"),
    (["maintainer", "admin", "guest"], "admin"),
])
def test_best_role_is_the_strongest(roles: list[str], best: str | None) -> None:
    assert best_role(roles) == best  # type: ignore[arg-type]


@pytest.mark.parametrize(("repository", "project"), [
    ("team-a/api/web", "team-a"), ("app", "app"), ("p/app", "p"), ("localhost:5000/x", "localhost:5000"),
])
def test_project_is_the_first_path_component(repository: str, project: str) -> None:
    assert project_of(repository) == project


# -- principals and facts --------------------------------------------------------------------------

USER = Principal("user", "alice", 10)
SYSADMIN = Principal("user", "root", 1, is_admin=True)
CREATOR_ID = 20


def robot(actions: frozenset[str], globs: tuple[str, ...], *, project: str | None = "proj",
          creator_is_admin: bool = False) -> Principal:
    login = f"robot+{project}+ci" if project else "robot+ci"
    rules = RobotRules(project, actions, globs, creator_is_admin, None if creator_is_admin else CREATOR_ID)
    return Principal("robot", login, 99, robot=rules)


def facts(*, public: bool, role: str | None = None, exists: bool = True, name: str = "proj") -> ProjectFacts:
    return ProjectFacts(name, exists, public and exists, role if exists else None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Row:
    cell: str
    principal: Principal
    repository: str
    facts: ProjectFacts
    expected: frozenset[str]
    users_create_projects: bool = False


def _role_rows() -> list[Row]:
    rows = []
    for public in (True, False):
        vis = "public" if public else "private"
        seen = PULL if public else NONE
        rows.append(Row(f"anonymous {vis}", ANONYMOUS, "proj/app", facts(public=public), seen))
        rows.append(Row(f"user without role {vis}", USER, "proj/app", facts(public=public), seen))
        rows.append(Row(f"system admin {vis}", SYSADMIN, "proj/app", facts(public=public), ALL))
        for role in ROLES:
            held = ISSUE_ROLE_TABLE[role] & ALL
            rows.append(Row(f"user {role} {vis}", USER, "proj/app", facts(public=public, role=role), held | seen))
            # A role in some other project gives nothing here (the facts are per project).
            rows.append(Row(f"user {role} elsewhere, {vis} here", USER, "proj/app", facts(public=public), seen))
    return rows


def _nonexistent_rows() -> list[Row]:
    gone = facts(public=False, exists=False, name="ghost")
    return [
        Row("anonymous, no such project", ANONYMOUS, "ghost/app", gone, NONE),
        Row("user, no such project", USER, "ghost/app", gone, NONE),
        Row("user, no such project, users create projects", USER, "ghost/app", gone, PULL_PUSH,
            users_create_projects=True),
        Row("anonymous, no such project, users create projects", ANONYMOUS, "ghost/app", gone, NONE,
            users_create_projects=True),
        Row("system admin, no such project (a push creates it)", SYSADMIN, "ghost/app", gone, ALL),
        Row("robot, no such project", robot(ALL, ("*",), project="ghost", creator_is_admin=True), "ghost/app",
            gone, NONE),
        Row("system-wide robot, no such project", robot(ALL, ("*",), project=None, creator_is_admin=True),
            "ghost/app", gone, NONE),
        # An existing project where users-create-projects changes nothing for a user without a role.
        Row("user without role, private, users create projects", USER, "proj/app", facts(public=False), NONE,
            users_create_projects=True),
    ]


def _robot_rows() -> list[Row]:
    pull_app = robot(PULL, ("proj/app*",))
    push_app = robot(PULL_PUSH, ("proj/app*",))
    all_app = robot(ALL, ("proj/app*",))
    rows = []
    for public in (True, False):
        vis = "public" if public else "private"
        maint = facts(public=public, role="maintainer")
        rows += [
            Row(f"pull robot on proj/app, {vis}", pull_app, "proj/app", maint, PULL),
            Row(f"pull robot, glob * crosses /, {vis}", pull_app, "proj/app/sub/x", maint, PULL),
            Row(f"pull robot, glob app* matches application, {vis}", pull_app, "proj/application", maint, PULL),
            Row(f"pull,push robot on proj/app, {vis}", push_app, "proj/app", maint, PULL_PUSH),
            Row(f"pull,push,delete robot, maintainer creator, {vis}", all_app, "proj/app", maint, ALL),
            # Never more than the creator holds now.
            Row(f"pull,push,delete robot, developer creator, {vis}", all_app, "proj/app",
                facts(public=public, role="developer"), PULL_PUSH),
            Row(f"pull,push,delete robot, guest creator, {vis}", all_app, "proj/app",
                facts(public=public, role="guest"), PULL),
            Row(f"creator is system admin (no role in the project), {vis}",
                robot(ALL, ("proj/app*",), creator_is_admin=True), "proj/app", facts(public=public), ALL),
            Row(f"creator is system admin, pull only, {vis}",
                robot(PULL, ("proj/app*",), creator_is_admin=True), "proj/app", facts(public=public), PULL),
            Row(f"glob * within its project, {vis}", robot(PULL_PUSH, ("proj/*",)), "proj/anything", maint,
                PULL_PUSH),
            Row(f"several globs, second matches, {vis}", robot(PULL, ("proj/web", "proj/db*")), "proj/db-main",
                maint, PULL),
            Row(f"glob ? matches one character, {vis}", robot(PULL, ("proj/app?",)), "proj/app1", maint, PULL),
            Row(f"system-wide robot, glob matches, {vis}", robot(PULL_PUSH, ("*/base*",), project=None,
                                                                   creator_is_admin=True),
                "proj/base-images", facts(public=public), PULL_PUSH),
        ]
    priv = facts(public=False, role="maintainer")
    rows += [
        # Outside its globs or its project, in a private project: nothing.
        Row("pull robot, repository outside its glob, private", pull_app, "proj/other", priv, NONE),
        Row("pull robot, prefix of the glob only, private", pull_app, "proj/ap", priv, NONE),
        Row("glob is case sensitive, private", robot(PULL, ("proj/App*",)), "proj/app", priv, NONE),
        Row("project robot outside its project, private", robot(ALL, ("*",), creator_is_admin=True),
            "other/app", facts(public=False, name="other"), NONE),
        Row("project robot, glob names another project, private", robot(ALL, ("other/*",), creator_is_admin=True),
            "other/app", facts(public=False, name="other"), NONE),
        Row("system-wide robot, glob does not match, private", robot(ALL, ("*/base*",), project=None,
                                                                      creator_is_admin=True),
            "proj/app", facts(public=False), NONE),
        # The creator lost its role: the robot loses it too (in a public project, pull stays).
        Row("creator lost its role, private", all_app, "proj/app", facts(public=False), NONE),
        Row("creator lost its role, public", all_app, "proj/app", facts(public=True), PULL),
        Row("creator lost its role, public, push robot", push_app, "proj/app", facts(public=True), PULL),
    ]
    return rows


ROWS = _role_rows() + _nonexistent_rows() + _robot_rows()


@pytest.mark.parametrize("row", ROWS, ids=[r.cell for r in ROWS])
def test_repository_actions(row: Row) -> None:
    got = repository_actions(row.principal, row.repository, row.facts,
                             users_create_projects=row.users_create_projects)
    assert got == row.expected, f"{row.cell}: expected {sorted(row.expected)}, got {sorted(got)}"


@pytest.mark.parametrize("row", ROWS, ids=[r.cell for r in ROWS])
def test_authorize_grants_the_intersection(row: Row) -> None:
    """Whatever is asked, the grant is exactly what was asked and is allowed, in canonical order."""
    for asked in (("pull",), ("push",), ("delete",), ("pull", "push"), ("push", "pull", "delete"),
                  ("pull", "frob"), ("*",), ()):
        wanted = Grant("repository", row.repository, asked)
        got = authorize(row.principal, wanted, row.facts, users_create_projects=row.users_create_projects)
        want = ALL if "*" in asked else frozenset(asked)
        expected = tuple(a for a in ("pull", "push", "delete") if a in want and a in row.expected)
        assert (got.type, got.name) == ("repository", row.repository), row.cell
        assert got.actions == expected, f"{row.cell}, asked {asked}: expected {expected}, got {got.actions}"


# -- the catalog and other resource types ------------------------------------------------------------

EVERYONE = [("anonymous", ANONYMOUS), ("user", USER), ("system admin", SYSADMIN),
            ("robot", robot(ALL, ("*",), creator_is_admin=True))]


@pytest.mark.parametrize(("who", "principal"), EVERYONE, ids=[w for w, _ in EVERYONE])
def test_catalog_star_is_granted_to_anyone(who: str, principal: Principal) -> None:
    # The listing itself holds only what the caller may pull (checked in the integration table).
    assert authorize(principal, Grant("registry", "catalog", ("*",)), None) == CATALOG
    assert CATALOG == Grant("registry", "catalog", ("*",))


@pytest.mark.parametrize(("who", "principal"), EVERYONE, ids=[w for w, _ in EVERYONE])
def test_management_api_scope_is_granted_to_accounts_only(who: str, principal: Principal) -> None:
    """``management:api:*`` (what /api/v1 wants of a token) goes to any account, never to anonymous
    callers, and only as ``*``: a narrower ask, or another name, gets nothing."""
    got = authorize(principal, Grant("management", "api", ("*",)), None)
    assert got == (Grant("management", "api", ()) if principal.is_anonymous else MANAGEMENT), who
    assert MANAGEMENT == Grant("management", "api", ("*",))
    assert is_management(got)
    for wanted in (Grant("management", "api", ("pull",)), Grant("management", "api", ()),
                   Grant("management", "other", ("*",))):
        assert authorize(principal, wanted, None).actions == (), (who, str(wanted))
    assert not is_management(CATALOG)


@pytest.mark.parametrize(("who", "principal"), EVERYONE, ids=[w for w, _ in EVERYONE])
@pytest.mark.parametrize("wanted", [
    Grant("registry", "catalog", ("pull",)),
    Grant("registry", "catalog", ()),
    Grant("registry", "other", ("*",)),
    Grant("registry", "proj/app", ("pull",)),
    Grant("plugin", "proj/app", ("pull",)),
    Grant("foo", "bar", ("*",)),
    Grant("repository", "proj/app", ("pull",)),  # a repository without facts: nothing
], ids=lambda g: str(g) or "empty")
def test_everything_else_is_granted_nothing(who: str, principal: Principal, wanted: Grant) -> None:
    got = authorize(principal, wanted, None)
    assert got == Grant(wanted.type, wanted.name, ()), f"{who} asking {wanted}: got {got}"


@pytest.mark.parametrize(("who", "principal"), EVERYONE, ids=[w for w, _ in EVERYONE])
def test_unknown_types_get_nothing_even_with_facts(who: str, principal: Principal) -> None:
    for type_ in ("registry", "plugin", "Repository", "repositories"):
        got = authorize(principal, Grant(type_, "proj/app", ("pull",)), facts(public=True, role="admin"))
        assert got.actions == (), f"{who} asking {type_}:proj/app:pull got {got}"


# -- management permissions ------------------------------------------------------------------------

PERMISSION_ROWS: list[tuple[str, Principal, ProjectFacts, frozenset[str]]] = []
for _public in (True, False):
    _vis = "public" if _public else "private"
    PERMISSION_ROWS += [
        (f"anonymous {_vis}", ANONYMOUS, facts(public=_public), NONE),
        (f"user without role {_vis}", USER, facts(public=_public), NONE),
        (f"system admin {_vis}", SYSADMIN, facts(public=_public), ISSUE_ROLE_TABLE["admin"] | EXTENSIONS["admin"]),
        # Robots manage nothing, whatever their creator holds.
        (f"robot, maintainer creator {_vis}", robot(ALL, ("*",)), facts(public=_public, role="maintainer"), NONE),
        (f"robot, admin creator {_vis}", robot(ALL, ("*",), creator_is_admin=True), facts(public=_public), NONE),
    ]
    PERMISSION_ROWS += [(f"user {role} {_vis}", USER, facts(public=_public, role=role),
                         ISSUE_ROLE_TABLE[role] | EXTENSIONS[role]) for role in ROLES]
PERMISSION_ROWS += [
    ("user, no such project", USER, facts(public=False, exists=False), NONE),
    ("system admin, no such project", SYSADMIN, facts(public=False, exists=False),
     ISSUE_ROLE_TABLE["admin"] | EXTENSIONS["admin"]),
]


@pytest.mark.parametrize(("cell", "principal", "project", "expected"), PERMISSION_ROWS,
                         ids=[r[0] for r in PERMISSION_ROWS])
def test_permissions(cell: str, principal: Principal, project: ProjectFacts, expected: frozenset[str]) -> None:
    got = permissions(principal, project)
    assert got == expected, f"{cell}: expected {sorted(expected)}, got {sorted(got)}"


# -- a discrepancy with issue 4 --------------------------------------------------------------------

PUBLIC_OUTSIDE = [
    ("project robot outside its project, public", robot(ALL, ("*",), creator_is_admin=True), "other/app",
     facts(public=True, name="other")),
    ("pull robot outside its glob, public", robot(PULL, ("proj/app*",)), "proj/other",
     facts(public=True, role="maintainer")),
    ("system-wide robot, glob does not match, public", robot(PULL, ("*/base*",), project=None,
                                                              creator_is_admin=True),
     "proj/app", facts(public=True)),
]


@pytest.mark.parametrize(("cell", "principal", "repository", "project"), PUBLIC_OUTSIDE,
                         ids=[r[0] for r in PUBLIC_OUTSIDE])
def test_robot_credentials_never_give_less_than_anonymous(cell: str, principal: Principal, repository: str,
                                                         project: ProjectFacts) -> None:
    """Issue 4: a public project allows anonymous pull. A client logged in with a robot account
    (docker sends the stored credentials on every request, and cannot fall back to anonymous) must
    be able to pull what anyone may pull without credentials; a user without a role can."""
    anonymous = repository_actions(ANONYMOUS, repository, project)
    got = repository_actions(principal, repository, project)
    assert "pull" in anonymous
    assert "pull" in got, (
        f"DISCREPANCY [{cell}]: anonymous may pull {repository} (public project) but this robot may not: "
        f"expected pull, got {sorted(got)}")
