"""Per-worker memory is bounded by configuration (DESIGN.md, invariant 6; issue 11, item 6): the
caches hold at most their byte budgets, and a burst of requests bringing the same password costs
one argon2 run (7 MiB of memory each by default), not one per request."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.conftest import client_as, make_config, open_registry
from tests.support.content import make_image, push_image


async def test_concurrent_requests_with_the_same_password_share_one_check(tmp_path: Path, database_url: str) -> None:
    """24 requests with the admin's Basic credentials at once, with nothing cached yet: one argon2
    run answers them all (each request either joins the run in flight or finds its result cached)."""
    async with open_registry(make_config(tmp_path, database_url)) as registry:
        before = registry.parts.access.password_checks
        answers = await asyncio.gather(*(registry.client.get("/v2/") for _ in range(24)))
        assert [a.status_code for a in answers] == [200] * 24
        assert registry.parts.access.password_checks == before + 1


async def test_the_manifest_cache_holds_at_most_its_bytes(tmp_path: Path, database_url: str) -> None:
    """60 manifests pulled through a 16 KiB cache: it keeps what fits, and every pull, from the
    cache or not, answers the bytes pushed."""
    budget = 16 * 1024
    async with open_registry(make_config(tmp_path, database_url, manifest_cache_bytes=budget)) as registry:
        images = [make_image(layers=1) for _ in range(60)]
        for n, image in enumerate(images):
            await push_image(registry.client, f"bounds/r{n % 7}", image, f"t{n}")
        for _ in range(2):
            for n, image in enumerate(images):
                pulled = await registry.client.get(f"/v2/bounds/r{n % 7}/manifests/t{n}")
                assert pulled.status_code == 200
                assert pulled.content == image.manifest
        cache = registry.parts.services.manifests.cache
        assert 0 < cache.bytes <= budget
        assert 0 < len(cache) < len(images)


async def test_the_token_cache_holds_at_most_its_bytes(tmp_path: Path, database_url: str) -> None:
    """40 distinct bearer tokens used through an 8 KiB verified-token cache: it keeps what fits,
    and every token still works."""
    budget = 8 * 1024
    config = make_config(tmp_path, database_url, auth={"token_cache_bytes": budget})
    async with open_registry(config) as registry:
        async with client_as(registry, None) as bearer:
            for n in range(40):
                answer = await registry.client.get(
                    "/token", params={"service": "dockyard", "scope": f"repository:bounds/r{n}:pull"})
                assert answer.status_code == 200
                token = answer.json()["token"]
                listed = await bearer.get(f"/v2/bounds/r{n}/tags/list", headers={"Authorization": f"Bearer {token}"})
                assert listed.status_code == 404  # the token works; the repository does not exist
        cache = registry.parts.access._claims
        assert 0 < cache.bytes <= budget
        assert 0 < len(cache) < 40


async def test_the_deprecated_entry_count_still_bounds_the_manifest_cache(tmp_path: Path, database_url: str) -> None:
    """``registry.manifest_cache_entries`` keeps working: 3 caps the count, 0 turns the cache off."""
    for entries in (3, 0):
        config = make_config(tmp_path / str(entries), database_url, manifest_cache_entries=entries)
        async with open_registry(config) as registry:
            images = [make_image(layers=1) for _ in range(5)]
            for n, image in enumerate(images):
                await push_image(registry.client, "bounds/count", image, f"t{n}")
                pulled = await registry.client.get(f"/v2/bounds/count/manifests/t{n}")
                assert pulled.content == image.manifest
            assert len(registry.parts.services.manifests.cache) == entries
