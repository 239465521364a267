"""Retention runs: plan → diff → apply, scheduled runs, and restoring what a run deleted.

``plan`` reads every repository of the project in one transaction, asks the pure evaluator
(``policy.retention``) for its verdicts, estimates the bytes freed and saves the plan with the
fingerprint of the state it was made from. ``apply`` makes the plan again: if the fingerprint
differs, the repository changed and it refuses (409); otherwise it deletes exactly the planned
tags and untagged manifests, one short transaction each, re-checking each item inside it. A
deleted tag is remembered in ``deleted_tags`` for ``retention.restore_window`` (the collector keeps
its manifest that long) and ``restore`` brings it back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from dockyard import events
from dockyard.auth.principals import Principal
from dockyard.config import RetentionConfig
from dockyard.errors import Denied, RequestInvalid, ResourceExists, ResourceUnknown
from dockyard.oci.names import is_valid_tag, validate_name
from dockyard.policy.immutability import describe, matching_rule
from dockyard.policy.retention import evaluate, governing_policy
from dockyard.services.access import AccessService
from dockyard.services.projects import visible_project
from dockyard.services.retention_plans import Evaluated, Plan, build_plan, candidate_blobs, kept_blobs
from dockyard.store import accounts, policies, repositories
from dockyard.store import gc as gc_rows
from dockyard.store import manifests as manifest_rows
from dockyard.store import retention as rows
from dockyard.store import tags as tag_rows
from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import aware, utcnow
from dockyard.store.db import Database

log = logging.getLogger("dockyard.retention")
REASON = "retention"
KEEP_PLANS = 50  # the newest plans kept per project; older ones are forgotten (and cannot be applied)


class Tally(Protocol):
    """What a job run records (``jobs.runs.RunTally``)."""

    run_id: int | None
    examined: int
    removed: int
    bytes_freed: int
    detail: dict[str, Any]


# recorded_run(job, dry_run): the composition root passes ``jobs.runs.recorded_run`` bound to the database.
Recorder = Callable[[str, bool], AbstractAsyncContextManager[Tally]]


@dataclass(slots=True)
class Applied:
    plan: Plan
    deleted_tags: int = 0
    deleted_manifests: int = 0
    skipped: list[dict[str, str | None]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan.id, "project": self.plan.project, "deleted_tags": self.deleted_tags,
                "deleted_manifests": self.deleted_manifests, "bytes_freed": self.plan.bytes_freed,
                "skipped": self.skipped}


class RetentionService:
    def __init__(self, db: Database, config: RetentionConfig, access: AccessService, record: Recorder) -> None:
        self.db = db
        self.config = config
        self.access = access
        self.record = record

    # -- by hand (CLI and API) -----------------------------------------------------------------

    async def plan(self, actor: Principal, project: str) -> Plan:
        """Make and save the project's plan (changes nothing else)."""
        found = await self._project(actor, project)
        async with self.record("retention", True) as tally:
            plan = await self._make_plan(found.id, found.name, utcnow())
            tally.examined = sum(len(r.items) for r in plan.repositories)
            tally.removed = plan.removed_count
            tally.bytes_freed = plan.bytes_freed
            tally.detail = {"project": found.name, "plan": plan.id}
        return plan

    async def apply(self, actor: Principal, project: str, plan_id: int | None = None,
                    progress: Callable[[int], None] | None = None) -> Applied:
        """Carry out plan ``plan_id`` (default: the project's latest); with no plan saved at all,
        plan and apply in one go. ``progress`` hears of each item done (the CLI's progress bar)."""
        found = await self._project(actor, project)
        async with self.db.read() as conn:
            saved = await rows.find_plan(conn, found.id, plan_id)
        if saved is None and plan_id is not None:
            raise ResourceUnknown(f"project {found.name!r} has no retention plan {plan_id}",
                                  detail={"plan": plan_id})
        if saved is not None and saved.applied_at is not None:
            raise ResourceExists(f"plan {saved.id} was applied at {saved.applied_at:%Y-%m-%d %H:%M:%S} UTC; run "
                                 f"`dockyard retention plan {found.name}` for a new one")
        if saved is None:
            async with self.record("retention", False) as tally:
                plan = await self._make_plan(found.id, found.name, utcnow())
                return await self._carry_out(found.id, plan, tally, None, progress)
        async with self.record("retention", False) as tally:
            now = utcnow()
            current = await self._make_plan(found.id, found.name, now, save=False)
            if current.fingerprint != saved.fingerprint:
                raise ResourceExists(f"the repository changed since plan {saved.id} was made; run "
                                     f"`dockyard retention plan {found.name}` again",
                                     detail={"plan": saved.id})
            plan = Plan.from_dict(saved.plan, plan_id=saved.id, applied_at=None)
            return await self._carry_out(found.id, plan, tally, None, progress)

    async def restore(self, actor: Principal, repository: str, tag: str) -> dict[str, Any]:
        """Bring back a tag a retention run deleted, pointing at the same digest."""
        validate_name(repository)
        await self._project(actor, repository.split("/", 1)[0])
        if not is_valid_tag(tag):
            raise RequestInvalid(f"{tag[:200]!r} is not a valid tag ([a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}})")
        now = utcnow()
        async with self.db.write() as conn:
            repo_id = await _repository_id(conn, repository)
            deleted = None if repo_id is None else await rows.deleted_tag(conn, repo_id, tag)
            if repo_id is None or deleted is None:
                raise ResourceUnknown(f"{repository}:{tag} was not deleted by a retention run, so there is "
                                      "nothing to restore", detail={"repository": repository, "tag": tag})
            if await tag_rows.target(conn, repo_id, tag) is not None:
                raise ResourceExists(f"{repository}:{tag} exists now; delete it first to restore the old one")
            if deleted.expires_at <= now:
                raise ResourceUnknown(f"{repository}:{tag} was deleted at {deleted.deleted_at:%Y-%m-%d %H:%M} UTC; "
                                      f"its restore window (retention.restore_window) ended at "
                                      f"{deleted.expires_at:%Y-%m-%d %H:%M} UTC", detail={"tag": tag})
            manifest_id = await manifest_rows.find_id(conn, repo_id, deleted.digest, share=True)
            if manifest_id is None:
                raise ResourceUnknown(f"{repository}:{tag} cannot be restored: its manifest {deleted.digest} "
                                      "is gone", detail={"digest": deleted.digest})
            if await tag_rows.claim(conn, repo_id, tag, manifest_id) != manifest_id:  # pushed meanwhile
                raise ResourceExists(f"{repository}:{tag} exists now; delete it first to restore the old one")
            await rows.forget_deleted_tag(conn, deleted.id)
            await events.record(conn, events.TagRestored(repository, tag, deleted.digest))
        return {"repository": repository, "tag": tag, "digest": deleted.digest}

    # -- scheduled -----------------------------------------------------------------------------

    async def run_due(self, now: datetime | None = None) -> list[Applied]:
        """Plan and apply, in one go, each policy whose cron schedule is due (UTC) since its last run."""
        from croniter import croniter  # loaded only where schedules are read

        now = now or utcnow()
        async with self.db.read() as conn:
            due = [p for p in await policies.all_retention_policies(conn) if p.rules.schedule is not None
                   and croniter(p.rules.schedule, aware(p.last_run_at or p.created_at)).get_next(datetime) <= now]
        done = []
        for policy in due:
            async with self.db.read() as conn:
                project = await rows.project_name(conn, policy.project_id)
            if project is None:
                continue
            token = events.CURRENT_ACTOR.set(events.Actor("dockyard", "retention schedule"))
            try:
                async with self.record("retention", False) as tally:
                    plan = await self._make_plan(policy.project_id, project, now, only=policy.id)
                    done.append(await self._carry_out(policy.project_id, plan, tally, policy.id))
            finally:
                events.CURRENT_ACTOR.reset(token)
            async with self.db.write() as conn:
                await policies.mark_retention_run(conn, policy.id, now)
        return done

    # -- the steps -----------------------------------------------------------------------------

    async def _make_plan(self, project_id: int, project: str, now: datetime, *, save: bool = True,
                         only: int | None = None) -> Plan:
        async with self.db.read() as conn:  # one snapshot of the whole project
            found = await policies.retention_policies_of(conn, project_id)
            immutable = await policies.immutable_rules_of(conn, project_id)
            evaluated = []
            for repo_id, name in await rows.project_repositories(conn, project):
                policy = governing_policy(found, name)
                if policy is None or (only is not None and policy.id != only):
                    continue
                snapshot = await rows.snapshot(conn, repo_id, name)
                evaluated.append(Evaluated(repo_id, snapshot, policy, evaluate(policy.rules, snapshot, immutable,
                                                                                now)))
            candidates = candidate_blobs(evaluated) - kept_blobs(evaluated)
            held = await rows.held_outside(conn, candidates, [e.repository_id for e in evaluated])
            freed = await rows.blob_sizes(conn, candidates - held)
        plan = build_plan(project, now, evaluated, immutable, freed)
        if not save:
            return plan
        async with self.db.write() as conn:
            plan_id = await rows.save_plan(conn, project_id, plan.fingerprint, plan.to_dict(), now)
            await rows.prune_plans(conn, project_id, KEEP_PLANS)
        return Plan(plan.project, plan.created_at, plan.fingerprint, plan.repositories, plan.bytes_freed, plan_id)

    async def _carry_out(self, project_id: int, plan: Plan, tally: Tally, policy_id: int | None,
                         progress: Callable[[int], None] | None = None) -> Applied:
        assert plan.id is not None
        async with self.db.write() as conn:
            if not await rows.mark_applied(conn, plan.id):
                raise ResourceExists(f"plan {plan.id} was applied already (by another run)")
        applied = Applied(plan)
        now = utcnow()
        for repository in plan.repositories:
            for item in repository.removed:
                if item.action != "delete":
                    continue  # "follow": goes with what it hangs from, through the collector
                async with self.db.write() as conn:
                    repo_id = await _repository_id(conn, repository.name)
                    why = "the repository is gone" if repo_id is None else (
                        await self._delete_tag(conn, project_id, repo_id, repository.name, item.tag, item.digest,
                                               plan.id, now, tally.run_id)
                        if item.tag is not None else
                        await self._delete_manifest(conn, repo_id, repository.name, item.digest, plan.id, now))
                if progress is not None:
                    progress(1)
                if why is not None:
                    applied.skipped.append({"repository": repository.name, "tag": item.tag, "digest": item.digest,
                                            "why": why})
                elif item.tag is not None:
                    applied.deleted_tags += 1
                else:
                    applied.deleted_manifests += 1
        tally.examined = sum(len(r.items) for r in plan.repositories)
        tally.removed = applied.deleted_tags + applied.deleted_manifests
        tally.bytes_freed = plan.bytes_freed
        tally.detail = {"project": plan.project, "plan": plan.id, "policy": policy_id,
                        "skipped": applied.skipped[:20]}
        log.info("retention plan %s of %s: deleted %d tag(s), %d manifest(s), skipped %d", plan.id, plan.project,
                 applied.deleted_tags, applied.deleted_manifests, len(applied.skipped))
        return applied

    async def _delete_tag(self, conn: AsyncConnection, project_id: int, repo_id: int, repository: str, tag: str,
                          digest: str, plan_id: int, now: datetime, run_id: int | None) -> str | None:
        """Delete the tag if it still points at ``digest`` and is not immutable; else why not."""
        target = await tag_rows.target(conn, repo_id, tag, lock=True)
        if target is None or target[1] != digest:
            return "the tag moved or was deleted since the plan was made"
        rule = matching_rule(await policies.immutable_rules_of(conn, project_id), repository, tag)
        if rule is not None:
            return f"the tag is immutable ({describe(rule)})"
        await tag_rows.delete(conn, repo_id, tag)
        await rows.remember_deleted_tag(conn, repo_id, tag, digest, now, now + self.config.restore_window, run_id)
        await gc_rows.add_candidates(conn, [gc_rows.Candidate(gc_rows.MANIFEST, repo_id, digest)],
                                     reason=REASON, due_at=now)
        await events.record(conn, events.TagRetired(repository, tag, digest, plan_id))
        return None

    @staticmethod
    async def _delete_manifest(conn: AsyncConnection, repo_id: int, repository: str, digest: str, plan_id: int,
                               now: datetime) -> str | None:
        """Delete the untagged manifest like a DELETE by digest; its blobs' links become candidates."""
        found = await rows.untagged_manifest(conn, repo_id, digest)
        if found is None:
            return "the manifest is gone, tagged, or listed by an index since the plan was made"
        _, blob_digests, children = found
        await manifest_rows.delete(conn, repo_id, digest)
        left = [gc_rows.Candidate(gc_rows.LINK, repo_id, d) for d in blob_digests]
        left += [gc_rows.Candidate(gc_rows.MANIFEST, repo_id, d) for d in children]
        await gc_rows.add_candidates(conn, left, reason=REASON, due_at=now)
        await events.record(conn, events.ManifestRetired(repository, digest, plan_id))
        return None

    async def _project(self, actor: Principal, name: str) -> accounts.Project:
        """The project, if the actor may see it (else NOT_FOUND, as if it did not exist); running
        retention needs the maintainer role or above (manage_policies)."""
        project, held = await visible_project(self.db, self.access, actor, name)
        if "manage_policies" not in held:
            raise Denied(f"retention in project {name!r} needs the maintainer role or above")
        return project


async def _repository_id(conn: AsyncConnection, name: str) -> int | None:
    return await repositories.find_id(conn, name)
