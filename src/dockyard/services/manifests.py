"""Manifests, tags and referrers of a repository."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from dockyard import events
from dockyard.errors import DigestInvalid, ManifestBlobUnknown, ManifestTooLarge, ManifestUnknown
from dockyard.oci import mediatypes as mt
from dockyard.oci.digests import algorithm_of, digest_of, looks_like_digest, parse_digest
from dockyard.oci.manifests import Manifest, parse_manifest
from dockyard.oci.names import is_valid_tag, validate_name, validate_tag
from dockyard.policy.admission import warning
from dockyard.services import enforcement
from dockyard.services.admission import AdmissionService
from dockyard.services.lru import LRU
from dockyard.store import blobs as blob_rows
from dockyard.store import gc as gc_rows
from dockyard.store import manifests as manifest_rows
from dockyard.store import repositories
from dockyard.store import tags as tag_rows
from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow
from dockyard.store.db import Database
from dockyard.store.limits import MEDIA_TYPE, can_hold
from dockyard.store.manifests import NewManifest, StoredManifest


@dataclass(frozen=True, slots=True)
class PushedManifest:
    digest: str
    subject: str | None
    tags: tuple[str, ...]
    warning: str | None = None  # what the project's warn rules found (the Dockyard-Policy-Warning header)


class ManifestService:
    def __init__(self, db: Database, *, max_bytes: int, cache_bytes: int, cache_entries: int | None = None,
                 grace_period: timedelta = timedelta(hours=24)) -> None:
        self.db = db
        self.max_bytes = max_bytes
        self.grace_period = grace_period  # how long what a change left unreferenced stays (gc.grace_period)
        # Bytes under a digest never change; at most ``cache_bytes`` of them per worker.
        self.cache: LRU[str, bytes] = LRU(cache_bytes, max_entries=cache_entries)
        # The push rules; set by the composition root (the admission service reads manifests too).
        self.admission: AdmissionService | None = None

    async def get(self, repository: str, reference: str) -> StoredManifest:
        """One indexed lookup says whether (and which) manifest the reference names right now;
        its bytes come from the cache when this worker has seen them."""
        validate_name(repository)
        if _is_digest_reference(reference):
            found = await manifest_rows.ref_by_digest(self.db, repository, reference)
        else:
            found = await manifest_rows.ref_by_tag(self.db, repository, reference)
        content = None if found is None else self.cache.get(found.digest)
        if found is not None and content is None:
            content = await manifest_rows.content(self.db, found.id)
            if content is not None:
                self.cache.put(found.digest, content)
        if found is None or content is None:
            raise ManifestUnknown(detail={"reference": reference})
        return StoredManifest(found.id, found.digest, found.media_type, content)

    async def put(self, repository: str, reference: str, body: bytes, content_type: str,
                  extra_tags: list[str]) -> PushedManifest:
        """Validate and store a manifest, then point the tags at it, in one transaction: refused
        (403 DENIED) when the project's naming rules, immutable tags, quota or push rules say so.
        The push rules run first, outside the transaction, as they may wait for a scan."""
        validate_name(repository)
        if len(body) > self.max_bytes:
            raise ManifestTooLarge(f"manifest is {len(body)} bytes; the limit is {self.max_bytes}")
        tags = [] if looks_like_digest(reference) else [validate_tag(reference)]
        tags += [validate_tag(tag) for tag in extra_tags if tag not in tags]
        manifest = parse_manifest(body, content_type)
        digest = self._digest_for(reference, body)
        new = _new_manifest(digest, manifest, body)
        warned = ([] if self.admission is None
                  else await self.admission.check_push(None, repository, tags, digest, manifest, body))
        async with self.db.write() as conn:
            rules = await enforcement.rules_for(conn, repository)
            enforcement.check_name(rules, repository, tags)
            await enforcement.ensure_mutable(conn, repository, tags, digest=digest, rules=rules.immutable)
            if enforcement.has_quota(rules) and not await self._holds(conn, repository, digest):
                await enforcement.ensure_room(conn, rules, repository, size=len(body))
            repo_id = await repositories.ensure(conn, repository)
            await self._require_references(conn, repo_id, manifest)
            manifest_id = await manifest_rows.insert(conn, repo_id, new)
            await gc_rows.forget_manifest(conn, repo_id, digest)  # pushed again: wanted
            if manifest.subject is not None and not tags and not await manifest_rows.find_id(
                    conn, repo_id, manifest.subject.digest):
                # A signature or SBOM lives while its subject lives: one whose subject is not here
                # goes after the grace period, unless the subject is pushed by then.
                await self._candidates(conn, [gc_rows.Candidate(gc_rows.MANIFEST, repo_id, digest)],
                                       "subject missing")
            protected = enforcement.guarded(rules.immutable, repository, tags)
            moved = []
            for tag in tags:
                if tag in protected:  # created, never moved: it leaves no manifest behind
                    await enforcement.claim_immutable(conn, repository, repo_id, tag, manifest_id, digest,
                                                      protected[tag])
                    continue
                before = await tag_rows.repoint(conn, repo_id, tag, manifest_id)
                if before is not None and before[0] != manifest_id:
                    moved.append(gc_rows.Candidate(gc_rows.MANIFEST, repo_id, before[1]))
            await self._candidates(conn, moved, "tag moved")
            await events.record(conn, events.ManifestPushed(repository, digest, new.media_type, tuple(tags)))
            if warned:
                await events.record(conn, events.PolicyWarned(repository, digest, "push", tuple(v.rule for v in warned),
                                                              warning(warned) or "", tags[0] if tags else digest))
        subject = manifest.subject.digest if manifest.subject else None
        return PushedManifest(digest=digest, subject=subject, tags=tuple(tags), warning=warning(warned))

    async def delete(self, repository: str, reference: str) -> None:
        """By tag: remove the tag only. By digest: remove the manifest and its tags. An immutable
        tag, or a manifest one keeps, is not deleted (403 DENIED)."""
        validate_name(repository)
        by_digest = _is_digest_reference(reference)
        async with self.db.write() as conn:
            repo_id = await repositories.find_id(conn, repository)
            if repo_id is None:
                raise ManifestUnknown(detail={"reference": reference})
            rules = (await enforcement.rules_for(conn, repository)).immutable
            if by_digest:
                await enforcement.ensure_deletable(conn, repository, repo_id, reference, rules)
                left = await self._left_by_manifest(conn, repo_id, reference)
                deleted = await manifest_rows.delete(conn, repo_id, reference)
                event: events.Event = events.ManifestDeleted(repository, reference)
            else:
                await enforcement.ensure_mutable(conn, repository, [reference], rules=rules)
                before = await tag_rows.target(conn, repo_id, reference, lock=True)
                left = [] if before is None else [gc_rows.Candidate(gc_rows.MANIFEST, repo_id, before[1])]
                deleted = await tag_rows.delete(conn, repo_id, reference)
                event = events.TagDeleted(repository, reference)
            if not deleted:
                raise ManifestUnknown(detail={"reference": reference})
            await self._candidates(conn, left, event.name)
            await events.record(conn, event)

    async def _candidates(self, conn: AsyncConnection, found: list[gc_rows.Candidate], reason: str) -> None:
        """What a change may have left unreferenced: the collector looks at it after the grace period."""
        await gc_rows.add_candidates(conn, found, reason=reason, due_at=utcnow() + self.grace_period)

    @staticmethod
    async def _left_by_manifest(conn: AsyncConnection, repo_id: int, digest: str) -> list[gc_rows.Candidate]:
        """What deleting the manifest may leave unreferenced: its blobs' links, its children, its referrers."""
        manifest_id = await manifest_rows.find_id(conn, repo_id, digest)
        if manifest_id is None:
            return []
        contents = await gc_rows.contents_of(conn, repo_id, manifest_id, digest)
        return ([gc_rows.Candidate(gc_rows.LINK, repo_id, d) for d in contents.blobs]
                + [gc_rows.Candidate(gc_rows.MANIFEST, repo_id, d)
                   for d in contents.children + contents.referrers if d != digest])

    async def referrers(self, repository: str, subject: str, artifact_type: str | None) -> bytes:
        """The OCI image index listing manifests whose subject is ``subject`` (empty if none)."""
        validate_name(repository)
        parse_digest(subject)
        found = []
        # A filter no stored artifactType can equal matches nothing, on every backend.
        if artifact_type is None or can_hold(artifact_type, MEDIA_TYPE):
            async with self.db.read() as conn:
                found = await manifest_rows.referrers(conn, repository, subject, artifact_type)
        descriptors = []
        for ref in found:
            descriptor: dict[str, object] = {"mediaType": ref.media_type, "digest": ref.digest, "size": ref.size}
            if ref.artifact_type:
                descriptor["artifactType"] = ref.artifact_type
            if ref.annotations:
                descriptor["annotations"] = ref.annotations
            descriptors.append(descriptor)
        index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors}
        return json.dumps(index, separators=(",", ":")).encode()

    @staticmethod
    def _digest_for(reference: str, body: bytes) -> str:
        if not looks_like_digest(reference):
            return digest_of(body)
        parse_digest(reference)
        actual = digest_of(body, algorithm_of(reference))
        if actual != reference:
            raise DigestInvalid(f"manifest body has digest {actual}, not {reference}",
                                detail={"expected": reference, "actual": actual})
        return actual

    @staticmethod
    async def _holds(conn: AsyncConnection, repository: str, digest: str) -> bool:
        """Whether the repository has the manifest already (pushing it again adds no bytes)."""
        repo_id = await repositories.find_id(conn, repository)
        return repo_id is not None and await manifest_rows.find_id(conn, repo_id, digest) is not None

    @staticmethod
    async def _require_references(conn: AsyncConnection, repo_id: int, manifest: Manifest) -> None:
        blob_digests = [d.digest for d in manifest.blob_references]
        missing = await blob_rows.missing_in_repository(conn, repo_id, blob_digests)
        children = [d.digest for d in manifest.manifests]
        missing += await manifest_rows.missing_in_repository(conn, repo_id, children)
        if missing:
            raise ManifestBlobUnknown(
                f"manifest references {len(missing)} blob(s) or manifest(s) this repository does not "
                f"have, first {missing[0]}; push them before the manifest", detail={"missing": missing[:20]})


def _is_digest_reference(reference: str) -> bool:
    """Check a reference to read or delete by; True for a digest, False for a tag.

    A malformed digest is a 400. A tag that could never exist is answered like one that does not
    (a 404, as the OCI conformance suite expects); only a push of one is a 400.
    """
    if looks_like_digest(reference):
        parse_digest(reference)
        return True
    if not is_valid_tag(reference):
        raise ManifestUnknown(
            "manifest unknown: the reference is neither a valid tag ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}) "
            "nor a digest", detail={"reference": reference[:200]})
    return False


def _new_manifest(digest: str, manifest: Manifest, body: bytes) -> NewManifest:
    return NewManifest(
        digest=digest, media_type=manifest.media_type, artifact_type=manifest.referrer_artifact_type(),
        content=body, subject_digest=manifest.subject.digest if manifest.subject else None,
        annotations=manifest.annotations or None,
        blob_digests=tuple(d.digest for d in manifest.blob_references),
        child_digests=tuple(d.digest for d in manifest.manifests))
