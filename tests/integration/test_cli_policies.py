"""The policy commands through the real CLI (click's runner, in-process) on SQLite and PostgreSQL:
``retention set|show|delete``, ``immutable``, ``naming``, ``quota``, ``policy show|diff|apply``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dockyard.cli import main
from tests.integration.test_cli_access import CHEAP

POLICY_FILE = r"""
# team-a's policies, kept in git
[projects.team-a]
quota = "10GiB"
naming = { repository = '^(api|web|worker)(/[a-z0-9-]+)?$', tag = '^v\d+\.\d+\.\d+(-(dev|test|prod))?$' }

[[projects.team-a.retention]]
repository = "*"
keep_last = 10
untagged_days = 7
schedule = "0 3 * * *"

[[projects.team-a.retention]]
repository = "api/*"
keep_tags = '^v'
keep_days = 30

[[projects.team-a.immutable]]
repository = "*"
tag = "v*"

[projects.team-b]
quota = 1048576
"""


@pytest.fixture
def dockyard(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for key, value in {**CHEAP, "DOCKYARD_DATABASE__URL": database_url}.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> Result:
        result = runner.invoke(main, [*args, "--data-dir", str(tmp_path / "data")])
        assert (result.exit_code == 0) is ok, (args, result.output)
        assert "Traceback" not in result.output
        return result
    return run


def as_json(result: Result) -> Any:
    return json.loads(result.output)


def test_retention_immutable_naming_and_quota_commands(dockyard) -> None:  # type: ignore[no-untyped-def]
    dockyard("project", "add", "team-a")
    assert "has no retention policy" in dockyard("retention", "show", "team-a").output
    said = dockyard("retention", "set", "team-a", "--keep-last", "10", "--untagged-days", "7",
                    "--schedule", "0 3 * * *").output
    assert "retention policy of team-a for repositories '*': keep_last=10 untagged_days=7 schedule='0 3 * * *'" in said
    dockyard("retention", "set", "team-a", "--repo", "tmp/*", "--keep-tags", "^keep-", "--keep-tags-invert")
    shown = as_json(dockyard("retention", "show", "team-a", "--json"))
    assert [(p["repository"], p["keep_last"], p["keep_tags"], p["keep_tags_invert"]) for p in shown] == [
        ("*", 10, None, False), ("tmp/*", None, "^keep-", True)]
    table = dockyard("retention", "show", "team-a").output.splitlines()
    assert table[0].split()[:3] == ["REPOSITORY", "KEEP_LAST", "KEEP_DAYS"]
    dockyard("retention", "delete", "team-a", "--repo", "tmp/*")
    assert [p["repository"] for p in as_json(dockyard("retention", "show", "team-a", "--json"))] == ["*"]

    added = dockyard("immutable", "add", "team-a", "--repo", "api/*", "--tag", "v*").output
    assert "added immutable rule #" in added
    rules = as_json(dockyard("immutable", "list", "team-a", "--json"))
    assert [(r["repository"], r["tag"], r["created_by"]) for r in rules] == [("api/*", "v*", "admin")]
    assert "already" in dockyard("immutable", "add", "team-a", "--repo", "api/*", "--tag", "v*", ok=False).output
    dockyard("immutable", "delete", "team-a", str(rules[0]["id"]))
    assert "has no immutable rule" in dockyard("immutable", "list", "team-a").output

    dockyard("naming", "set", "team-a", "--repo", "^(api|web)$", "--tag", r"^v\d+$")
    assert "repository ^(api|web)$, tag any" in dockyard("naming", "set", "team-a", "--clear-tag").output
    assert "quota of team-a: 10.0 GiB" in dockyard("quota", "set", "team-a", "10GiB").output
    policy = as_json(dockyard("policy", "show", "team-a", "--json"))
    assert (policy["quota"], policy["naming"]) == (10 * 2**30, {"repository": "^(api|web)$", "tag": None})
    assert "quota of team-a: none" in dockyard("quota", "set", "team-a", "none").output
    assert "quota: none" in dockyard("policy", "show", "team-a").output

    audit = as_json(dockyard("audit", "--project", "team-a", "--action", "policy.*", "--json"))
    assert [e["action"] for e in reversed(audit)] == [
        "policy.retention.set", "policy.retention.set", "policy.retention.deleted", "policy.immutable.added",
        "policy.immutable.deleted", "policy.naming.set", "policy.naming.set", "policy.quota.set", "policy.quota.set"]
    assert {e["address"].split(":")[0] for e in audit} == {"cli"}


@pytest.mark.parametrize(("args", "says"), [
    (["retention", "set", "team-a", "--schedule", "0 3 * * *"], "needs at least one rule"),
    (["retention", "set", "team-a", "--keep-tags", "(x"], "keep_tags '(x' is not a valid regular expression"),
    (["retention", "set", "team-a", "--keep-last", "3", "--schedule", "tomorrow"], "five fields"),
    (["retention", "set", "team-a", "--keep-last", "-1"], "--keep-last"),
    (["retention", "set", "team-a", "--keep-tags-invert", "--keep-days", "3"], "give keep_tags too"),
    (["retention", "delete", "team-a", "--repo", "nothing/*"], "no retention policy for repository 'nothing/*'"),
    (["retention", "show", "nowhere"], "project 'nowhere' not found"),
    (["immutable", "delete", "team-a", "42"], "no immutable rule #42"),
    (["immutable", "add", "team-a", "--repo", "*"], "--tag"),
    (["naming", "set", "team-a"], "nothing to change"),
    (["naming", "set", "team-a", "--tag", "^v", "--clear-tag"], "not both"),
    (["naming", "set", "team-a", "--repo", "a{4294967296}"], "not a valid regular expression"),
    (["quota", "set", "team-a", "lots"], "write it like 500MiB, 10GiB"),
    (["quota", "set", "team-a", "99999PiB"], "too large"),
])
def test_bad_input_names_the_fix(dockyard, args: list[str], says: str) -> None:  # type: ignore[no-untyped-def]
    dockyard("project", "add", "team-a")
    assert says in dockyard(*args, ok=False).output


def test_policy_diff_apply_and_diff_again(dockyard, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name in ("team-a", "team-b", "team-c"):
        dockyard("project", "add", name)
    # What is in the database and not in the file goes; team-c, not in the file, is left alone.
    dockyard("retention", "set", "team-a", "--repo", "old/*", "--keep-last", "1")
    dockyard("retention", "set", "team-a", "--keep-last", "3")
    dockyard("immutable", "add", "team-a", "--tag", "release-*")
    dockyard("quota", "set", "team-c", "5GiB")
    file = tmp_path / "policies.toml"
    file.write_text(POLICY_FILE)

    diff = dockyard("policy", "diff", str(file)).output.splitlines()
    assert diff == [
        "+ team-a quota: none -> 10.0 GiB (10737418240 bytes)",
        "+ team-a naming.repository: '^(api|web|worker)(/[a-z0-9-]+)?$'",
        r"+ team-a naming.tag: '^v\d+\.\d+\.\d+(-(dev|test|prod))?$'",
        "~ team-a retention '*': keep_last 3 -> 10, untagged_days none -> 7, schedule none -> '0 3 * * *'",
        "+ team-a retention 'api/*': keep_days=30 keep_tags='^v'",
        "- team-a retention 'old/*': keep_last=1 (not in the file)",
        "- team-a immutable '*:release-*' (not in the file)",
        "+ team-a immutable '*:v*'",
        "+ team-b quota: none -> 1.0 MiB (1048576 bytes)",
        "9 change(s) in 2 of 2 project(s)"]
    as_data = as_json(dockyard("policy", "diff", str(file), "--json"))
    assert [(c["project"], c["change"], c["kind"], c["key"]) for c in as_data][3:6] == [
        ("team-a", "change", "retention", "*"), ("team-a", "add", "retention", "api/*"),
        ("team-a", "remove", "retention", "old/*")]
    assert as_data[5]["old"]["keep_last"] == 1
    assert as_data[5]["new"] is None
    assert as_json(dockyard("audit", "--action", "policy.*", "--json"))[0]["action"] == "policy.quota.set"  # diff: none

    applied = dockyard("policy", "apply", str(file)).output.splitlines()
    assert applied == [*diff[:-1], "applied 9 change(s)"]
    assert dockyard("policy", "diff", str(file)).output.strip() == "no changes: 2 project(s) match " + str(file)
    assert as_json(dockyard("policy", "diff", str(file), "--json")) == []
    assert "nothing to change" in dockyard("policy", "apply", str(file)).output

    team_a = as_json(dockyard("policy", "show", "team-a", "--json"))
    assert team_a["quota"] == 10 * 2**30
    assert [(p["repository"], p["keep_last"], p["keep_days"]) for p in team_a["retention"]] == [
        ("*", 10, None), ("api/*", None, 30)]
    assert [(r["repository"], r["tag"]) for r in team_a["immutable"]] == [("*", "v*")]
    assert as_json(dockyard("policy", "show", "team-c", "--json"))["quota"] == 5 * 2**30
    events = [e["action"] for e in as_json(dockyard("audit", "--project", "team-a", "--action", "policy.*", "--json"))]
    assert events[:8] == ["policy.immutable.added", "policy.immutable.deleted", "policy.retention.deleted",
                          "policy.retention.set", "policy.retention.set", "policy.naming.set",
                          "policy.naming.set", "policy.quota.set"]  # newest first

    # Taking a project's policies out of its table removes them.
    file.write_text("[projects.team-a]\n")
    emptied = dockyard("policy", "apply", str(file)).output
    assert "- team-a quota: 10.0 GiB (10737418240 bytes) -> none (not in the file)" not in emptied
    assert "- team-a quota: 10.0 GiB (10737418240 bytes) -> none" in emptied
    assert "- team-a immutable '*:v*' (not in the file)" in emptied
    assert "applied 6 change(s)" in emptied
    assert as_json(dockyard("policy", "show", "team-a", "--json"))["retention"] == []


@pytest.mark.parametrize(("text", "says"), [
    ("[projects.team-a]\nquota = '1GiB'\nsize = 3\n", "unknown key 'size' in [projects.team-a] (line 3)"),
    ("[projects.team-a]\n[[projects.team-a.retention]]\nkeep_last = 3\n\n[[projects.team-a.retention]]\n"
     "repository = 'x'\nkeep = 1\n", "unknown key 'keep' in retention #2 (line 7)"),
    ("[projects.team-a]\nnaming = { repo = 'x' }\n", "unknown key 'repo' in naming (line 2)"),
    ("[projects.team-a]\n[[projects.team-a.immutable]]\nrepository = '*'\n", "immutable #1 needs tag"),
    ("[projects.team-a]\n[[projects.team-a.immutable]]\ntag = 'v*'\n[[projects.team-a.immutable]]\ntag = 'v*'\n",
     "two immutable rules '*:v*'"),
    ("[projects.team-a]\n[[projects.team-a.retention]]\nkeep_last = 3\n[[projects.team-a.retention]]\n"
     "keep_days = 3\n", "two retention policies for repository '*'"),
    ("[projects.team-a]\n[[projects.team-a.retention]]\nkeep_last = -3\n", "keep_last must be a whole number"),
    ("[projects.team-a]\n[[projects.team-a.retention]]\nkeep_last = 3\nschedule = 'often'\n", "five fields"),
    ("[projects.team-a]\nnaming = { tag = '(v' }\n", "naming.tag '(v' is not a valid regular expression"),
    ("[projects.team-a]\nquota = 'lots'\n", "[projects.team-a]: quota"),
    ("[projects.team-a]\nquota = true\n", "quota must be a size"),
    ("[projects.team-a]\nretention = 3\n", "retention must be an array of tables"),
    ("[projects.team-a\n", "not valid TOML"),
    ("[teams.team-a]\n", "unknown key 'teams' in the top level"),
    ("[projects.nowhere]\nquota = '1GiB'\n", "a policy file does not create projects"),
])
def test_bad_policy_files_change_nothing(dockyard, tmp_path: Path, text: str,  # type: ignore[no-untyped-def]
                                         says: str) -> None:
    dockyard("project", "add", "team-a")
    file = tmp_path / "bad.toml"
    file.write_text(text)
    for command in ("diff", "apply"):
        assert says in dockyard("policy", command, str(file), ok=False).output
    assert as_json(dockyard("audit", "--action", "policy.*", "--json")) == []


def test_apply_changes_nothing_when_one_listed_project_is_missing(dockyard, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dockyard("project", "add", "team-a")
    file = tmp_path / "policies.toml"
    file.write_text("[projects.team-a]\nquota = '1GiB'\n[projects.nowhere]\nquota = '1GiB'\n")
    assert "nowhere" in dockyard("policy", "apply", str(file), ok=False).output
    assert as_json(dockyard("policy", "show", "team-a", "--json"))["quota"] is None
