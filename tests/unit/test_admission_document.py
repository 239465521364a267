"""The policy file's push, pull and allow keys (pure): parsing into rules and entries, the diff and
its lines, and errors that name the key and its line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dockyard.errors import RequestInvalid
from dockyard.policy.document import ProjectPolicy, diff, parse_document
from dockyard.store.admission import AdmissionRule, AllowEntry

FILE = """
[projects.team-a.push]
secrets = "enforce"
labels = { required = ["org.opencontainers.image.source"] }

[projects.team-a.pull]
vulnerabilities = { severity = "high", mode = "warn" }

[[projects.team-a.allow]]
id = "CVE-2023-4863"
reason = "no WebP"
expires = 2027-01-31
"""


def test_the_file_gives_rules_and_entries() -> None:
    policy = parse_document(FILE)["team-a"]
    assert policy.admission == (
        AdmissionRule("push", "labels", "enforce", labels=("org.opencontainers.image.source",)),
        AdmissionRule("push", "secrets", "enforce"),
        AdmissionRule("pull", "vulnerabilities", "warn", severity="high"))
    assert policy.allow == (AllowEntry("CVE-2023-4863", "no WebP", datetime(2027, 1, 31, tzinfo=UTC)),)


def test_the_diff_adds_changes_and_removes_rules_and_entries() -> None:
    desired = parse_document(FILE)["team-a"]
    current = ProjectPolicy(admission=(AdmissionRule("push", "secrets", "warn"), AdmissionRule("pull", "signed",
                                                                                                "enforce")),
                            allow=(AllowEntry("CVE-2023-4863", "old reason"), AllowEntry("CVE-1", "gone")))
    assert [c.line() for c in diff("team-a", current, desired)] == [
        "+ team-a push.labels: required=['org.opencontainers.image.source'] mode='enforce'",
        "~ team-a push.secrets: warn -> enforce",
        "- team-a pull.signed: enforce (not in the file)",
        "+ team-a pull.vulnerabilities: severity='high' mode='warn'",
        "- team-a allow CVE-1: reason='gone' (not in the file)",
        "~ team-a allow CVE-2023-4863: reason='old reason' -> reason='no WebP' expires='2027-01-31'"]
    assert diff("team-a", desired, desired) == []


@pytest.mark.parametrize(("text", "says"), [
    ("[projects.a.push]\nsecrets = 'enforce'\nmalware = 'sometimes'\n",
     "[projects.a]: push.malware.mode must be \"enforce\" or \"warn\", not 'sometimes' (line 3)"),
    ("[projects.a]\npush = 'enforce'\n", "[projects.a]: push must be a table of rules"),
    ("[projects.a.pull]\nlabels = 'enforce'\n",
     "[projects.a]: unknown key 'labels' in pull (line 2); allowed: signed, scanned, vulnerabilities"),
    ("[[projects.a.allow]]\nid = 'CVE-1'\n", "[projects.a]: allow #1: reason must say why"),
])
def test_errors_name_the_key_and_line(text: str, says: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse_document(text)
    assert caught.value.message.startswith(says)
