"""Tags list and catalog: ASCII order, n/last pagination, Link headers, caps."""

from __future__ import annotations

import re

import pytest

from tests.integration.conftest import Registry, make_config, open_registry
from tests.support.content import error_codes, make_image, push_image, push_manifest

NAME = "team/app"
TAGS = ["Zeta", "alpha", "beta", "v1.0", "v1.0-rc1", "v10", "v2", "_private", "1.0"]


async def _tagged(registry: Registry, tags: list[str]) -> None:
    image = make_image(layers=1)
    await push_image(registry.client, NAME, image)
    for tag in tags:
        assert (await push_manifest(registry.client, NAME, tag, image.manifest)).status_code == 201


async def test_tags_are_ascii_sorted(registry: Registry) -> None:
    await _tagged(registry, TAGS)
    listed = await registry.client.get(f"/v2/{NAME}/tags/list")
    assert listed.status_code == 200
    assert listed.json() == {"name": NAME, "tags": sorted(TAGS)}
    assert "link" not in listed.headers


async def test_tags_pagination_follows_link(registry: Registry) -> None:
    await _tagged(registry, TAGS)
    seen: list[str] = []
    url: str | None = f"/v2/{NAME}/tags/list?n=2"
    while url is not None:
        page = await registry.client.get(url)
        assert page.status_code == 200
        assert len(page.json()["tags"]) <= 2
        seen += page.json()["tags"]
        link = page.headers.get("link")
        url = re.fullmatch(r'<(.+)>; rel="next"', link).group(1) if link else None  # type: ignore[union-attr]
    assert seen == sorted(TAGS)


async def test_tags_last_and_n_zero(registry: Registry) -> None:
    await _tagged(registry, TAGS)
    after = await registry.client.get(f"/v2/{NAME}/tags/list?last=beta")
    assert after.json()["tags"] == [t for t in sorted(TAGS) if t > "beta"]
    none = await registry.client.get(f"/v2/{NAME}/tags/list?n=0")
    assert none.json() == {"name": NAME, "tags": []}
    assert "link" not in none.headers
    exact = await registry.client.get(f"/v2/{NAME}/tags/list?n={len(TAGS)}")
    assert exact.json()["tags"] == sorted(TAGS)
    assert "link" not in exact.headers


@pytest.mark.parametrize("n", ["-1", "abc", "1.5", "99999999999999999999999"])
async def test_bad_n_is_400(registry: Registry, n: str) -> None:
    await _tagged(registry, ["x"])
    response = await registry.client.get(f"/v2/{NAME}/tags/list", params={"n": n})
    assert response.status_code == 400
    assert error_codes(response) == ["PAGINATION_NUMBER_INVALID"]


async def test_tags_of_unknown_repository(registry: Registry) -> None:
    response = await registry.client.get("/v2/not/here/tags/list")
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]


async def test_page_size_is_capped(tmp_path, database_url) -> None:  # type: ignore[no-untyped-def]
    async with open_registry(make_config(tmp_path, database_url, list_page_max=3)) as registry:
        await _tagged(registry, TAGS)
        page = await registry.client.get(f"/v2/{NAME}/tags/list?n=1000")
        assert page.json()["tags"] == sorted(TAGS)[:3]
        assert 'rel="next"' in page.headers["link"]
        assert "n=3" in page.headers["link"]


async def test_catalog_pagination(registry: Registry) -> None:
    names = ["b/one", "a/two", "c", "a/one", "a-b/c"]
    for name in names:
        await push_image(registry.client, name, make_image(layers=1), "v1")
    full = await registry.client.get("/v2/_catalog")
    assert full.json() == {"repositories": sorted(names)}
    first = await registry.client.get("/v2/_catalog?n=2")
    assert first.json()["repositories"] == sorted(names)[:2]
    assert first.headers["link"] == f'</v2/_catalog?n=2&last={sorted(names)[1].replace("/", "%2F")}>; rel="next"'
    rest = await registry.client.get(f"/v2/_catalog?n=10&last={sorted(names)[1]}")
    assert rest.json()["repositories"] == sorted(names)[2:]
    assert "link" not in rest.headers
    assert (await registry.client.get("/v2/_catalog?n=0")).json() == {"repositories": []}
