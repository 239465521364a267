"""The policy file (``policy/document.py``): parsing, its checks, and the diff, as tables."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.errors import RequestInvalid
from dockyard.policy.document import PolicyChange, ProjectPolicy, diff, parse_document
from dockyard.store.policies import RetentionRules

DAILY = RetentionRules("*", keep_last=10, untagged_days=7, schedule="0 3 * * *")


def test_a_full_file_parses_to_each_projects_whole_policy() -> None:
    parsed = parse_document(r"""
[projects.team-a]
quota = "10GiB"
naming = { repository = '^(api|web|worker)(/[a-z0-9-]+)?$', tag = '^v\d+\.\d+\.\d+(-(dev|test|prod))?$' }
[[projects.team-a.retention]]
repository = "api/*"
keep_tags = '^v'
keep_tags_invert = true
[[projects.team-a.retention]]
keep_last = 10
untagged_days = 7
schedule = "0 3 * * *"
[[projects.team-a.immutable]]
tag = "v*"
[[projects.team-a.immutable]]
repository = "api/*"
tag = "release-*"

[projects."team.b"]
quota = 0
[projects.empty]
""")
    assert parsed == {
        "team-a": ProjectPolicy(10 * 2**30, r"^(api|web|worker)(/[a-z0-9-]+)?$",
                                r"^v\d+\.\d+\.\d+(-(dev|test|prod))?$",
                                (DAILY, RetentionRules("api/*", keep_tags="^v", keep_tags_invert=True)),
                                (("*", "v*"), ("api/*", "release-*"))),
        "team.b": ProjectPolicy(quota=0),
        "empty": ProjectPolicy(),
    }
    assert parse_document("") == {}


@pytest.mark.parametrize(("text", "says"), [
    ("version = 1\n", "unknown key 'version' in the top level (line 1)"),
    ("projects = 3\n", "projects must be a table"),
    ("[projects]\nteam-a = 3\n", "projects.team-a must be a table"),
    ("[projects.a]\n\n# x\nsize = 1\n", "unknown key 'size' in [projects.a] (line 4)"),
    ("[projects.a]\nnaming = 'x'\n", "naming must be a table"),
    ("[projects.a]\nimmutable = [1]\n", "immutable must be an array of tables"),
    ("[projects.a]\n[[projects.a.immutable]]\ntag = ''\n", "tag must be 1 to 255 characters"),
    ("[projects.a]\n[[projects.a.retention]]\nkeep_last = 1.5\n", "keep_last must be a whole number"),
    ("[projects.a]\n[[projects.a.retention]]\nuntagged_days = 36501\n", "from 0 to 36500"),
    ("[projects.a]\n[[projects.a.retention]]\nkeep_tags_invert = 'yes'\nkeep_tags = 'x'\n",
     "keep_tags_invert must be true or false"),
    ("[projects.a]\nquota = -5\n", "quota must be a size"),
    ("[projects.a]\nquota = 'none'\nnaming = { tag = 'a{4294967296}' }\n", "not a valid regular expression"),
    ("x = \x00\n", "not valid TOML"),
])
def test_bad_files_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(RequestInvalid) as refused:
        parse_document(text)
    assert says in refused.value.message


@pytest.mark.parametrize(("text", "says"), [
    ("#" * 100 + "\n" * (256 * 1024), "larger than 262144 bytes"),
    ("[projects.a]\n" + "a" + ".a" * 3000 + " = 1\n", "line 2 of the policy file is longer than 4096"),
    ("x = " + "[" * 2000 + "\n" + "[" * 4000 + "\n" + "]" * 2000, "nests arrays or tables too deeply"),
])
def test_files_too_large_or_too_deep_are_refused(text: str, says: str) -> None:
    """Bounded work for any file: tomllib's memory grows with the square of a dotted key's depth,
    and deep arrays overflow its recursion."""
    with pytest.raises(RequestInvalid) as refused:
        parse_document(text)
    assert says in refused.value.message


@pytest.mark.parametrize(("current", "desired", "lines"), [
    (ProjectPolicy(), ProjectPolicy(), []),
    (ProjectPolicy(quota=5), ProjectPolicy(quota=1024), ["~ p quota: 5 B (5 bytes) -> 1.0 KiB (1024 bytes)"]),
    (ProjectPolicy(quota=5), ProjectPolicy(), ["- p quota: 5 B (5 bytes) -> none"]),
    (ProjectPolicy(tag_pattern="^v"), ProjectPolicy(repository_pattern="^a$"),
     ["+ p naming.repository: '^a$'", "- p naming.tag: '^v' (not in the file)"]),
    (ProjectPolicy(tag_pattern="it's"), ProjectPolicy(tag_pattern="^v"), ["~ p naming.tag: \"it's\" -> '^v'"]),
    (ProjectPolicy(retention=(DAILY,)), ProjectPolicy(retention=(RetentionRules("*", keep_last=0),)),
     ["~ p retention '*': keep_last 10 -> 0, untagged_days 7 -> none, schedule '0 3 * * *' -> none"]),
    (ProjectPolicy(retention=(DAILY,)), ProjectPolicy(),
     ["- p retention '*': keep_last=10 untagged_days=7 schedule='0 3 * * *' (not in the file)"]),
    (ProjectPolicy(immutable=(("*", "v*"),)), ProjectPolicy(immutable=(("*", "v*"), ("a", "b"))),
     ["+ p immutable 'a:b'"]),
])
def test_diff_lines(current: ProjectPolicy, desired: ProjectPolicy, lines: list[str]) -> None:
    changes = diff("p", current, desired)
    assert [c.line() for c in changes] == lines
    assert diff("p", desired, desired) == []


def test_a_change_as_data() -> None:
    change = PolicyChange("p", "-", "immutable", "*:v*", {"repository": "*", "tag": "v*"}, None)
    assert change.as_dict() == {"project": "p", "change": "remove", "kind": "immutable", "key": "*:v*",
                                "old": {"repository": "*", "tag": "v*"}, "new": None}


KEYS = st.sampled_from(["projects", "team-a", "quota", "naming", "retention", "immutable", "repository", "tag",
                        "keep_last", "keep_tags", "keep_tags_invert", "schedule", "x"])
SCALARS = st.one_of(st.integers(-(2**64), 2**64), st.booleans(), st.text(max_size=20), st.floats(allow_nan=False),
                    st.sampled_from(["'10GiB'", "'(x'", "'0 3 * * *'", "'v*'", "[]", "{}", "[{}]"]))


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.one_of(
    st.builds(lambda k, v: f"{k} = {v if isinstance(v, str) and v[:1] in '[{' else json.dumps(v)}", KEYS,
              SCALARS),
    st.builds(lambda a, b: f"[projects.{a}]" if b is None else f"[[projects.{a}.{b}]]", KEYS,
              st.one_of(st.none(), KEYS)),
    st.text(max_size=30)), max_size=8))
def test_any_file_is_parsed_or_refused_with_a_message(lines: list[str]) -> None:
    try:
        parse_document("\n".join(lines))
    except RequestInvalid as exc:
        message = exc.message
    else:
        message = "parsed"
    assert message


def test_the_example_in_the_docs_is_a_valid_policy_file() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "lifecycle.md").read_text()
    example = text.split("### The policy file", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    parsed = parse_document(example)
    assert sorted(parsed) == ["team-a", "team-b"]
    assert [r.repository_glob for r in parsed["team-a"].retention] == ["*", "api/*", "tmp/*"]
    assert parsed["team-a"].retention[2].keep_tags_invert is True
    assert parsed["team-b"] == ProjectPolicy(quota=2**30)


def test_the_commands_in_the_docs_exist() -> None:
    """Every `dockyard …` of "Policies as data" names a real command with real options."""
    from pathlib import Path

    from tests.unit.test_deploy_files import _check_invocation, _invocations

    text = (Path(__file__).parents[2] / "docs" / "lifecycle.md").read_text()
    section = text.split("## Policies as data", 1)[1].split("\n## ", 1)[0]
    invocations = _invocations(section)
    assert {tuple(words[:2]) for words in invocations} >= {
        ("retention", "set"), ("retention", "show"), ("retention", "delete"), ("immutable", "add"),
        ("immutable", "list"), ("immutable", "delete"), ("naming", "set"), ("quota", "set"), ("policy", "show"),
        ("policy", "diff"), ("policy", "apply")}
    assert [p for p in map(_check_invocation, invocations) if p] == []
