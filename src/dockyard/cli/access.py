"""``dockyard user | project | team | member | robot | audit | keys``: accounts and access.

Each command acts as the system admin ``admin`` through the same ``AccountsService`` (and so the
same authorization) as ``/api/v1``; events record actor ``admin`` from address ``cli:<OS user>``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dockyard.cli.options import config_options, load, make_data_dir, run_on_database

if TYPE_CHECKING:  # the services load only when a command runs, not for --help
    from dockyard.app import Components
    from dockyard.auth.principals import Principal
    from dockyard.services.accounts import AccountsService

T = TypeVar("T")


def _as_admin(config_file: Path | None, data_dir: Path | None,
              action: Callable[[AccountsService, Principal], Awaitable[T]]) -> T:
    return as_admin(config_file, data_dir, lambda parts, me: action(parts.accounts, me))


def as_admin(config_file: Path | None, data_dir: Path | None,
             action: Callable[[Components, Principal], Awaitable[T]]) -> T:
    """Run ``action`` with every component built and the system admin ``admin`` as the actor
    (the schema migrated first, unless database.auto_migrate is off); a RegistryError it raises
    becomes a clean CLI error with its message."""
    import getpass

    from dockyard import events
    from dockyard.app import build_components
    from dockyard.auth.principals import Principal
    from dockyard.errors import DatabaseUnavailable, RegistryError
    from dockyard.store import accounts as account_rows
    from dockyard.store import migrate as migrations
    from dockyard.store import revision

    config = load(config_file, data_dir)
    make_data_dir(config)
    parts = build_components(config)

    async def run() -> T:
        try:
            if not await revision.is_current(parts.db):
                if not config.database.auto_migrate:
                    raise click.ClickException("the database schema is not current: run `dockyard migrate`")
                await migrations.upgrade(parts.db)
            generated = await parts.accounts.bootstrap_admin(os.environ.get("DOCKYARD_ADMIN_PASSWORD"))
            if generated is not None:
                click.echo(f"created the system admin 'admin' with password {generated} (shown once)", err=True)
            async with parts.db.read() as conn:
                admin = await account_rows.find_user(conn, "admin")
            if admin is None:
                raise click.ClickException("the system admin 'admin' is missing: restore it from a backup")
            actor = Principal("user", admin.name, admin.id, is_admin=True)
            token = events.CURRENT_ACTOR.set(events.Actor(admin.name, f"cli:{getpass.getuser()}"[:64]))
            try:
                return await action(parts, actor)
            finally:
                events.CURRENT_ACTOR.reset(token)
        except DatabaseUnavailable:
            raise  # run_on_database names the URL and the setting to fix
        except RegistryError as exc:
            raise click.ClickException(exc.message) from None
        finally:
            await parts.db.dispose()

    return run_on_database(config, run())


def _read_password(password_stdin: bool, prompt: str = "Password") -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True))


def _show(rows: list[dict[str, Any]], columns: list[str], as_json: bool, empty: str) -> None:
    """A listing: a JSON array with --json, else an aligned table."""
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo(empty)
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


JSON_HELP = "print JSON instead of a table"


@click.group()
def user() -> None:
    """Manage local user accounts (system admin)."""


@user.command("add")
@config_options
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of standard input")
@click.option("--admin", is_flag=True, help="make the user a system admin")
def user_add(config_file: Path | None, data_dir: Path | None, name: str, password_stdin: bool, admin: bool) -> None:
    """Create user NAME (asks for the password unless --password-stdin)."""
    password = _read_password(password_stdin)
    _as_admin(config_file, data_dir, lambda svc, me: svc.add_user(me, name, password, admin=admin))
    click.echo(f"created user {name}" + (" (system admin)" if admin else ""))


@user.command("list")
@config_options
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def user_list(config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """List users."""
    rows = _as_admin(config_file, data_dir, lambda svc, me: svc.list_users(me))
    _show(rows, ["name", "admin", "disabled", "created_at"], as_json, "no users")


def _user_switch(name: str, verb: str, disabled: bool, summary: str) -> None:
    @user.command(name, help=summary)
    @config_options
    @click.argument("name")
    def command(config_file: Path | None, data_dir: Path | None, name: str) -> None:
        _as_admin(config_file, data_dir, lambda svc, me: svc.update_user(me, name, disabled=disabled))
        click.echo(f"{verb} user {name}")


_user_switch("disable", "disabled", True,
             "Disable user NAME: its tokens and credentials, and the robots it created, stop working on "
             "the next request.")
_user_switch("enable", "enabled", False, "Enable user NAME again (and the robots it created).")


@user.command("passwd")
@config_options
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of standard input")
def user_passwd(config_file: Path | None, data_dir: Path | None, name: str, password_stdin: bool) -> None:
    """Set user NAME's password (ends its refresh tokens); no current password needed."""
    password = _read_password(password_stdin, "New password")
    # The operator at the console resets any password, the admin's own too (the way back in when
    # it is lost): no current password is asked for, unlike PATCH /api/v1/users/NAME.
    _as_admin(config_file, data_dir, lambda svc, me: svc.update_user(me, name, password=password,
                                                                      verify_own_password=False))
    click.echo(f"changed the password of {name}")


@user.command("delete")
@config_options
@click.argument("name")
def user_delete(config_file: Path | None, data_dir: Path | None, name: str) -> None:
    """Delete user NAME (robots it created are refused from then on)."""
    _as_admin(config_file, data_dir, lambda svc, me: svc.delete_user(me, name))
    click.echo(f"deleted user {name}")


@click.group()
def project() -> None:
    """Manage projects: the first path component of every repository name."""


@project.command("add")
@config_options
@click.argument("name")
@click.option("--public", is_flag=True, help="anyone may pull, also without logging in (default: private)")
def project_add(config_file: Path | None, data_dir: Path | None, name: str, public: bool) -> None:
    """Create project NAME (private unless --public)."""
    _as_admin(config_file, data_dir, lambda svc, me: svc.add_project(me, name, public=public))
    click.echo(f"created {'public' if public else 'private'} project {name}")


@project.command("list")
@config_options
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def project_list(config_file: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """List projects."""
    rows = _as_admin(config_file, data_dir, lambda svc, me: svc.list_projects(me))
    _show(rows, ["name", "public", "created_by", "created_at"], as_json, "no projects")


@project.command("set")
@config_options
@click.argument("name")
@click.option("--public/--private", required=True, help="make the project public or private")
def project_set(config_file: Path | None, data_dir: Path | None, name: str, public: bool) -> None:
    """Make project NAME public or private."""
    _as_admin(config_file, data_dir, lambda svc, me: svc.update_project(me, name, public=public))
    click.echo(f"project {name} is now {'public' if public else 'private'}")


@project.command("delete")
@config_options
@click.argument("name")
def project_delete(config_file: Path | None, data_dir: Path | None, name: str) -> None:
    """Delete project NAME with its teams, members and robots.

    Refused while the project has repositories: delete them first with `dockyard repo delete`.
    """
    _as_admin(config_file, data_dir, lambda svc, me: svc.delete_project(me, name))
    click.echo(f"deleted project {name}")


@click.group()
def team() -> None:
    """Manage a project's teams (groups of users that can hold roles)."""


@team.command("add")
@config_options
@click.argument("project")
@click.argument("team_name", metavar="TEAM")
def team_add(config_file: Path | None, data_dir: Path | None, project: str, team_name: str) -> None:
    """Create TEAM in PROJECT; give it a role with `dockyard member add PROJECT TEAM ROLE`."""
    _as_admin(config_file, data_dir, lambda svc, me: svc.add_team(me, project, team_name))
    click.echo(f"created team {project}/{team_name}")


@team.command("list")
@config_options
@click.argument("project")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def team_list(config_file: Path | None, data_dir: Path | None, project: str, as_json: bool) -> None:
    """List PROJECT's teams and their members."""
    rows = _as_admin(config_file, data_dir, lambda svc, me: svc.list_teams(me, project))
    _show(rows, ["name", "members"], as_json, f"no teams in {project}")


@team.command("delete")
@config_options
@click.argument("project")
@click.argument("team_name", metavar="TEAM")
def team_delete(config_file: Path | None, data_dir: Path | None, project: str, team_name: str) -> None:
    """Delete TEAM from PROJECT (its roles go with it)."""
    _as_admin(config_file, data_dir, lambda svc, me: svc.delete_team(me, project, team_name))
    click.echo(f"deleted team {project}/{team_name}")


@team.command("add-user")
@config_options
@click.argument("project")
@click.argument("team_name", metavar="TEAM")
@click.argument("user_name", metavar="USER")
def team_add_user(config_file: Path | None, data_dir: Path | None, project: str, team_name: str,
                  user_name: str) -> None:
    """Add USER to PROJECT's TEAM."""
    _as_admin(config_file, data_dir, lambda svc, me: svc.add_team_member(me, project, team_name, user_name))
    click.echo(f"added {user_name} to team {project}/{team_name}")


@team.command("remove-user")
@config_options
@click.argument("project")
@click.argument("team_name", metavar="TEAM")
@click.argument("user_name", metavar="USER")
def team_remove_user(config_file: Path | None, data_dir: Path | None, project: str, team_name: str,
                     user_name: str) -> None:
    """Remove USER from PROJECT's TEAM."""
    _as_admin(config_file, data_dir, lambda svc, me: svc.remove_team_member(me, project, team_name, user_name))
    click.echo(f"removed {user_name} from team {project}/{team_name}")


@click.group()
def member() -> None:
    """Grant and take away roles in a project: guest, developer, maintainer, admin."""


@member.command("add")
@config_options
@click.argument("project")
@click.argument("who", metavar="USER_OR_TEAM")
@click.argument("role", type=click.Choice(["guest", "developer", "maintainer", "admin"]))
def member_add(config_file: Path | None, data_dir: Path | None, project: str, who: str, role: str) -> None:
    """Give USER_OR_TEAM the ROLE in PROJECT (replacing its previous role there).

    USER_OR_TEAM is a user, a team of PROJECT, another project's team as OTHER/TEAM, or
    explicitly user:NAME or team:NAME.
    """
    found = _as_admin(config_file, data_dir, lambda svc, me: svc.set_member(me, project, who, role))
    click.echo(f"{found['kind']} {found['name']} is {role} in {project}")


@member.command("remove")
@config_options
@click.argument("project")
@click.argument("who", metavar="USER_OR_TEAM")
def member_remove(config_file: Path | None, data_dir: Path | None, project: str, who: str) -> None:
    """Take USER_OR_TEAM's role in PROJECT away."""
    _as_admin(config_file, data_dir, lambda svc, me: svc.remove_member(me, project, who))
    click.echo(f"{who} holds no role in {project} now")


@member.command("list")
@config_options
@click.argument("project")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def member_list(config_file: Path | None, data_dir: Path | None, project: str, as_json: bool) -> None:
    """List who holds which role in PROJECT."""
    rows = _as_admin(config_file, data_dir, lambda svc, me: svc.list_members(me, project))
    _show(rows, ["kind", "name", "role"], as_json, f"nobody holds a role in {project}")


@click.group()
def robot() -> None:
    """Robot accounts for CI and deployments: explicit permissions on explicit repositories."""


def _robot_options(func: Any) -> Any:
    func = click.option("--expires", default="never", show_default=True,
                        help="lifetime like 30d, 12h, 2w (1m to 10 years), or never")(func)
    func = click.option("--repo", "repos", multiple=True, required=True,
                        help="repository glob, e.g. 'api/*' (repeatable; * also matches /)")(func)
    return click.option("--perm", "perms", required=True, help="comma-separated: pull, push, delete")(func)


def _expiry(text: str) -> timedelta | None:
    """--expires checked before anything is opened: a usage error that names the limits."""
    from dockyard.errors import RequestInvalid
    from dockyard.services.accounts import parse_expiry

    try:
        return parse_expiry(text)
    except RequestInvalid as exc:
        raise click.BadParameter(exc.message, param_hint="--expires") from None


def _print_robot(found: Any) -> None:
    click.echo(f"robot account: {found.login}")
    click.echo(f"secret:        {found.secret}")
    click.echo("The secret is shown only now: store it in your CI's secret store.", err=True)
    if found.expires_at is not None:
        click.echo(f"expires:       {found.expires_at.isoformat()}")


@robot.command("add")
@config_options
@click.argument("project")
@click.argument("name")
@_robot_options
def robot_add(config_file: Path | None, data_dir: Path | None, project: str, name: str, perms: str,
              repos: tuple[str, ...], expires: str) -> None:
    """Create robot NAME in PROJECT; prints its login name and secret once.

    Globs are relative to PROJECT: --repo 'api/*' means PROJECT/api/*.
    Example: dockyard robot add team-a ci --perm pull,push --repo 'api/*' --expires 30d
    """
    lifetime = _expiry(expires)
    found = _as_admin(config_file, data_dir, lambda svc, me: svc.add_robot(
        me, project, name, perms.split(","), list(repos), lifetime))
    _print_robot(found)


@robot.command("add-system")
@config_options
@click.argument("name")
@_robot_options
def robot_add_system(config_file: Path | None, data_dir: Path | None, name: str, perms: str,
                     repos: tuple[str, ...], expires: str) -> None:
    """Create a system-wide robot NAME (globs on full repository names)."""
    lifetime = _expiry(expires)
    found = _as_admin(config_file, data_dir, lambda svc, me: svc.add_robot(
        me, None, name, perms.split(","), list(repos), lifetime))
    _print_robot(found)


@robot.command("list")
@config_options
@click.argument("project", required=False)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def robot_list(config_file: Path | None, data_dir: Path | None, project: str | None, as_json: bool) -> None:
    """List PROJECT's robots (without PROJECT: the system-wide ones)."""
    rows = _as_admin(config_file, data_dir, lambda svc, me: svc.list_robots(me, project))
    _show(rows, ["name", "actions", "repositories", "expires_at", "revoked"], as_json, "no robots")


@robot.command("rotate")
@config_options
@click.argument("login")
def robot_rotate(config_file: Path | None, data_dir: Path | None, login: str) -> None:
    """Give robot LOGIN a new secret (the old one stops working at once)."""
    found = _as_admin(config_file, data_dir, lambda svc, me: svc.rotate_robot(me, login))
    _print_robot(found)


@robot.command("revoke")
@config_options
@click.argument("login")
def robot_revoke(config_file: Path | None, data_dir: Path | None, login: str) -> None:
    """Revoke robot LOGIN: its secret and tokens stop working on the next request."""
    _as_admin(config_file, data_dir, lambda svc, me: svc.revoke_robot(me, login))
    click.echo(f"revoked {login}")


@robot.command("delete")
@config_options
@click.argument("login")
def robot_delete(config_file: Path | None, data_dir: Path | None, login: str) -> None:
    """Delete robot LOGIN."""
    _as_admin(config_file, data_dir, lambda svc, me: svc.delete_robot(me, login))
    click.echo(f"deleted {login}")


@click.command()
@config_options
@click.option("--project", help="only events in this project")
@click.option("--repository", help="only events on this repository")
@click.option("--user", "user_name", help="only events by this user or robot")
@click.option("--action", help="only this action, e.g. manifest.pushed, login.failed, or a prefix like 'login.*'")
@click.option("--since", help="from this time on (ISO 8601, e.g. 2026-11-28T09:00:00Z)")
@click.option("--until", help="before this time (ISO 8601)")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="at most this many")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def audit(config_file: Path | None, data_dir: Path | None, project: str | None, repository: str | None,
          user_name: str | None, action: str | None, since: str | None, until: str | None, limit: int,
          as_json: bool) -> None:
    """Search the audit log (newest first): pushes, pulls, deletes, logins, tokens, permission changes."""
    from dockyard.errors import RequestInvalid
    from dockyard.services.accounts import parse_time

    try:
        start, end = parse_time(since, "--since"), parse_time(until, "--until")
    except RequestInvalid as exc:
        raise click.BadParameter(exc.message) from None
    rows = _as_admin(config_file, data_dir, lambda svc, me: svc.audit(
        me, project=project, repository=repository, user=user_name, action=action, since=start, until=end,
        limit=limit))
    _show(rows, ["time", "action", "actor", "address", "project", "repository", "tag", "digest"], as_json,
          "no matching events")


@click.group()
def keys() -> None:
    """Token signing keys."""


@keys.command("rotate")
@config_options
def keys_rotate(config_file: Path | None, data_dir: Path | None) -> None:
    """Sign new tokens with a new key; tokens signed by the old one stay valid until they expire."""
    kid = _as_admin(config_file, data_dir, lambda svc, me: svc.rotate_signing_key(me))
    click.echo(f"new signing key {kid}")


COMMANDS = (user, project, team, member, robot, audit, keys)
