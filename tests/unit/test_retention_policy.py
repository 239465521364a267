"""The retention evaluator as a table: policies x repositories → the expected verdicts (and why)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from dockyard.policy.retention import (
    ManifestState,
    RepositorySnapshot,
    TagState,
    cosign_subject,
    evaluate,
    governing_policy,
)
from dockyard.store.policies import ImmutableRule, RetentionPolicy, RetentionRules

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
IMAGE = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def d(name: str) -> str:
    """A digest per name, so tables read in names."""
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@dataclass
class Repo:
    """A repository in names: tags → (manifest, days since pushed); manifests with their age."""

    tags: dict[str, tuple[str, float]]
    manifests: dict[str, float] = field(default_factory=dict)  # name -> days since pushed
    pulled: dict[str, float] = field(default_factory=dict)  # name -> days since pulled
    children: dict[str, tuple[str, ...]] = field(default_factory=dict)
    subjects: dict[str, str] = field(default_factory=dict)  # referrer -> subject
    artifact_types: dict[str, str] = field(default_factory=dict)

    def snapshot(self, name: str = "team/api") -> RepositorySnapshot:
        names = set(self.manifests) | {m for m, _ in self.tags.values()}
        manifests = tuple(ManifestState(
            d(m), INDEX if m in self.children else IMAGE, ago(self.manifests.get(m, 1)),
            ago(self.pulled[m]) if m in self.pulled else None,
            d(self.subjects[m]) if m in self.subjects else None, self.artifact_types.get(m),
            tuple(d(c) for c in self.children.get(m, ()))) for m in sorted(names))
        tags = tuple(TagState(t, d(m), ago(days)) for t, (m, days) in sorted(self.tags.items()))
        return RepositorySnapshot(name, tags, manifests)


def rule(rule_id: int, repository: str, tag: str) -> ImmutableRule:
    return ImmutableRule(rule_id, 1, repository, tag, NOW, "admin")


SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM = "application/spdx+json"

# (id, rules, repository, immutable rules, expected: item -> (kept, a piece of the reason[, action]))
# An item is a tag name, or "@name" for the untagged manifest ``name``.
CASES: list[tuple[str, RetentionRules, Repo, list[ImmutableRule], dict[str, tuple[object, ...]]]] = [
    ("keep_last", RetentionRules(keep_last=2),
     Repo({"a": ("m1", 1), "b": ("m2", 2), "c": ("m3", 3)}), [],
     {"a": (True, "among the 2 most recently pushed (keep_last=2)"), "b": (True, "keep_last=2"),
      "c": (False, "removed: matches no keep rule (keep_last=2)", "delete")}),
    ("keep_last ties by name", RetentionRules(keep_last=2),
     Repo({"z": ("m1", 5), "x": ("m2", 5), "y": ("m3", 5)}), [],
     {"x": (True, "keep_last"), "y": (True, "keep_last"), "z": (False, "matches no keep rule")}),
    ("keep_days", RetentionRules(keep_days=7),
     Repo({"new": ("m1", 1), "old": ("m2", 10), "today": ("m3", 0.1)}), [],
     {"new": (True, "pushed 1 day ago (keep_days=7)"), "today": (True, "pushed today"),
      "old": (False, "matches no keep rule (keep_days=7)")}),
    ("keep_pulled_days", RetentionRules(keep_pulled_days=7),
     Repo({"hot": ("m1", 90), "cold": ("m2", 90), "never": ("m3", 90)}, pulled={"m1": 2, "m2": 30}), [],
     {"hot": (True, "pulled 2 days ago (keep_pulled_days=7)"), "cold": (False, "matches no keep rule"),
      "never": (False, "matches no keep rule")}),
    ("keep_tags matches anywhere (re.search)", RetentionRules(keep_tags=r"^v\d+|rc"),
     Repo({"v1.0": ("m1", 90), "1.0-rc1": ("m2", 90), "latest": ("m3", 90)}), [],
     {"v1.0": (True, "matches keep_tags"), "1.0-rc1": (True, "matches keep_tags"),
      "latest": (False, "matches no keep rule (keep_tags='^v\\d+|rc')")}),
    ("keep_tags inverted", RetentionRules(keep_tags=r"^dev-", keep_tags_invert=True),
     Repo({"v1": ("m1", 90), "dev-1": ("m2", 90), "dev-2": ("m3", 90)}), [],
     {"v1": (True, "does not match '^dev-' (keep_tags, inverted)"), "dev-1": (False, "no keep rule"),
      "dev-2": (False, "no keep rule")}),
    ("only untagged_days: every tag stays, old untagged go", RetentionRules(untagged_days=30),
     Repo({"ancient": ("m1", 900)}, manifests={"m1": 900, "old": 40, "young": 3}), [],
     {"ancient": (True, "no keep rule for tags"),
      "@old": (False, "removed: untagged and pushed 40 days ago (untagged_days=30)", "delete"),
      "@young": (True, "untagged, pushed 3 days ago (untagged_days=30)")}),
    ("no untagged_days keeps untagged manifests", RetentionRules(keep_last=1),
     Repo({"a": ("m1", 1), "b": ("m2", 2)}, manifests={"loose": 400}), [],
     {"a": (True, "keep_last"), "b": (False, "no keep rule"),
      "@loose": (True, "untagged; the policy has no untagged_days rule")}),
    ("rules are OR'ed", RetentionRules(keep_last=1, keep_tags=r"^v", keep_days=5),
     Repo({"newest": ("m1", 0.5), "recent": ("m2", 3), "v1": ("m3", 100), "stale": ("m4", 100)}), [],
     {"newest": (True, "keep_last=1"), "recent": (True, "keep_days=5"), "v1": (True, "keep_tags"),
      "stale": (False, "matches no keep rule (keep_last=1, keep_days=5, keep_tags='^v')")}),
    ("immutable tags always stay", RetentionRules(keep_last=1),
     Repo({"v1": ("m1", 100), "v2": ("m2", 50), "main": ("m3", 1)}), [rule(3, "*", "v1")],
     {"v1": (True, "kept: immutable rule #3"), "v2": (False, "no keep rule"), "main": (True, "keep_last")}),
    ("immutable rules match the repository glob", RetentionRules(keep_last=1),
     Repo({"v1": ("m1", 100), "main": ("m3", 1)}), [rule(4, "web/*", "v*")],
     {"v1": (False, "no keep rule"), "main": (True, "keep_last")}),
    ("children of a kept index stay; of a removed one they follow it",
     RetentionRules(keep_last=1, untagged_days=1),
     Repo({"multi": ("idx", 1), "oldmulti": ("idx2", 90)}, manifests={"amd": 90, "arm": 90, "amd2": 90, "idx2": 90},
          children={"idx": ("amd", "arm"), "idx2": ("amd2",)}), [],
     {"multi": (True, "keep_last"), "oldmulti": (False, "no keep rule", "delete"),
      "@amd": (True, f"kept: child of kept index {d('idx')}"), "@arm": (True, "child of kept index"),
      "@amd2": (False, f"removed: child of index {d('idx2')}, which goes with its tags", "follow")}),
    ("OCI referrers follow their subject", RetentionRules(keep_last=1, untagged_days=1),
     Repo({"new": ("img1", 1), "old": ("img2", 9)}, manifests={"sig1": 30, "sbom2": 30},
          subjects={"sig1": "img1", "sbom2": "img2"}, artifact_types={"sig1": SIG, "sbom2": SBOM}), [],
     {"new": (True, "keep_last"), "old": (False, "no keep rule"),
      "@sig1": (True, f"kept: signature of kept {d('img1')}"),
      "@sbom2": (False, f"removed: SBOM of {d('img2')}, which goes with its tags", "follow")}),
    ("cosign-style tags follow the manifest they name", RetentionRules(keep_last=1),
     Repo({"new": ("img1", 5), "old": ("img2", 9),
           f"sha256-{d('img1')[7:]}.sig": ("s1", 0), f"sha256-{d('img2')[7:]}.att": ("s2", 0),
           f"sha256-{d('gone')[7:]}.sbom": ("s3", 100)}), [],
     {"new": (True, "keep_last=1"), "old": (False, "no keep rule"),
      f"sha256-{d('img1')[7:]}.sig": (True, f"kept: signature tag of kept {d('img1')}"),
      f"sha256-{d('img2')[7:]}.att": (False, f"removed: attestation tag of {d('img2')}, which goes", "delete"),
      # naming a manifest the repository does not have: an ordinary tag (the newest is "new")
      f"sha256-{d('gone')[7:]}.sbom": (False, "no keep rule")}),
    ("an old untagged index goes with its untagged children and referrers",
     RetentionRules(untagged_days=7),
     Repo({}, manifests={"idx": 30, "c1": 30, "sig": 30}, children={"idx": ("c1",)}, subjects={"sig": "idx"},
          artifact_types={"sig": SIG}), [],
     {"@idx": (False, "untagged and pushed 30 days ago (untagged_days=7)", "delete"),
      "@c1": (False, f"child of index {d('idx')}, which goes", "delete"),
      "@sig": (False, f"signature of {d('idx')}, which goes", "delete")}),
    ("a young untagged index keeps its children", RetentionRules(untagged_days=7),
     Repo({}, manifests={"idx": 2, "c1": 30}, children={"idx": ("c1",)}), [],
     {"@idx": (True, "untagged, pushed 2 days ago"), "@c1": (True, "child of kept index")}),
    ("a child shared by a kept and a removed index stays", RetentionRules(keep_last=1),
     Repo({"a": ("i1", 1), "b": ("i2", 5)}, manifests={"shared": 9}, children={"i1": ("shared",), "i2": ("shared",)}),
     [], {"a": (True, "keep_last"), "b": (False, "no keep rule"), "@shared": (True, "child of kept index")}),
]


@pytest.mark.parametrize(("rules", "repo", "immutable", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_verdicts(rules: RetentionRules, repo: Repo, immutable: list[ImmutableRule],
                  expected: dict[str, tuple[object, ...]]) -> None:
    result = evaluate(rules, repo.snapshot(), immutable, NOW)
    names = {d(m): m for m in {*repo.manifests, *(m for m, _ in repo.tags.values())}}
    got = {(v.tag if v.kind == "tag" else f"@{names[v.digest]}"): v for v in result.verdicts}
    assert set(got) == set(expected)
    for item, (kept, reason, *action) in expected.items():
        verdict = got[item]
        assert verdict.kept is kept, (item, verdict.reason)
        assert str(reason) in verdict.reason, (item, verdict.reason)
        assert verdict.reason.startswith("kept: " if kept else "removed: ")
        assert verdict.action == (action[0] if action else ("keep" if kept else "delete")), item


def test_nothing_a_kept_image_needs_goes() -> None:
    repo = Repo({"keep": ("idx", 1), "drop": ("other", 50)}, manifests={"c1": 50, "c2": 50, "sig": 50},
                children={"idx": ("c1", "c2")}, subjects={"sig": "c1"}, artifact_types={"sig": SIG})
    result = evaluate(RetentionRules(keep_last=1, untagged_days=1), repo.snapshot(), [], NOW)
    assert result.kept == {d("idx"), d("c1"), d("c2"), d("sig")}
    assert [v.tag for v in result.verdicts if not v.kept] == ["drop"]


def test_removed_untagged_manifests_come_parents_first() -> None:
    repo = Repo({}, manifests={"idx": 30, "c1": 30, "sig": 30}, children={"idx": ("c1",)}, subjects={"sig": "c1"})
    result = evaluate(RetentionRules(untagged_days=1), repo.snapshot(), [], NOW)
    assert [v.digest for v in result.verdicts] == [d("idx"), d("c1"), d("sig")]


def test_cosign_subject() -> None:
    hexpart = "a" * 64
    assert cosign_subject(f"sha256-{hexpart}.sig") == f"sha256:{hexpart}"
    assert cosign_subject(f"sha256-{hexpart}.sbom") == f"sha256:{hexpart}"
    assert cosign_subject(f"sha256-{hexpart}.txt") is None
    assert cosign_subject("v1.0") is None


def policy(policy_id: int, glob: str) -> RetentionPolicy:
    return RetentionPolicy(policy_id, 1, RetentionRules(repository_glob=glob, keep_last=policy_id), NOW, NOW, None)


@pytest.mark.parametrize(("repository", "expected"), [
    ("team/api/web", "api/web"),  # the literal glob beats every wildcard one
    ("team/api/worker", "api/*"),
    ("team/apis", "api*"),
    ("team/web", "*"),
    ("team/w", "?"),  # "?" and "*" carry no literal characters: a tie, decided by the glob's text
])
def test_the_most_specific_glob_governs(repository: str, expected: str) -> None:
    policies = [policy(1, "*"), policy(2, "api/*"), policy(3, "api/web"), policy(4, "api*"), policy(5, "?")]
    found = governing_policy(policies, repository)
    assert found is not None
    assert found.rules.repository_glob == expected


def test_no_matching_glob_no_policy() -> None:
    assert governing_policy([policy(1, "web/*")], "team/api") is None
