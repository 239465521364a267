"""What a registry holds, checked from the outside: every tag pulled, the database recounted, storage listed.

Used after a stress run (``tests/e2e/test_gc_stress.py``), with the registry idle:

* ``pull_every_tag`` walks ``/v2/_catalog`` and every repository's tags and pulls each one whole
  (manifest, index children, every blob, each hashed against its digest), and the referrers of
  each image.
* ``read_state`` reads the metadata tables straight from SQLite or PostgreSQL and ``Reachability``
  computes, independently of the collector's own code, what is reachable: from every tag (and
  every tag a retention run deleted, inside its restore window) through index children and
  referrers (a referrer lives while its subject lives), to the blobs those manifests use.
* ``storage_blobs_*`` lists the blob files or objects actually in storage.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from tests.support import ocihttp
from tests.support.cluster import fetch

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Query = Callable[[str], list[tuple[Any, ...]]]


def sqlite_query(path: Path) -> Query:
    """Read-only queries against a SQLite database file (another process may be writing it)."""
    def run(sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return [tuple(row) for row in conn.execute(sql).fetchall()]
        finally:
            conn.close()
    return run


def postgres_query(url: str) -> Query:
    """Queries against the PostgreSQL database at ``url`` (a SQLAlchemy URL)."""
    def run(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row.values()) for row in asyncio.run(fetch(url, sql))]
    return run


# -- pulling -------------------------------------------------------------------------------------

@dataclass
class PullReport:
    tags: int = 0
    manifests: int = 0
    blobs: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)


def _paged(client: httpx.Client, url: str, key: str) -> list[str]:
    found: list[str] = []
    next_url: str | None = url
    while next_url is not None:
        answer = ocihttp.expect(client.get(next_url), 200, 404)
        if answer.status_code == 404:
            return found
        found.extend(answer.json().get(key) or [])
        link = str(answer.headers.get("Link", ""))
        next_url = link.split(";")[0].strip().strip("<>") if 'rel="next"' in link else None
    return found


def catalog(client: httpx.Client) -> list[str]:
    return _paged(client, "/v2/_catalog?n=1000", "repositories")


def pull_tree(client: httpx.Client, repo: str, reference: str, report: PullReport,
              expected: str | None = None) -> str | None:
    """Pull a manifest and everything under it, adding what is wrong to ``report``; its digest."""
    try:
        found = ocihttp.get_manifest(client, repo, reference)
    except AssertionError as exc:
        report.problems.append(f"{repo}:{reference}: {exc}")
        return None
    if found is None:
        report.problems.append(f"{repo}:{reference}: manifest answers 404")
        return None
    digest, body = found
    report.manifests += 1
    if expected is not None and digest != expected:
        report.problems.append(f"{repo}:{reference} is {digest}, expected {expected}")
    document = json.loads(body)
    for child in document.get("manifests") or []:
        pull_tree(client, repo, child["digest"], report, child["digest"])
    for descriptor in [document.get("config"), *(document.get("layers") or [])]:
        if descriptor is None:
            continue
        try:
            data = ocihttp.get_blob(client, repo, descriptor["digest"])
        except AssertionError as exc:
            report.problems.append(f"{repo}@{digest} blob {descriptor['digest']}: {exc}")
            continue
        if data is None:
            report.problems.append(f"{repo}@{digest} blob {descriptor['digest']}: 404")
        else:
            report.blobs += 1
            report.bytes += len(data)
    return digest


def referrers(client: httpx.Client, repo: str, subject: str) -> list[str]:
    answer = ocihttp.expect(client.get(f"/v2/{repo}/referrers/{subject}"), 200)
    return [item["digest"] for item in answer.json().get("manifests") or []]


def pull_every_tag(client: httpx.Client) -> PullReport:
    """Pull every tag of every repository whole, and the referrers of what they point at."""
    report = PullReport()
    for repo in catalog(client):
        for tag in _paged(client, f"/v2/{repo}/tags/list?n=1000", "tags"):
            report.tags += 1
            digest = pull_tree(client, repo, tag, report)
            if digest is None:
                continue
            for referrer in referrers(client, repo, digest):
                pull_tree(client, repo, referrer, report, referrer)
    return report


# -- the database, recounted -------------------------------------------------------------------

@dataclass
class State:
    """The metadata tables the collector works on, as rows."""

    repositories: dict[int, str]
    manifests: dict[int, tuple[int, str, str | None, int]]  # id -> (repository, digest, subject, size)
    media_types: dict[int, str]
    references: list[tuple[int, str, str]]  # (manifest id, kind, digest)
    tags: list[tuple[int, str, int]]  # (repository, name, manifest id)
    retained: list[tuple[int, str]]  # (repository, digest) of tags a retention run deleted
    links: set[tuple[int, str]]  # (repository, blob digest)
    blobs: dict[str, int]  # digest -> size
    uploads: int
    pins: int
    candidates: list[tuple[str, int | None, str, str]]  # (kind, repository, digest, reason)


def read_state(query: Query) -> State:
    return State(
        repositories={int(i): str(n) for i, n in query("SELECT id, name FROM repositories")},
        manifests={int(i): (int(r), str(d), s, int(z)) for i, r, d, s, z in query(
            "SELECT id, repository_id, digest, subject_digest, size FROM manifests")},
        media_types={int(i): str(t) for i, t in query("SELECT id, media_type FROM manifests")},
        references=[(int(m), str(k), str(d)) for m, k, d in query(
            "SELECT manifest_id, kind, digest FROM manifest_references")],
        tags=[(int(r), str(n), int(m)) for r, n, m in query("SELECT repository_id, name, manifest_id FROM tags")],
        retained=[(int(r), str(d)) for r, d in query("SELECT repository_id, digest FROM deleted_tags")],
        links={(int(r), str(d)) for r, d in query("SELECT repository_id, digest FROM repository_blobs")},
        blobs={str(d): int(s) for d, s in query("SELECT digest, size FROM blobs")},
        uploads=int(query("SELECT count(*) FROM uploads")[0][0]),
        pins=int(query("SELECT count(*) FROM blob_pins")[0][0]),
        candidates=[(str(k), r, str(d), str(why)) for k, r, d, why in query(
            "SELECT kind, repository_id, digest, reason FROM gc_candidates")],
    )


@dataclass
class Reachability:
    """What is reachable from the tags, computed here from the rows alone."""

    manifests: set[int]
    links: set[tuple[int, str]]
    blobs: set[str]

    @classmethod
    def of(cls, state: State, kept: Collection[tuple[str, str]] = ()) -> Reachability:
        """From the tags, the restorable tags and the manifests ``kept`` ((repository name,
        digest): what the collector keeps without a tag by design)."""
        by_digest = {(repo, digest): mid for mid, (repo, digest, _, _) in state.manifests.items()}
        referrers: dict[tuple[int, str], list[int]] = defaultdict(list)
        for mid, (repo, _, subject, _) in state.manifests.items():
            if subject is not None:
                referrers[(repo, subject)].append(mid)
        children: dict[int, list[str]] = defaultdict(list)
        blobs: dict[int, list[str]] = defaultdict(list)
        for mid, kind, digest in state.references:
            (children if kind == "manifest" else blobs)[mid].append(digest)
        roots = [mid for _, _, mid in state.tags]
        roots += [by_digest[key] for key in state.retained if key in by_digest]
        ids = {name: rid for rid, name in state.repositories.items()}
        roots += [by_digest[(ids[name], digest)] for name, digest in kept
                  if name in ids and (ids[name], digest) in by_digest]
        live: set[int] = set()
        while roots:
            mid = roots.pop()
            if mid in live or mid not in state.manifests:
                continue
            live.add(mid)
            repo, digest, _, _ = state.manifests[mid]
            roots += [by_digest[(repo, child)] for child in children[mid] if (repo, child) in by_digest]
            roots += referrers[(repo, digest)]
        links = {(state.manifests[mid][0], digest) for mid in live for digest in blobs[mid]}
        return cls(live, links, {digest for _, digest in links})


def project_of(repository: str) -> str:
    return repository.split("/", 1)[0]


def recount_usage(state: State, project: str) -> dict[str, Any]:
    """A project's usage recounted from the rows, in the shape of ``GET /api/v1/projects/{p}/usage``.

    The definition (docs/lifecycle.md): each blob once per project plus every manifest row; a
    blob another project links too is shared, else exclusive; within a project a repository's
    blob is shared when any other repository links it.
    """
    repos = {rid: name for rid, name in state.repositories.items() if project_of(name) == project}
    links_of: dict[str, set[int]] = defaultdict(set)
    for rid, digest in state.links:
        links_of[digest].add(rid)
    manifest_bytes: dict[int, int] = defaultdict(int)
    for repo, _, _, size in state.manifests.values():
        manifest_bytes[repo] += size
    digests = {digest for digest, linking in links_of.items() if linking & repos.keys()}
    elsewhere = {digest for digest in digests if links_of[digest] - repos.keys()}
    own_manifests = sum(manifest_bytes[rid] for rid in repos)
    exclusive = sum(state.blobs.get(d, 0) for d in digests - elsewhere) + own_manifests
    shared = sum(state.blobs.get(d, 0) for d in elsewhere)
    per_repo = {}
    for rid, name in repos.items():
        mine = [d for d, linking in links_of.items() if rid in linking]
        alone = sum(state.blobs.get(d, 0) for d in mine if len(links_of[d]) == 1)
        with_others = sum(state.blobs.get(d, 0) for d in mine if len(links_of[d]) > 1)
        per_repo[name] = {"used_bytes": alone + with_others + manifest_bytes[rid],
                          "exclusive_bytes": alone + manifest_bytes[rid], "shared_bytes": with_others,
                          "manifest_bytes": manifest_bytes[rid]}
    return {"used_bytes": exclusive + shared, "exclusive_bytes": exclusive, "shared_bytes": shared,
            "manifest_bytes": own_manifests, "blobs": len(digests), "repositories": per_repo}


# -- storage -----------------------------------------------------------------------------------

def _digest_of(path_parts: Iterable[str]) -> str | None:
    """``blobs/<algorithm>/<2 hex>/<hex>`` -> ``<algorithm>:<hex>``."""
    parts = list(path_parts)
    if len(parts) != 4 or parts[0] != "blobs":
        return None
    return f"{parts[1]}:{parts[3]}"


def storage_blobs_fs(root: Path) -> set[str]:
    """Digests of the blob files below a filesystem storage root."""
    found = set()
    for path in (root / "blobs").glob("*/*/*"):
        digest = _digest_of(path.relative_to(root).parts)
        if digest is not None and path.is_file():
            found.add(digest)
    return found


def storage_uploads_fs(root: Path) -> int:
    uploads = root / "uploads"
    return sum(1 for _ in uploads.iterdir()) if uploads.is_dir() else 0


def storage_blobs_s3(client: S3Client, bucket: str, prefix: str) -> set[str]:
    """Digests of the blob objects below ``prefix`` in ``bucket``."""
    found = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/blobs/"):
        for item in page.get("Contents", []):
            digest = _digest_of(item["Key"][len(prefix) + 1:].split("/"))
            if digest is not None:
                found.add(digest)
    return found


def storage_uploads_s3(client: S3Client, bucket: str, prefix: str) -> int:
    objects = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/uploads/").get("KeyCount", 0)
    multipart = len(client.list_multipart_uploads(Bucket=bucket, Prefix=f"{prefix}/uploads/").get("Uploads", []))
    return int(objects) + multipart
