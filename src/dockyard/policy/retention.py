"""Retention: which tags and untagged manifests a policy keeps, and why (a pure function, no I/O).

``evaluate(rules, snapshot, immutable, now)`` gives one ``Verdict`` per tag and per untagged
manifest of one repository, each naming the rule that decided it, and the set of manifests that
stay. The semantics (docs/lifecycle.md, "Retention policies"):

- Keep rules are OR'ed: a tag is kept if any keep rule keeps it. A policy with no keep rule for
  tags at all (only ``untagged_days``) keeps every tag.
- ``keep_last N``: the N most recently pushed tags (``tags.updated_at``, newest first, ties by
  name). ``keep_days D``: pushed within D days. ``keep_pulled_days D``: the tag's manifest was
  pulled within D days. ``keep_tags REGEX``: tags the regex matches *anywhere* (``re.search``;
  anchor it, ``^v\\d+$``, to match the whole tag); with ``keep_tags_invert`` every tag but those.
- A tag an immutable rule covers is always kept.
- Cosign-style tags ``sha256-<hex>.sig|.att|.sbom`` do not go through the keep rules (nor count
  for ``keep_last``): they follow the manifest ``sha256:<hex>``, kept iff it is kept.
- A manifest stays if a kept tag points at it, or it is a child of a kept index, or a referrer
  (signature, SBOM, attestation) whose subject is kept: nothing a kept image needs goes.
- An untagged manifest that is nobody's child or referrer is kept unless ``untagged_days D`` is
  set and it was pushed more than D days ago.

Removed manifests get an ``action``: ``delete`` (an untagged manifest the run deletes at once,
and what hangs only from it) or ``follow`` (it hangs from a manifest whose tags the run deletes:
it goes with it through the collector, and a ``dockyard tag restore`` brings it back with it).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Literal

from dockyard.policy.immutability import describe, matching_rule, repository_path
from dockyard.store.policies import ImmutableRule, RetentionPolicy, RetentionRules
from dockyard.store.retention import ManifestState, RepositorySnapshot, TagState

__all__ = ["Evaluation", "ManifestState", "RepositorySnapshot", "TagState", "Verdict", "evaluate",
           "governing_policy"]

# sha256-<hex>.sig / .att / .sbom: the tags cosign (and tools like it) put next to an image.
COSIGN_TAG = re.compile(r"^(sha256)-([0-9a-f]{64})\.(sig|att|sbom)$")
Action = Literal["keep", "delete", "follow"]


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: Literal["tag", "manifest"]
    tag: str | None  # None for an untagged manifest
    digest: str
    kept: bool
    reason: str  # "kept: ..." or "removed: ..."
    action: Action = "keep"


@dataclass(frozen=True, slots=True)
class Evaluation:
    verdicts: list[Verdict]  # tags first (by name), then untagged manifests (parents before what hangs from them)
    kept: frozenset[str] = field(default_factory=frozenset)  # every manifest digest that stays


def has_tag_rules(rules: RetentionRules) -> bool:
    return any(v is not None for v in (rules.keep_last, rules.keep_days, rules.keep_pulled_days, rules.keep_tags))


def governing_policy(policies: Iterable[RetentionPolicy], repository: str) -> RetentionPolicy | None:
    """The one policy that applies to ``repository``: of those whose glob matches the name after
    the project, the most specific: the most characters that are not wildcards, then the fewest
    ``*``, then the glob's text order. Policies never combine."""
    path = repository_path(repository)
    matching = [p for p in policies if fnmatchcase(path, p.rules.repository_glob)]
    if not matching:
        return None
    return min(matching, key=lambda p: (-_literal_length(p.rules.repository_glob), p.rules.repository_glob.count("*"),
                                        p.rules.repository_glob))


def _literal_length(glob: str) -> int:
    return len(re.sub(r"\[[^\]]*\]|[*?]", "", glob))


def cosign_subject(tag: str) -> str | None:
    """``sha256-<hex>.sig`` → ``sha256:<hex>``; None for any other tag."""
    found = COSIGN_TAG.match(tag)
    return None if found is None else f"{found.group(1)}:{found.group(2)}"


def evaluate(rules: RetentionRules, snapshot: RepositorySnapshot, immutable: Sequence[ImmutableRule],
             now: datetime) -> Evaluation:
    """Every tag's and untagged manifest's verdict under ``rules`` at ``now``."""
    return _Evaluator(rules, snapshot, immutable, now).run()


class _Evaluator:
    def __init__(self, rules: RetentionRules, snapshot: RepositorySnapshot, immutable: Sequence[ImmutableRule],
                 now: datetime) -> None:
        self.rules, self.snapshot, self.immutable, self.now = rules, snapshot, immutable, now
        self.manifests = {m.digest: m for m in snapshot.manifests}
        self.referrers: dict[str, list[str]] = {}
        self.parents: dict[str, list[str]] = {}
        for m in snapshot.manifests:
            if m.subject is not None and m.subject in self.manifests:
                self.referrers.setdefault(m.subject, []).append(m.digest)
            for child in m.children:
                self.parents.setdefault(child, []).append(m.digest)
        self.tagged = {t.digest for t in snapshot.tags}
        self.kept: dict[str, str] = {}  # digest -> why it stays
        self.tag_verdicts: dict[str, Verdict] = {}

    def run(self) -> Evaluation:
        followers = []
        for tag in sorted(self.snapshot.tags, key=lambda t: t.name):
            rule = matching_rule(self.immutable, self.snapshot.name, tag.name)
            if rule is not None:
                self._tag(tag, True, f"kept: {describe(rule)}")
            elif cosign_subject(tag.name) in self.manifests:
                followers.append(tag)
        self._plain_tags([t for t in self.snapshot.tags if t.name not in self.tag_verdicts
                          and t not in followers])
        manifest_verdicts = self._untagged_roots()
        self._follow_cosign_tags(followers)
        manifest_verdicts += self._going()
        tags = [self.tag_verdicts[name] for name in sorted(self.tag_verdicts)]
        return Evaluation(tags + manifest_verdicts, frozenset(self.kept))

    def _tag(self, tag: TagState, kept: bool, reason: str) -> None:
        self.tag_verdicts[tag.name] = Verdict("tag", tag.name, tag.digest, kept, reason,
                                              "keep" if kept else "delete")
        if kept:
            self._keep(tag.digest, f"tagged {tag.name}")

    def _plain_tags(self, tags: list[TagState]) -> None:
        r = self.rules
        if not has_tag_rules(r):
            for tag in tags:
                self._tag(tag, True, "kept: the policy has no keep rule for tags (only untagged_days)")
            return
        newest = sorted(tags, key=lambda t: (-t.pushed_at.timestamp(), t.name))
        rank = {t.name: i for i, t in enumerate(newest)}
        given = (("keep_last", r.keep_last), ("keep_days", r.keep_days), ("keep_pulled_days", r.keep_pulled_days),
                 ("keep_tags", r.keep_tags))
        rules_text = ", ".join(f"{k}='{v}'" if isinstance(v, str) else f"{k}={v}" for k, v in given if v is not None)
        for tag in tags:
            reason = self._keep_reason(tag, rank[tag.name])
            self._tag(tag, reason is not None, reason or f"removed: matches no keep rule ({rules_text})")

    def _keep_reason(self, tag: TagState, rank: int) -> str | None:
        r = self.rules
        if r.keep_last is not None and rank < r.keep_last:
            return f"kept: among the {r.keep_last} most recently pushed (keep_last={r.keep_last})"
        if r.keep_days is not None and tag.pushed_at >= self.now - timedelta(days=r.keep_days):
            return f"kept: pushed {self._ago(tag.pushed_at)} (keep_days={r.keep_days})"
        pulled = self.manifests[tag.digest].pulled_at if tag.digest in self.manifests else None
        if r.keep_pulled_days is not None and pulled is not None and pulled >= self.now - timedelta(
                days=r.keep_pulled_days):
            return f"kept: pulled {self._ago(pulled)} (keep_pulled_days={r.keep_pulled_days})"
        if r.keep_tags is not None:
            matches = re.search(r.keep_tags, tag.name) is not None
            if matches and not r.keep_tags_invert:
                return f"kept: matches keep_tags '{r.keep_tags}'"
            if not matches and r.keep_tags_invert:
                return f"kept: does not match '{r.keep_tags}' (keep_tags, inverted)"
        return None

    def _ago(self, when: datetime) -> str:
        days = (self.now - when).days
        return "today" if days < 1 else f"{days} day{'s' if days != 1 else ''} ago"

    def _untagged_roots(self) -> list[Verdict]:
        """Untagged manifests that are nobody's child or referrer: the untagged_days rule decides."""
        verdicts = []
        days = self.rules.untagged_days
        for m in sorted(self.snapshot.manifests, key=lambda m: m.digest):
            if m.digest in self.tagged or m.digest in self.parents or (m.subject in self.manifests):
                continue
            if m.digest in self.kept:
                continue
            if days is None:
                verdicts.append(Verdict("manifest", None, m.digest, True,
                                        "kept: untagged; the policy has no untagged_days rule"))
            elif m.pushed_at >= self.now - timedelta(days=days):
                verdicts.append(Verdict("manifest", None, m.digest, True,
                                        f"kept: untagged, pushed {self._ago(m.pushed_at)} (untagged_days={days})"))
            else:
                continue  # removed: decided with everything that goes (``_going``)
            self._keep(m.digest, "untagged")
        return verdicts

    def _follow_cosign_tags(self, followers: list[TagState]) -> None:
        undecided = list(followers)
        while undecided:  # a signature of a signature follows once its subject is decided
            progress = [t for t in undecided if cosign_subject(t.name) in self.kept]
            for tag in progress:
                self._tag(tag, True, f"kept: {_COSIGN_KIND[tag.name.rsplit('.', 1)[1]]} tag of kept "
                                     f"{cosign_subject(tag.name)}")
            undecided = [t for t in undecided if t not in progress]
            if not progress:
                break
        for tag in undecided:
            self._tag(tag, False, f"removed: {_COSIGN_KIND[tag.name.rsplit('.', 1)[1]]} tag of "
                                  f"{cosign_subject(tag.name)}, which goes")

    def _keep(self, root: str, why: str) -> None:
        """Keep ``root`` and everything that hangs from it (children, referrers), saying why."""
        queue = deque([(root, why)])
        while queue:
            digest, reason = queue.popleft()
            if digest in self.kept or digest not in self.manifests:
                continue
            self.kept[digest] = reason
            for child in self.manifests[digest].children:
                queue.append((child, f"kept: child of kept index {digest}"))
            for referrer in self.referrers.get(digest, ()):
                queue.append((referrer, f"kept: {self._referrer_kind(referrer)} of kept {digest}"))

    def _referrer_kind(self, digest: str) -> str:
        kind = (self.manifests[digest].artifact_type or "").lower()
        for words, name in ((("sig",), "signature"), (("sbom", "spdx", "cyclonedx"), "SBOM"),
                            (("attest", "in-toto", "intoto", "provenance"), "attestation")):
            if any(word in kind for word in words):
                return name
        return "referrer"

    def _going(self) -> list[Verdict]:
        """Verdicts for the untagged manifests that go, parents before what hangs from them, plus
        the kept untagged ones that hang from a kept manifest."""
        verdicts: list[Verdict] = []
        for m in sorted(self.snapshot.manifests, key=lambda m: m.digest):
            why = self.kept.get(m.digest)
            if why is not None and m.digest not in self.tagged and why.startswith("kept: "):
                verdicts.append(Verdict("manifest", None, m.digest, True, why))
        # Roots of what goes: manifests whose every tag goes ("follow"), untagged roots ("delete").
        queue: deque[tuple[str, Action, str]] = deque()
        for m in sorted(self.snapshot.manifests, key=lambda m: m.digest):
            if m.digest in self.kept:
                continue
            if m.digest in self.tagged:
                queue.append((m.digest, "follow", ""))
            elif m.digest not in self.parents and m.subject not in self.manifests:
                days = self.rules.untagged_days
                queue.append((m.digest, "delete", f"removed: untagged and pushed {self._ago(m.pushed_at)} "
                                                  f"(untagged_days={days})"))
        # "follow" roots first, so what hangs from a restorable manifest is never deleted outright.
        queue = deque(sorted(queue, key=lambda item: item[1] != "follow"))
        decided: set[str] = set()
        while queue:
            digest, action, reason = queue.popleft()
            if digest in decided or digest in self.kept:
                continue
            decided.add(digest)
            if reason:
                verdicts.append(Verdict("manifest", None, digest, False, reason, action))
            goes = "goes with its tags" if action == "follow" else "goes"
            for child in self.manifests[digest].children:
                if child in self.manifests and child not in self.tagged:
                    queue.append((child, action, f"removed: child of index {digest}, which {goes}"))
            for referrer in self.referrers.get(digest, ()):
                if referrer not in self.tagged:
                    queue.append((referrer, action,
                                  f"removed: {self._referrer_kind(referrer)} of {digest}, which {goes}"))
        return verdicts


_COSIGN_KIND = {"sig": "signature", "att": "attestation", "sbom": "SBOM"}
