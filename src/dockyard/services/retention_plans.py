"""Retention plans as data: what a run would delete per repository, why each item is kept or
removed, the bytes it frees, and the fingerprint of the state it was made from.

A plan is built from snapshots (``store.retention``) and the pure evaluator's verdicts
(``policy.retention``); it is saved as JSON in ``retention_plans`` and printed by the CLI.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from dockyard.policy.retention import Evaluation, RepositorySnapshot
from dockyard.store.policies import ImmutableRule, RetentionPolicy


@dataclass(frozen=True, slots=True)
class PlanItem:
    kind: str  # "tag" or "manifest" (an untagged manifest)
    tag: str | None
    digest: str
    kept: bool
    action: str  # "keep", "delete" (the run deletes it), "follow" (goes with what it hangs from, via GC)
    reason: str
    bytes: int = 0  # blob bytes its removal frees (each blob counted for the first item that frees it)


@dataclass(frozen=True, slots=True)
class RepositoryPlan:
    name: str
    policy: str  # the governing policy's repository glob
    items: list[PlanItem]

    @property
    def removed(self) -> list[PlanItem]:
        return [item for item in self.items if not item.kept]


@dataclass(frozen=True, slots=True)
class Plan:
    project: str
    created_at: datetime
    fingerprint: str
    repositories: list[RepositoryPlan]
    bytes_freed: int
    id: int | None = None
    applied_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def removed_count(self) -> int:
        return sum(len(r.removed) for r in self.repositories)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "project": self.project, "created_at": self.created_at.isoformat(),
            "applied_at": None if self.applied_at is None else self.applied_at.isoformat(),
            "fingerprint": self.fingerprint, "bytes_freed": self.bytes_freed,
            "removed": self.removed_count,
            "repositories": [{"name": r.name, "policy": r.policy, "items": [asdict(i) for i in r.items]}
                             for r in self.repositories],
        }

    @staticmethod
    def from_dict(data: dict[str, Any], *, plan_id: int, applied_at: datetime | None) -> Plan:
        repositories = [RepositoryPlan(r["name"], r["policy"], [PlanItem(**i) for i in r["items"]])
                        for r in data["repositories"]]
        return Plan(data["project"], datetime.fromisoformat(data["created_at"]), data["fingerprint"], repositories,
                    int(data["bytes_freed"]), plan_id, applied_at)


@dataclass(frozen=True, slots=True)
class Evaluated:
    """One repository's snapshot, its policy and the evaluator's answer."""

    repository_id: int
    snapshot: RepositorySnapshot
    policy: RetentionPolicy
    evaluation: Evaluation


def going_manifests(evaluated: Evaluated) -> set[str]:
    return {m.digest for m in evaluated.snapshot.manifests} - evaluated.evaluation.kept


def kept_blobs(evaluated: list[Evaluated]) -> set[str]:
    return {b for e in evaluated for m in e.snapshot.manifests if m.digest in e.evaluation.kept for b in m.blobs}


def candidate_blobs(evaluated: list[Evaluated]) -> set[str]:
    """Blobs referenced by a manifest that goes."""
    found: set[str] = set()
    for e in evaluated:
        going = going_manifests(e)
        found.update(b for m in e.snapshot.manifests if m.digest in going for b in m.blobs)
    return found


def build_plan(project: str, now: datetime, evaluated: list[Evaluated], immutable: list[ImmutableRule],
               freed: dict[str, int]) -> Plan:
    """The plan: per repository its items with bytes (``freed``: blob digest → size, for blobs
    that nothing kept still needs), the total, and the fingerprint."""
    attributed: set[str] = set()
    repositories = []
    for e in evaluated:
        manifests = {m.digest: m for m in e.snapshot.manifests}
        referrers: dict[str, list[str]] = {}
        for m in e.snapshot.manifests:
            if m.subject is not None:
                referrers.setdefault(m.subject, []).append(m.digest)
        going = going_manifests(e)
        items = []
        for v in e.evaluation.verdicts:
            size = 0
            if not v.kept and v.digest in going:
                for digest in _closure(v.digest, manifests, referrers, going):
                    for blob in manifests[digest].blobs:
                        if blob in freed and blob not in attributed:
                            attributed.add(blob)
                            size += freed[blob]
            items.append(PlanItem(v.kind, v.tag, v.digest, v.kept, v.action, v.reason, size))
        repositories.append(RepositoryPlan(e.snapshot.name, e.policy.rules.repository_glob, items))
    return Plan(project, now, fingerprint(evaluated, immutable), repositories, sum(freed.values()))


def _closure(root: str, manifests: dict[str, Any], referrers: dict[str, list[str]], going: set[str]) -> list[str]:
    """``root`` and what hangs from it (children, referrers) that goes too."""
    found: list[str] = []
    stack = [root]
    while stack:
        digest = stack.pop()
        if digest in found or digest not in going or digest not in manifests:
            continue
        found.append(digest)
        stack.extend(manifests[digest].children)
        stack.extend(referrers.get(digest, ()))
    return found


def fingerprint(evaluated: list[Evaluated], immutable: list[ImmutableRule]) -> str:
    """SHA-256 of what the plan was made from: each repository's tags (name, digest, when pushed),
    its manifests, the policy, the immutable rules, and every verdict. A pull that changes no
    verdict leaves it as it was; a push, a tag move or a verdict that time turned changes it."""
    state = {
        "immutable": sorted((r.id, r.repository_glob, r.tag_glob) for r in immutable),
        "repositories": [{
            "name": e.snapshot.name,
            "policy": asdict(e.policy.rules),
            "tags": [(t.name, t.digest, t.pushed_at.isoformat()) for t in e.snapshot.tags],
            "manifests": sorted(m.digest for m in e.snapshot.manifests),
            "verdicts": [(v.kind, v.tag, v.digest, v.kept, v.action) for v in e.evaluation.verdicts],
        } for e in evaluated],
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()
