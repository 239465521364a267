"""Storage usage: the reports (``GET /api/v1/projects/{project}/usage``, ``dockyard usage``) equal a
recount from scratch after a random (seeded, bounded) sequence of pushes, mounts and deletes.

The recount is independent of the production query, twice over: the test keeps its own model of
what each repository links and holds (updated by the operations it performs, blob sizes read from
the manifests' JSON descriptors it pushed) and computes every figure from that in Python; and
``tests/support/usage_recount.py`` recounts from the raw rows (walking the stored manifests' JSON)
in Python too.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dockyard.cli import main
from tests.integration.conftest import Registry, client_as
from tests.support.content import Image, descriptor, dumps, push_blob, push_manifest, random_bytes, sha256
from tests.support.usage_recount import recount

PROJECTS = ("team-a", "team-b")
REPOSITORIES = ("team-a/api", "team-a/web", "team-b/app")


@dataclass
class Model:
    """What each repository links and holds, as the test's own operations left it."""

    links: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    manifests: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    sizes: dict[str, int] = field(default_factory=dict)
    def learn_sizes(self, manifest: bytes) -> None:
        """Blob sizes, from the manifest's JSON descriptors."""
        document = json.loads(manifest)
        for item in [document["config"], *document["layers"]]:
            self.sizes[item["digest"]] = item["size"]

    def linking(self, digest: str) -> list[str]:
        return [repo for repo, digests in self.links.items() if digest in digests]

    def project_view(self, project: str, quota: int | None) -> dict[str, Any]:
        repos = sorted(r for r in self.created if r.split("/")[0] == project)
        digests = set().union(*(self.links[r] for r in repos)) if repos else set()
        manifest_bytes = sum(sum(self.manifests[r].values()) for r in repos)
        shared = sum(self.sizes[d] for d in digests if any(r.split("/")[0] != project for r in self.linking(d)))
        own = sum(self.sizes[d] for d in digests) - shared + manifest_bytes
        rows = []
        for repo in repos:
            repo_manifests = sum(self.manifests[repo].values())
            repo_shared = sum(self.sizes[d] for d in self.links[repo] if len(self.linking(d)) > 1)
            repo_own = sum(self.sizes[d] for d in self.links[repo] if len(self.linking(d)) == 1) + repo_manifests
            rows.append({"name": repo, "used_bytes": repo_own + repo_shared, "exclusive_bytes": repo_own,
                         "shared_bytes": repo_shared, "manifest_bytes": repo_manifests})
        return {"project": project, "quota_bytes": quota, "used_bytes": own + shared, "exclusive_bytes": own,
                "shared_bytes": shared, "manifest_bytes": manifest_bytes, "repositories": rows}

    created: set[str] = field(default_factory=set)  # repositories that exist (a row), even empty


def make_image_from(pool: list[bytes], rng: random.Random) -> Image:
    config = dumps({"architecture": "amd64", "os": "linux", "nonce": rng.getrandbits(64),
                    "rootfs": {"type": "layers", "diff_ids": []}})
    layers = tuple(rng.sample(pool, rng.randint(1, 3)))
    document = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": descriptor("application/vnd.oci.image.config.v1+json", config),
                "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", b) for b in layers]}
    return Image(config, layers, dumps(document), "application/vnd.oci.image.manifest.v1+json")


async def report(registry: Registry, project: str) -> dict[str, Any]:
    response = await registry.client.get(f"/api/v1/projects/{project}/usage")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def run_random_sequence(registry: Registry, rng: random.Random, steps: int) -> Model:
    """Pushes, tag moves, mounts, and tag / manifest / blob deletes, chosen by ``rng``."""
    client = registry.client
    model = Model()
    pool = [random_bytes(rng.randint(100, 3000)) for _ in range(6)]
    pushed: dict[str, list[tuple[str, Image]]] = defaultdict(list)  # repo -> (tag, image)
    for step in range(steps):
        action = rng.choice(["push", "push", "push", "mount", "delete_tag", "delete_manifest", "delete_blob",
                             "retag"])
        repo = rng.choice(REPOSITORIES)
        if action == "push" or (not pushed[repo] and action != "mount"):
            image = make_image_from(pool, rng)
            tag = f"t{step}"
            for blob in image.blobs:
                await push_blob(client, repo, blob)
            assert (await push_manifest(client, repo, tag, image.manifest)).status_code == 201
            model.learn_sizes(image.manifest)
            model.links[repo].update(sha256(b) for b in image.blobs)
            model.manifests[repo][image.digest] = len(image.manifest)
            model.created.add(repo)
            pushed[repo].append((tag, image))
        elif action == "mount":
            source = rng.choice([r for r in REPOSITORIES if r != repo])
            if not model.links[source]:
                continue
            digest = rng.choice(sorted(model.links[source]))
            response = await client.post(f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source}")
            assert response.status_code == 201, response.text
            model.links[repo].add(digest)
            model.created.add(repo)
        elif action == "retag":
            tag, image = rng.choice(pushed[repo])
            if not {sha256(b) for b in image.blobs} <= model.links[repo]:
                continue  # a blob of it was deleted: the registry refuses the manifest (MANIFEST_BLOB_UNKNOWN)
            assert (await push_manifest(client, repo, f"{tag}-again", image.manifest)).status_code == 201
            model.manifests[repo][image.digest] = len(image.manifest)  # back, if it was deleted
        elif action == "delete_tag":
            tag, image = rng.choice(pushed[repo])
            response = await client.delete(f"/v2/{repo}/manifests/{tag}")
            assert response.status_code in (202, 404), response.text
        elif action == "delete_manifest":
            _, image = rng.choice(pushed[repo])
            response = await client.delete(f"/v2/{repo}/manifests/{image.digest}")
            assert response.status_code in (202, 404), response.text
            model.manifests[repo].pop(image.digest, None)
        elif action == "delete_blob":
            if not model.links[repo]:
                continue
            digest = rng.choice(sorted(model.links[repo]))
            assert (await client.delete(f"/v2/{repo}/blobs/{digest}")).status_code == 202
            model.links[repo].discard(digest)
    return model


@pytest.mark.parametrize("seed", [12, 1207])
async def test_usage_equals_a_recount_after_random_operations(registry: Registry, seed: int) -> None:
    rng = random.Random(seed)
    model = await run_random_sequence(registry, rng, steps=40)
    from_rows = await recount(registry.parts.db)
    for project in PROJECTS:
        expected = model.project_view(project, None)
        assert from_rows[project] == expected, project
        assert await report(registry, project) == expected, project
    everything = (await registry.client.get("/api/v1/usage")).json()["projects"]
    assert everything == [model.project_view(p, None) for p in PROJECTS]


async def test_a_blob_counts_once_per_project_and_shared_bytes_are_split(registry: Registry) -> None:
    client = registry.client
    layer = random_bytes(1000)
    config = b'{"architecture":"amd64","os":"linux"}'
    image = Image(config, (layer,), dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer)]}),
        "application/vnd.oci.image.manifest.v1+json")
    for repo in ("team-a/api", "team-a/web"):
        for blob in image.blobs:
            await push_blob(client, repo, blob)
        assert (await push_manifest(client, repo, "v1", image.manifest)).status_code == 201
    blob_bytes = len(layer) + len(config)
    found = await report(registry, "team-a")
    assert found["used_bytes"] == blob_bytes + 2 * len(image.manifest)  # blobs once, each manifest row
    assert (found["exclusive_bytes"], found["shared_bytes"]) == (blob_bytes + 2 * len(image.manifest), 0)
    for repo in found["repositories"]:
        assert (repo["exclusive_bytes"], repo["shared_bytes"]) == (len(image.manifest), blob_bytes)
    # The same layer in another project: shared between projects now.
    await push_blob(client, "team-b/app", layer)
    found = await report(registry, "team-a")
    assert found["shared_bytes"] == len(layer)
    assert found["used_bytes"] == blob_bytes + 2 * len(image.manifest)


async def test_usage_is_seen_by_members_and_public_readers_only(registry: Registry) -> None:
    client = registry.client
    await push_blob(client, "secret/app", b"private bytes")
    await push_blob(client, "open/app", b"public bytes")
    assert (await client.post("/api/v1/users", json={"name": "eve", "password": "eve-password-1"})).status_code == 201
    assert (await client.patch("/api/v1/projects/open", json={"public": True})).status_code == 200
    async with client_as(registry, ("eve", "eve-password-1")) as eve:
        hidden = await eve.get("/api/v1/projects/secret/usage")
        missing = await eve.get("/api/v1/projects/no-such-project/usage")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["errors"][0]["code"] == "NOT_FOUND"
        readable = await eve.get("/api/v1/projects/open/usage")
        assert readable.status_code == 200
        assert readable.json()["used_bytes"] == len(b"public bytes")
        assert (await eve.get("/api/v1/usage")).status_code == 403
    assert (await client.get("/api/v1/projects/secret/usage")).json()["used_bytes"] == len(b"private bytes")


def test_cli_usage_prints_a_project_and_every_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from dockyard.config import build_config
    from tests.integration.conftest import open_registry

    monkeypatch.setenv("DOCKYARD_AUTH__ARGON2_TIME_COST", "1")
    monkeypatch.setenv("DOCKYARD_AUTH__ARGON2_MEMORY_KIB", "1024")
    config = build_config({"data_dir": str(tmp_path / "data"), "auth": {"argon2_time_cost": 1,
                                                                        "argon2_memory_kib": 1024}})

    async def push() -> None:
        async with open_registry(config) as opened:
            await push_blob(opened.client, "team-a/api", b"x" * 3000)
            await push_blob(opened.client, "team-b/app", b"x" * 3000)
    asyncio.run(push())
    runner = CliRunner()
    one = runner.invoke(main, ["usage", "team-a", "--json", "--data-dir", str(tmp_path / "data")])
    assert one.exit_code == 0, one.output
    assert json.loads(one.output)["repositories"] == [
        {"name": "team-a/api", "used_bytes": 3000, "exclusive_bytes": 0, "shared_bytes": 3000, "manifest_bytes": 0}]
    table = runner.invoke(main, ["usage", "team-a", "--data-dir", str(tmp_path / "data")])
    assert "project team-a: 2.9 KiB used of quota none" in table.output
    assert table.output.splitlines()[1].split() == ["REPOSITORY", "USED", "EXCLUSIVE", "SHARED", "MANIFESTS"]
    every = runner.invoke(main, ["usage", "--bytes", "--data-dir", str(tmp_path / "data")])
    assert every.exit_code == 0, every.output
    assert [line.split()[:3] for line in every.output.splitlines()[1:]] == [
        ["team-a", "3000", "none"], ["team-b", "3000", "none"]]
    missing = runner.invoke(main, ["usage", "nobody", "--data-dir", str(tmp_path / "data")])
    assert missing.exit_code != 0
    assert "not found" in missing.output
