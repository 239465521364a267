"""Retention end to end on the real app (SQLite and PostgreSQL): plan → apply → restore through
``/api/v1``, multi-platform images, signatures and SBOMs, stale plans, schedules, pull recording."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from dockyard.app import flush_pulls
from dockyard.store import policies
from dockyard.store.clock import aware, utcnow
from dockyard.store.policies import RetentionRules
from dockyard.store.schema import (
    deleted_tags,
    gc_candidates,
    job_runs,
    manifests,
    projects,
    repositories,
    retention_policies,
    tags,
)
from tests.integration.conftest import Registry, client_as
from tests.support.content import OCI_INDEX, Image, make_artifact, make_image, make_index, push_image, push_manifest

PROJECT = "team"
REPO = "team/api"
SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM = "application/spdx+json"


async def setup(registry: Registry, **rules: Any) -> None:
    assert (await registry.client.post("/api/v1/projects", json={"name": PROJECT})).status_code == 201
    await set_policy(registry, RetentionRules(**rules))


async def set_policy(registry: Registry, rules: RetentionRules) -> None:
    async with registry.parts.db.write() as conn:
        project_id = await conn.scalar(sa.select(projects.c.id).where(projects.c.name == PROJECT))
        await policies.put_retention_policy(conn, project_id, rules)


async def push(registry: Registry, tag: str | None, image: Image | None = None, repo: str = REPO) -> Image:
    image = image or make_image()
    await push_image(registry.client, repo, image, tag)
    return image


async def age(registry: Registry, days: float, *, tag: str | None = None, repo: str = REPO) -> None:
    """Make the repository's manifests and tags (or only ``tag``) look ``days`` old."""
    when = utcnow() - timedelta(days=days)
    async with registry.parts.db.write() as conn:
        repo_id = await conn.scalar(sa.select(repositories.c.id).where(repositories.c.name == repo))
        query = sa.update(tags).where(tags.c.repository_id == repo_id)
        if tag is not None:
            query = query.where(tags.c.name == tag)
        await conn.execute(query.values(updated_at=when))
        if tag is None:
            await conn.execute(sa.update(manifests).where(manifests.c.repository_id == repo_id)
                               .values(created_at=when))


async def plan(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post(f"/api/v1/projects/{PROJECT}/retention/plan")
    assert response.status_code == 201, response.text
    return response.json()


async def apply(client: httpx.AsyncClient, plan_id: int | None = None) -> httpx.Response:
    return await client.post(f"/api/v1/projects/{PROJECT}/retention/apply",
                             json={} if plan_id is None else {"plan": plan_id})


def items(found: dict[str, Any], repo: str = REPO) -> dict[str, dict[str, Any]]:
    """The plan's items of ``repo`` by tag (untagged manifests by "@digest")."""
    [repository] = [r for r in found["repositories"] if r["name"] == repo]
    return {item["tag"] or f"@{item['digest']}": item for item in repository["items"]}


async def status(registry: Registry, reference: str, repo: str = REPO) -> int:
    return (await registry.client.get(f"/v2/{repo}/manifests/{reference}",
                                      headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                                                         f"{OCI_INDEX}"})).status_code


async def test_multi_platform_index_keeps_its_children_and_apply_does_the_plan(registry: Registry) -> None:
    await setup(registry, keep_last=1, untagged_days=7)
    children = [await push(registry, None) for _ in range(2)]
    old = await push(registry, "old")
    await age(registry, 30)
    index = make_index(children)
    assert (await push_manifest(registry.client, REPO, "multi", index, OCI_INDEX)).status_code == 201
    found = await plan(registry.client)
    by_item = items(found)
    assert by_item["multi"]["kept"]
    assert "among the 1 most recently pushed" in by_item["multi"]["reason"]
    for child in children:
        assert by_item[f"@{child.digest}"]["kept"]
        assert by_item[f"@{child.digest}"]["reason"].startswith("kept: child of kept index sha256:")
    assert not by_item["old"]["kept"]
    assert by_item["old"]["action"] == "delete"
    assert found["removed"] == 1
    assert found["bytes_freed"] == sum(len(b) for b in old.blobs)

    applied = await apply(registry.client, found["id"])
    assert applied.status_code == 200, applied.text
    assert applied.json()["deleted_tags"] == 1
    assert applied.json()["skipped"] == []
    assert await status(registry, "old") == 404
    assert await status(registry, "multi") == 200
    for child in children:
        assert await status(registry, child.digest) == 200
    async with registry.parts.db.read() as conn:
        noted = (await conn.execute(sa.select(deleted_tags))).one()
        candidates = (await conn.execute(sa.select(gc_candidates))).all()
        runs = (await conn.execute(sa.select(job_runs).order_by(job_runs.c.id))).all()
    assert (noted.name, noted.digest) == ("old", old.digest)
    window = aware(noted.expires_at) - aware(noted.deleted_at)
    assert window == registry.config.retention.restore_window
    assert [(c.kind, c.digest, c.reason) for c in candidates] == [("manifest", old.digest, "retention")]
    assert [(r.job, r.dry_run, r.outcome, r.removed) for r in runs] == [
        ("retention", True, "ok", 1), ("retention", False, "ok", 1)]
    assert noted.run_id == runs[-1].id
    # The plan was carried out: applying it again is refused.
    again = await apply(registry.client, found["id"])
    assert again.status_code == 409
    assert "was applied at" in again.json()["errors"][0]["message"]


async def test_signatures_and_sboms_survive_with_their_subject_and_go_with_it(registry: Registry) -> None:
    await setup(registry, keep_last=1)
    kept, dropped = make_image(), make_image()
    await push(registry, "old", dropped)
    await age(registry, 10)
    await push(registry, "new", kept)
    signature, sbom = make_artifact(kept, SIG), make_artifact(dropped, SBOM)
    await push(registry, None, signature)
    await push(registry, None, sbom)
    kept_sig, dropped_sig = make_artifact(kept, SIG), make_artifact(dropped, SIG)
    kept_tag, dropped_tag = f"sha256-{kept.digest[7:]}.sig", f"sha256-{dropped.digest[7:]}.sig"
    await push(registry, kept_tag, kept_sig)
    await push(registry, dropped_tag, dropped_sig)

    by_item = items(await plan(registry.client))
    assert by_item[f"@{signature.digest}"]["reason"] == f"kept: signature of kept {kept.digest}"
    assert by_item[kept_tag]["reason"] == f"kept: signature tag of kept {kept.digest}"
    assert by_item[f"@{sbom.digest}"]["reason"] == f"removed: SBOM of {dropped.digest}, which goes with its tags"
    assert by_item[f"@{sbom.digest}"]["action"] == "follow"  # restorable with its subject: not deleted outright
    assert by_item[dropped_tag]["reason"] == f"removed: signature tag of {dropped.digest}, which goes"
    assert not by_item["old"]["kept"]

    assert (await apply(registry.client)).status_code == 200
    assert await status(registry, "new") == 200
    assert await status(registry, kept_tag) == 200
    assert await status(registry, "old") == 404
    assert await status(registry, dropped_tag) == 404
    referrers = (await registry.client.get(f"/v2/{REPO}/referrers/{dropped.digest}")).json()["manifests"]
    assert {r["digest"] for r in referrers} == {sbom.digest, dropped_sig.digest}  # GC takes them later

    # Restoring the image's tags brings it back whole, its SBOM and signature with it.
    for name, image in (("old", dropped), (dropped_tag, dropped_sig)):
        restored = await registry.client.post(f"/api/v1/repositories/{REPO}/tags/{name}/restore")
        assert restored.status_code == 200, restored.text
        assert restored.json() == {"repository": REPO, "tag": name, "digest": image.digest}
    pulled = await registry.client.get(f"/v2/{REPO}/manifests/old")
    assert pulled.status_code == 200
    assert pulled.headers["docker-content-digest"] == dropped.digest
    for blob in dropped.blobs:
        from tests.support.content import sha256
        assert (await registry.client.get(f"/v2/{REPO}/blobs/{sha256(blob)}")).content == blob


async def test_restore_refuses_clearly(registry: Registry) -> None:
    await setup(registry, keep_last=1)
    first = await push(registry, "v1")
    await age(registry, 5)
    await push(registry, "v2")
    assert (await apply(registry.client)).status_code == 200  # no plan saved: plans and applies at once
    restore = f"/api/v1/repositories/{REPO}/tags/v1/restore"
    never = await registry.client.post(f"/api/v1/repositories/{REPO}/tags/v2/restore")
    assert never.status_code == 404
    assert "was not deleted by a retention run" in never.json()["errors"][0]["message"]
    # The tag exists again (pushed anew): restoring would overwrite it.
    await push(registry, "v1")
    exists = await registry.client.post(restore)
    assert exists.status_code == 409
    assert exists.json()["errors"][0]["code"] == "CONFLICT"
    assert (await registry.client.delete(f"/v2/{REPO}/manifests/v1")).status_code == 202
    # The window passed.
    async with registry.parts.db.write() as conn:
        await conn.execute(sa.update(deleted_tags).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = await registry.client.post(restore)
    assert expired.status_code == 404
    assert "restore window (retention.restore_window) ended" in expired.json()["errors"][0]["message"]
    async with registry.parts.db.write() as conn:
        await conn.execute(sa.update(deleted_tags).values(expires_at=utcnow() + timedelta(days=1)))
    restored = await registry.client.post(restore)
    assert restored.status_code == 200
    assert restored.json()["digest"] == first.digest
    events = (await registry.client.get("/api/v1/audit", params={"action": "tag.*"})).json()["events"]
    assert [(e["action"], e["tag"]) for e in events][:1] == [("tag.restored", "v1")]
    retired = [e for e in events if e["detail"] and e["detail"].get("by") == "retention"]
    assert [(e["action"], e["tag"], e["digest"]) for e in retired] == [("tag.deleted", "v1", first.digest)]


async def test_apply_refuses_a_stale_plan(registry: Registry) -> None:
    await setup(registry, keep_last=1)
    await push(registry, "a")
    await age(registry, 3)
    await push(registry, "b")
    for change in ("push", "move"):
        stale = await plan(registry.client)
        if change == "push":
            await push(registry, "c")
        else:
            await push(registry, "a")  # the tag now points at another image
        refused = await apply(registry.client, stale["id"])
        assert refused.status_code == 409
        assert refused.json()["errors"][0]["message"] == (
            f"the repository changed since plan {stale['id']} was made; run `dockyard retention plan team` again")
    assert await status(registry, "a") == 200
    assert await status(registry, "b") == 200
    fresh = await plan(registry.client)
    assert (await apply(registry.client, fresh["id"])).status_code == 200
    # "a" moved last, so it is the most recently pushed now.
    assert [await status(registry, t) for t in ("a", "b", "c")] == [200, 404, 404]


async def test_untagged_manifests_are_deleted_and_their_blobs_become_candidates(registry: Registry) -> None:
    await setup(registry, untagged_days=7)
    loose, fresh, tagged = make_image(), make_image(), make_image()
    await push(registry, None, loose)
    signature = await push(registry, None, make_artifact(loose, SIG))
    await push(registry, "v1", tagged)
    await age(registry, 30)
    await push(registry, None, fresh)
    found = await plan(registry.client)
    by_item = items(found)
    assert by_item[f"@{loose.digest}"]["reason"] == "removed: untagged and pushed 30 days ago (untagged_days=7)"
    assert by_item[f"@{signature.digest}"]["reason"] == f"removed: signature of {loose.digest}, which goes"
    assert by_item[f"@{signature.digest}"]["action"] == "delete"
    assert by_item[f"@{fresh.digest}"]["kept"]
    assert by_item["v1"]["kept"]
    assert found["bytes_freed"] == sum(len(b) for b in {*loose.blobs, *signature.blobs})
    applied = (await apply(registry.client, found["id"])).json()
    assert applied["deleted_manifests"] == 2
    assert await status(registry, loose.digest) == 404
    assert await status(registry, signature.digest) == 404
    assert await status(registry, fresh.digest) == 200
    async with registry.parts.db.read() as conn:
        candidates = (await conn.execute(sa.select(gc_candidates.c.kind, gc_candidates.c.digest))).all()
    from tests.support.content import sha256
    assert sorted(candidates) == sorted(("link", sha256(b)) for image in (loose, signature) for b in image.blobs)


async def test_bytes_shared_with_a_kept_image_or_another_project_are_not_counted(registry: Registry) -> None:
    await setup(registry, keep_last=1)
    assert (await registry.client.post("/api/v1/projects", json={"name": "other"})).status_code == 201
    old = make_image(layers=3)
    await push(registry, "old", old)
    await push(registry, "elsewhere", old, repo="other/copy")  # the same blobs in another project
    await age(registry, 5)
    await push(registry, "new")
    assert (await plan(registry.client))["bytes_freed"] == 0


async def test_a_scheduled_run_happens_when_due(registry: Registry) -> None:
    await setup(registry, keep_last=1, schedule="0 3 * * *")
    await push(registry, "a")
    await age(registry, 3)
    await push(registry, "b")
    service = registry.parts.retention
    async with registry.parts.db.write() as conn:
        start = utcnow().replace(hour=2, minute=0, second=0, microsecond=0) - timedelta(days=1)
        await conn.execute(sa.update(retention_policies).values(created_at=start))
    assert await service.run_due(now=start + timedelta(minutes=59)) == []  # 02:59: not yet
    assert await status(registry, "a") == 200
    done = await service.run_due(now=start + timedelta(hours=1, seconds=1))  # 03:00:01: due
    assert [a.deleted_tags for a in done] == [1]
    assert await status(registry, "a") == 404
    async with registry.parts.db.read() as conn:
        last_run = await conn.scalar(sa.select(retention_policies.c.last_run_at))
        runs = (await conn.execute(sa.select(job_runs.c.job, job_runs.c.dry_run, job_runs.c.removed))).all()
    assert aware(last_run) == start + timedelta(hours=1, seconds=1)
    assert runs == [("retention", False, 1)]
    assert await service.run_due(now=start + timedelta(hours=2)) == []  # next: 03:00 the day after
    assert len(await service.run_due(now=start + timedelta(days=1, hours=1, minutes=1))) == 1


async def test_pulls_set_last_pulled_at_through_flush_pulls(registry: Registry) -> None:
    await setup(registry, keep_pulled_days=7)
    hot, cold = await push(registry, "hot"), await push(registry, "cold")
    await age(registry, 30)
    assert await status(registry, "hot") == 200
    async with registry.parts.db.read() as conn:
        before = await conn.scalar(sa.select(manifests.c.last_pulled_at).where(manifests.c.digest == hot.digest))
    assert before is None  # never a write on the GET itself
    await flush_pulls(registry.parts)
    async with registry.parts.db.read() as conn:
        pulled = dict((await conn.execute(sa.select(manifests.c.digest, manifests.c.last_pulled_at))).all())
    assert pulled[hot.digest] is not None
    assert pulled[cold.digest] is None
    first = aware(pulled[hot.digest])
    assert utcnow() - timedelta(minutes=5) < first <= utcnow()
    # Pulled again within the hour: the stored time stays (no write).
    assert await status(registry, "hot") == 200
    await flush_pulls(registry.parts)
    async with registry.parts.db.read() as conn:
        again = await conn.scalar(sa.select(manifests.c.last_pulled_at).where(manifests.c.digest == hot.digest))
    assert aware(again) == first
    by_item = items(await plan(registry.client))
    assert by_item["hot"]["reason"] == "kept: pulled today (keep_pulled_days=7)"
    assert not by_item["cold"]["kept"]


async def test_only_maintainers_run_retention_and_others_see_no_project(registry: Registry) -> None:
    await setup(registry, keep_last=1)
    api = registry.client
    for name, role in (("dev", "developer"), ("maint", "maintainer")):
        assert (await api.post("/api/v1/users", json={"name": name, "password": f"{name}-password"})).status_code == 201
        assert (await api.put(f"/api/v1/projects/{PROJECT}/members/{name}", json={"role": role})).status_code == 200
    assert (await api.post("/api/v1/users", json={"name": "stranger", "password": "stranger-password"})
            ).status_code == 201
    async with client_as(registry, ("dev", "dev-password")) as dev:
        refused = await dev.post(f"/api/v1/projects/{PROJECT}/retention/plan")
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["code"] == "DENIED"
    async with client_as(registry, ("stranger", "stranger-password")) as stranger:
        for path in (f"/api/v1/projects/{PROJECT}/retention/plan", f"/api/v1/projects/{PROJECT}/retention/apply",
                     f"/api/v1/repositories/{REPO}/tags/x/restore"):
            assert (await stranger.post(path, json={})).status_code == 404, path
    async with client_as(registry, ("maint", "maint-password")) as maint:
        assert (await maint.post(f"/api/v1/projects/{PROJECT}/retention/plan")).status_code == 201
        bad = await maint.post(f"/api/v1/projects/{PROJECT}/retention/apply", json={"plan": "one"})
        assert bad.status_code == 400
        missing = await maint.post(f"/api/v1/projects/{PROJECT}/retention/apply", json={"plan": 999})
        assert missing.status_code == 404


async def test_old_plans_are_forgotten(registry: Registry) -> None:
    from dockyard.store import retention as retention_rows

    await setup(registry, keep_last=1)
    await push(registry, "a")
    made = [(await plan(registry.client))["id"] for _ in range(3)]
    async with registry.parts.db.write() as conn:
        project_id = await conn.scalar(sa.select(projects.c.id).where(projects.c.name == PROJECT))
        await retention_rows.prune_plans(conn, project_id, 2)
    forgotten = await apply(registry.client, made[0])
    assert forgotten.status_code == 404
    assert f"has no retention plan {made[0]}" in forgotten.json()["errors"][0]["message"]
    assert (await apply(registry.client, made[2])).status_code == 200


async def test_apply_rechecks_each_item_and_never_deletes_an_immutable_tag(registry: Registry) -> None:
    from dockyard.jobs.runs import RunTally
    from dockyard.services.retention_plans import Plan
    from dockyard.store import retention as retention_rows

    await setup(registry, keep_last=1)
    for tag in ("old-1", "old-2", "old-3", "old-4"):
        await push(registry, tag)
    await age(registry, 10)
    await push(registry, "new")
    async with registry.parts.db.write() as conn:
        project_id = await conn.scalar(sa.select(projects.c.id).where(projects.c.name == PROJECT))
        await policies.add_immutable_rule(conn, project_id, "*", "old-1", "admin")
    found = await plan(registry.client)
    assert items(found)["old-1"]["reason"] == "kept: immutable rule #1 (repository '*', tag 'old-1')"
    # A rule added after the plan changes its fingerprint: apply refuses.
    async with registry.parts.db.write() as conn:
        await policies.add_immutable_rule(conn, project_id, "*", "old-2", "admin")
    assert (await apply(registry.client, found["id"])).status_code == 409
    # And should the state change between that check and an item's turn (a race), the item's own
    # transaction sees it: a moved tag and a tag made immutable are skipped, not deleted.
    found = await plan(registry.client)
    async with registry.parts.db.write() as conn:
        await policies.add_immutable_rule(conn, project_id, "*", "old-3", "admin")
        saved = await retention_rows.find_plan(conn, project_id, found["id"])
    assert saved is not None
    await push(registry, "old-4")  # moved to another image
    removed = [i["tag"] for i in items(found).values() if not i["kept"]]
    assert removed == ["old-3", "old-4"]
    applied = await registry.parts.retention._carry_out(
        project_id, Plan.from_dict(saved.plan, plan_id=saved.id, applied_at=None), RunTally(), None)
    assert applied.deleted_tags == 0
    assert [(s["tag"], s["why"]) for s in applied.skipped] == [
        ("old-3", "the tag is immutable (immutable rule #3 (repository '*', tag 'old-3'))"),
        ("old-4", "the tag moved or was deleted since the plan was made")]
    assert await status(registry, "old-3") == 200
    assert await status(registry, "old-4") == 200
