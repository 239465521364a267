"""The access-control CLI on a real data directory (SQLite), through click's runner: the same
commands an operator types, with their output, exit codes and ``--json`` listings."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from dockyard.cli import main

CHEAP = {"DOCKYARD_AUTH__ARGON2_TIME_COST": "1", "DOCKYARD_AUTH__ARGON2_MEMORY_KIB": "1024",
         "DOCKYARD_ADMIN_PASSWORD": "cli-admin-password"}


@pytest.fixture
def dockyard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for key, value in CHEAP.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None, ok: bool = True) -> Result:
        result = runner.invoke(main, [*args, "--data-dir", str(tmp_path / "data")], input=stdin)
        if ok:
            assert result.exit_code == 0, (args, result.output)
        else:
            assert result.exit_code != 0, (args, result.output)
        return result
    return run


def test_users_projects_teams_members_and_listings(dockyard) -> None:  # type: ignore[no-untyped-def]
    assert "created user alice" in dockyard("user", "add", "alice", "--password-stdin", stdin="alice-password\n").output
    dockyard("project", "add", "team-a")
    dockyard("project", "add", "shared", "--public")
    dockyard("team", "add", "team-a", "devs")
    dockyard("team", "add-user", "team-a", "devs", "alice")
    assert "team team-a/devs is developer in team-a" in dockyard("member", "add", "team-a", "devs", "developer").output
    dockyard("member", "add", "shared", "team-a/devs", "guest")
    users = json.loads(dockyard("user", "list", "--json").output)
    assert [(u["name"], u["admin"]) for u in users] == [("admin", True), ("alice", False)]
    projects = json.loads(dockyard("project", "list", "--json").output)
    assert [(p["name"], p["public"]) for p in projects] == [("shared", True), ("team-a", False)]
    assert json.loads(dockyard("member", "list", "shared", "--json").output) == [
        {"kind": "team", "name": "team-a/devs", "role": "guest"}]
    assert json.loads(dockyard("team", "list", "team-a", "--json").output) == [{"name": "devs", "members": ["alice"]}]
    table = dockyard("project", "list").output.splitlines()
    assert table[0].split() == ["NAME", "PUBLIC", "CREATED_BY", "CREATED_AT"]
    dockyard("user", "disable", "alice")
    assert json.loads(dockyard("user", "list", "--json").output)[1]["disabled"] is True
    dockyard("project", "set", "shared", "--private")
    assert json.loads(dockyard("project", "list", "--json").output)[0]["public"] is False


def test_bad_input_names_the_fix(dockyard) -> None:  # type: ignore[no-untyped-def]
    assert "not valid" in dockyard("user", "add", "Bad Name", "--password-stdin", stdin="long-password\n",
                                   ok=False).output
    assert "8 to 1024 bytes" in dockyard("user", "add", "bob", "--password-stdin", stdin="short\n", ok=False).output
    assert "not found" in dockyard("member", "add", "nowhere", "bob", "guest", ok=False).output
    assert "is not one of 'guest'" in dockyard("member", "add", "team-a", "bob", "owner", ok=False).output
    dockyard("project", "add", "team-a")
    assert "exists already" in dockyard("project", "add", "team-a", ok=False).output
    assert "duration" in dockyard("robot", "add", "team-a", "ci", "--perm", "pull", "--repo", "*", "--expires",
                                  "soon", ok=False).output
    assert "pull, push, delete" in dockyard("robot", "add", "team-a", "ci", "--perm", "admin", "--repo", "*",
                                           ok=False).output


@pytest.mark.parametrize("command", [["robot", "add", "team-a", "ci"], ["robot", "add-system", "ci"]])
@pytest.mark.parametrize(("expires", "says"), [("999999w", "at most 10 years"), ("3651d", "at most 10 years"),
                                               ("0m", "at least 1m")])
def test_robot_expiry_out_of_range_is_a_usage_error(dockyard, command: list[str], expires: str,  # type: ignore[no-untyped-def]
                                                    says: str) -> None:
    """An expiry past ten years (or under a minute) is click's usage error (exit 2) naming the
    limit and the option, never an OverflowError; ten years exactly is fine."""
    dockyard("project", "add", "team-a")
    refused = dockyard(*command, "--perm", "pull", "--repo", "*", "--expires", expires, ok=False)
    assert refused.exit_code == 2, refused.output
    assert says in refused.output
    assert "--expires" in refused.output
    assert "Traceback" not in refused.output
    assert refused.exception is None or isinstance(refused.exception, SystemExit)
    assert "expires:" in dockyard(*command, "--perm", "pull", "--repo", "*", "--expires", "3650d").output


@pytest.mark.parametrize("older_than", ["99999999999999999999", "-1"])
def test_uploads_purge_age_out_of_range_is_a_usage_error(dockyard, older_than: str) -> None:  # type: ignore[no-untyped-def]
    """``uploads purge --older-than`` past ten years is a usage error, not an OverflowError, and a
    negative age (which would purge uploads in progress) is refused too."""
    refused = dockyard("uploads", "purge", "--dry-run", "--older-than", older_than, ok=False)
    assert refused.exit_code == 2, refused.output
    assert "--older-than" in refused.output
    assert "0<=x<=315360000" in refused.output


def test_passwd_resets_any_password_without_the_current_one(dockyard) -> None:  # type: ignore[no-untyped-def]
    """The operator at the console resets the admin's own password without knowing it (the way
    back in when it is lost), as well as anyone else's."""
    dockyard("user", "add", "alice", "--password-stdin", stdin="alice-password\n")
    for name in ("admin", "alice"):
        assert f"changed the password of {name}" in dockyard("user", "passwd", name, "--password-stdin",
                                                             stdin="a-new-password\n").output


def test_robot_secret_is_printed_once_and_rotates(dockyard) -> None:  # type: ignore[no-untyped-def]
    dockyard("project", "add", "team-a")
    made = dockyard("robot", "add", "team-a", "ci", "--perm", "pull,push", "--repo", "api/*", "--expires", "30d")
    lines = dict(line.split(":", 1) for line in made.stdout.splitlines() if ":" in line)
    assert lines["robot account"].strip() == "robot+team-a+ci"
    secret = lines["secret"].strip()
    assert len(secret) >= 40
    listed = dockyard("robot", "list", "team-a", "--json").output
    assert secret not in listed
    assert json.loads(listed)[0]["repositories"] == ["team-a/api/*"]
    rotated = dockyard("robot", "rotate", "robot+team-a+ci").stdout
    assert secret not in rotated
    new_secret = dict(line.split(":", 1) for line in rotated.splitlines() if ":" in line)["secret"].strip()
    assert len(new_secret) >= 40
    dockyard("robot", "revoke", "robot+team-a+ci")
    assert json.loads(dockyard("robot", "list", "team-a", "--json").output)[0]["revoked"] is True
    dockyard("robot", "add-system", "mirror", "--perm", "pull", "--repo", "*")
    assert [r["name"] for r in json.loads(dockyard("robot", "list", "--json").output)] == ["robot+mirror"]


def test_audit_filters_and_json(dockyard) -> None:  # type: ignore[no-untyped-def]
    dockyard("project", "add", "team-a")
    dockyard("user", "add", "alice", "--password-stdin", stdin="alice-password\n")
    dockyard("member", "add", "team-a", "alice", "maintainer")
    events = json.loads(dockyard("audit", "--project", "team-a", "--json").output)
    assert [e["action"] for e in events] == ["member.set", "project.created"]
    assert {e["address"] for e in events} == {events[0]["address"]}
    assert events[0]["address"].startswith("cli:")
    assert events[0]["detail"] == {"role": "maintainer", "target": "alice"}
    assert json.loads(dockyard("audit", "--action", "user.*", "--json").output)[0]["detail"]["target"] == "alice"
    assert "ISO 8601" in dockyard("audit", "--since", "yesterday", ok=False).output
    assert dockyard("audit", "--user", "nobody").output.strip() == "no matching events"


def test_keys_rotate(dockyard) -> None:  # type: ignore[no-untyped-def]
    first = dockyard("keys", "rotate").output
    second = dockyard("keys", "rotate").output
    assert first.startswith("new signing key ")
    assert first != second


@pytest.mark.parametrize("group", ["user", "project", "team", "member", "robot", "audit", "keys"])
def test_every_command_explains_itself(group: str) -> None:
    result = CliRunner().invoke(main, [group, "--help"])
    assert result.exit_code == 0
    assert len(result.output.splitlines()) > 4


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
        else:
            found.append(((*path, name), command))
    return found


def test_every_command_takes_config_and_data_dir_like_serve() -> None:
    """Issue 4 item 9. ``config check FILE`` is the exception: the file to check is its argument."""
    lacking = [" ".join(path) for path, command in _commands(main)
               if not {"--config", "--data-dir"} <= {opt for param in command.params for opt in param.opts}]
    assert lacking == ["config check"]
