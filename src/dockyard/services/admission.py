"""Push admission and pull gating: a project's rules, its allow-list, and the checks on the way in
and out (docs/supply-chain.md, "Push and pull policies").

- ``check_push`` runs in ``ManifestService.put`` after the manifest parsed and before the write
  transaction that makes its tags visible: when a rule needs a scan it waits for the scan of exactly
  that image (``ScanService.scan_for_push``, at most ``scan.push_timeout``), then evaluates. An
  enforce rule that fails refuses the push (403 DENIED); one that could not be evaluated because the
  scan is still running answers 503 (the scan goes on; a retry uses its result).
- ``check_pull`` runs on a manifest GET. A project without pull rules costs a dictionary lookup:
  each worker keeps every project's rules for ``ttl`` seconds, dropped at once when they change
  through this process (another process's change is seen within ``ttl``).
- Nobody is exempt, system admins included: an exemption would make "every pull of this project is
  signed" untrue. Recovery is changing the rules or the allow-list, which takes effect at once.

Warnings (failed ``warn`` rules) are returned to the caller for the ``Dockyard-Policy-Warning``
header and recorded as ``policy.warned`` events: a push's in its own transaction (by the caller),
a pull's through the buffered pull log (a pull writes nothing itself).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from dockyard import events
from dockyard.auth.principals import Principal
from dockyard.errors import (
    Denied,
    ManifestBlobUnknown,
    ManifestUnknown,
    RegistryError,
    ResourceUnknown,
    Unavailable,
)
from dockyard.oci.digests import looks_like_digest
from dockyard.oci.manifests import Manifest, parse_manifest
from dockyard.policy import admission as policy
from dockyard.policy.admission import Facts, ScanFacts, Verdict
from dockyard.services.access import AccessService
from dockyard.services.projects import visible_project
from dockyard.storage.blobstore import BlobStore
from dockyard.store import accounts
from dockyard.store import admission as rows
from dockyard.store import manifests as manifest_rows
from dockyard.store.clock import utcnow
from dockyard.store.db import Database

if TYPE_CHECKING:  # both read manifests, whose push check is this module: a cycle at import
    from dockyard.services.scan_report import ScanReport
    from dockyard.services.scanning import ScanService
    from dockyard.services.signatures import SignatureService

CONFIG_MAX_BYTES = 4 * 1024 * 1024  # an image config larger than this is not read for labels
CACHE_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class ProjectRules:
    project_id: int | None  # None: no such project (nothing to check)
    push: tuple[rows.AdmissionRule, ...] = ()
    pull: tuple[rows.AdmissionRule, ...] = ()
    allowlist: tuple[rows.AllowEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Explanation:
    """Every rule's verdict on one image, for ``dockyard policy explain``."""

    repository: str
    digest: str
    gated: bool  # False: an artifact (signature, SBOM, ...) no rule applies to
    verdicts: tuple[Verdict, ...]

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.repository, "digest": self.digest, "gated": self.gated,
                "verdicts": [v.to_json() for v in self.verdicts]}


def project_of(repository: str) -> str:
    return repository.split("/", 1)[0]


def scan_facts(report: ScanReport) -> ScanFacts | None:
    """What a done scan found (an index: all its image children); None while any is not done."""
    parts = [part for part in (report.children or (report,)) if part.status != "not-an-image"]
    if any(not part.is_done for part in parts):
        return None
    return ScanFacts(tuple(v for part in parts for v in part.vulnerabilities),
                     tuple(s for part in parts for s in part.secrets),
                     tuple(m for part in parts for m in part.malware),
                     all(part.malware_engine is not None for part in parts))


def _failed(report: ScanReport) -> str | None:
    """Why the scan of an image (or of a child of an index) ended without a result, if it did."""
    failed = next((part for part in (report.children or (report,)) if part.status == "failed"), None)
    return None if failed is None else f"scan of {failed.digest} failed ({failed.error or 'no reason given'})"


class AdmissionService:
    def __init__(self, db: Database, store: BlobStore, access: AccessService, *, push_timeout: timedelta,
                 pulls: events.PullLog, scans: ScanService | None = None, signatures: SignatureService | None = None,
                 ttl: float = 10.0) -> None:
        self.db = db
        self.store = store
        self.access = access
        self.push_timeout = push_timeout
        self.pulls = pulls
        self.scans = scans
        self.signatures = signatures
        self.ttl = ttl
        self._cache: dict[str, tuple[float, ProjectRules]] = {}

    # -- the rules of a project, cached per worker ---------------------------------------------

    async def rules_of(self, project: str) -> ProjectRules:
        cached = self._cache.get(project)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.db.read() as conn:
            found = await accounts.find_project(conn, project)
            if found is None:
                rules = ProjectRules(None)
            else:
                stored = await rows.rules_of(conn, found.id)
                rules = ProjectRules(found.id, tuple(r for r in stored if r.stage == "push"),
                                     tuple(r for r in stored if r.stage == "pull"),
                                     tuple(await rows.allowlist_of(conn, found.id)))
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()
        self._cache[project] = (now + self.ttl, rules)
        return rules

    def forget(self, project: str) -> None:
        """Drop the cached rules of a project that changed."""
        self._cache.pop(project, None)

    # -- push ----------------------------------------------------------------------------------

    async def check_push(self, conn: object, repository: str, tags: Sequence[str], digest: str,
                         manifest: Manifest, body: bytes) -> list[Verdict]:
        """The failed warn rules of a push (raises Denied or Unavailable when an enforce rule fails).
        ``conn`` is unused: the check runs before the push's transaction, as a scan may take a while."""
        rules = await self.rules_of(project_of(repository))
        if not rules.push or not policy.is_gated(manifest):
            return []
        await self._require_present(repository, manifest)
        facts = await self._push_facts(repository, digest, manifest, body, rules)
        verdicts = policy.evaluate(rules.push, facts)
        _decide(verdicts)
        return [v for v in verdicts if v.warns]

    async def _require_present(self, repository: str, manifest: Manifest) -> None:
        """Refuse a manifest whose blobs are not there before waiting for a scan that cannot read them."""
        async with self.db.read() as conn:
            missing = await rows.missing_references(conn, repository, [d.digest for d in manifest.blob_references],
                                                    [d.digest for d in manifest.manifests])
        if missing:
            raise ManifestBlobUnknown(
                f"manifest references {len(missing)} blob(s) or manifest(s) this repository does not have, "
                f"first {missing[0]}; push them before the manifest", detail={"missing": missing[:20]})

    async def _push_facts(self, repository: str, digest: str, manifest: Manifest, body: bytes,
                          rules: ProjectRules) -> Facts:
        facts = Facts(project_of(repository), digest, allowlist=rules.allowlist, now=utcnow())
        if any(r.check == "labels" for r in rules.push):
            facts = replace(facts, labels=await self._labels(repository, manifest))
        if policy.needs_scan(rules.push):
            if self.scans is None:
                return replace(facts, scan_pending="scanning is not available on this registry")
            from dockyard.services.scanning import ScanTimeout

            try:
                report = await self.scans.scan_for_push(repository, digest, body, manifest.media_type)
            except ScanTimeout:
                seconds = f"{self.push_timeout.total_seconds():g}s"
                return replace(facts, scan_pending=f"scan of {digest} still running after {seconds}")
            except Unavailable as exc:  # clamd or the store failed: the registry's trouble, not the image's
                return replace(facts, scan_pending=f"scan of {digest} could not finish ({exc.message})")
            found = scan_facts(report)
            if found is None:
                failed = _failed(report)
                return replace(facts, scan_failed=failed) if failed else replace(
                    facts, scan_pending=f"scan of {digest} is still queued or running")
            facts = replace(facts, scan=found)
        return facts

    # -- pull ----------------------------------------------------------------------------------

    async def check_pull(self, repository: str, digest: str, media_type: str, content: bytes,
                         reference: str | None = None) -> list[Verdict]:
        """The failed warn rules of a manifest GET (raises Denied when an enforce rule fails); costs
        nothing more than a cache lookup when the project has no pull rules."""
        rules = await self.rules_of(project_of(repository))
        if not rules.pull:
            return []
        manifest = parse_manifest(content, media_type)
        if not policy.is_gated(manifest, reference):
            return []
        verdicts = policy.evaluate(rules.pull, await self._pull_facts(repository, digest, manifest, rules))
        _decide(verdicts)
        warned = [v for v in verdicts if v.warns]
        if warned:
            self.pulls.add(events.PolicyWarned(repository, digest, "pull", tuple(v.rule for v in warned),
                                               policy.warning(warned) or "", reference or digest))
        return warned

    async def _pull_facts(self, repository: str, digest: str, manifest: Manifest, rules: ProjectRules) -> Facts:
        facts = Facts(project_of(repository), digest, allowlist=rules.allowlist, now=utcnow())
        if policy.needs_scan(rules.pull) and self.scans is not None:
            report = await self.scans.current(digest)
            facts = replace(facts, scan=None if report is None else scan_facts(report))
        if any(r.check == "signed" for r in rules.pull):
            facts = replace(facts, signed=await self._signed(repository, digest, rules),
                            trusted_keys=await self._trusted_keys(rules))
        return facts

    async def _signed(self, repository: str, digest: str, rules: ProjectRules) -> bool:
        """Signed itself, or a child of a signed index (``cosign sign`` signs the index a client names)."""
        if self.signatures is None:
            return False
        if await self.signatures.is_signed_by_trusted_key(repository, digest):
            return True
        async with self.db.read() as conn:
            parents = await rows.parent_digests(conn, repository, digest)
        for parent in parents:
            if await self.signatures.is_signed_by_trusted_key(repository, parent):
                return True
        return False

    async def _trusted_keys(self, rules: ProjectRules) -> tuple[tuple[str, str], ...]:
        if rules.project_id is None:
            return ()
        async with self.db.read() as conn:
            return tuple(await rows.trusted_key_names(conn, rules.project_id))

    # -- explain -------------------------------------------------------------------------------

    async def explain(self, repository: str, reference: str) -> Explanation:
        """Every push and pull rule's verdict on the image ``reference`` names, as it stands now
        (push rules read the stored scan result, if any; nothing is refused or recorded)."""
        if looks_like_digest(reference):
            found = await manifest_rows.ref_by_digest(self.db, repository, reference)
        else:
            found = await manifest_rows.ref_by_tag(self.db, repository, reference)
        content = None if found is None else await manifest_rows.content(self.db, found.id)
        if found is None or content is None:
            raise ManifestUnknown(f"{repository}:{reference} not found", detail={"reference": reference})
        manifest = parse_manifest(content, found.media_type)
        rules = await self.rules_of(project_of(repository))
        if not policy.is_gated(manifest, reference):
            return Explanation(repository, found.digest, False, ())
        facts = await self._pull_facts(repository, found.digest, manifest,
                                       replace(rules, pull=rules.pull + rules.push))
        if any(r.check == "labels" for r in rules.push):
            facts = replace(facts, labels=await self._labels(repository, manifest))
        return Explanation(repository, found.digest, True, tuple(policy.evaluate(rules.push + rules.pull, facts)))

    # -- labels --------------------------------------------------------------------------------

    async def _labels(self, repository: str, manifest: Manifest) -> frozenset[str]:
        """Label keys of the image config and annotation keys; for an index, its own annotations and
        the keys every image in it has."""
        own = set(manifest.annotations)
        if not manifest.is_index:
            return frozenset(own | await self._config_labels(manifest))
        shared: set[str] | None = None
        for child in policy.image_children(manifest):
            async with self.db.read() as conn:
                found = await rows.manifest_content(conn, repository, child)
            if found is None:
                continue
            parsed = parse_manifest(found[1], found[0])
            keys = set(parsed.annotations) | await self._config_labels(parsed)
            shared = keys if shared is None else shared & keys
        return frozenset(own | (shared or set()))

    async def _config_labels(self, manifest: Manifest) -> set[str]:
        if manifest.config is None or manifest.config.size > CONFIG_MAX_BYTES:
            return set()
        location = await self.store.locate(manifest.config.digest)
        if location is None:
            return set()
        data = b"".join([chunk async for chunk in self.store.read(location)])
        try:
            labels = (json.loads(data).get("config") or {}).get("Labels") or {}
        except (ValueError, AttributeError):
            return set()
        return set(labels) if isinstance(labels, dict) else set()

    # -- changing the rules and the allow-list -------------------------------------------------

    async def _project(self, actor: Principal, name: str, *, change: bool = False) -> accounts.Project:
        project, held = await visible_project(self.db, self.access, actor, name)
        if change and "manage_policies" not in held:
            raise Denied(f"changing the policies of project {name!r} needs the maintainer or admin role there")
        return project

    async def rules(self, actor: Principal, project: str) -> dict[str, Any]:
        """The project's push and pull rules, as the policy file writes them."""
        found = await self._project(actor, project)
        async with self.db.read() as conn:
            return {"project": found.name, **policy.rules_view(await rows.rules_of(conn, found.id))}

    async def set_rules(self, actor: Principal, project: str, push: object, pull: object) -> dict[str, Any]:
        """Replace the project's rules of each stage given (None leaves that stage as it is)."""
        found = await self._project(actor, project, change=True)
        given = {stage: policy.parse_rules(stage, table) for stage, table in (("push", push), ("pull", pull))
                 if table is not None}
        async with self.db.write() as conn:
            old = await rows.rules_of(conn, found.id)
            new = [r for r in old if r.stage not in given] + [r for stage in given for r in given[stage]]
            new.sort(key=lambda r: (r.stage, r.check))
            if new != old:
                await rows.replace_rules(conn, found.id, new)
                await events.record(conn, events.Change("policy.admission.set", project=found.name, details={
                    "old": policy.rules_view(old), "new": policy.rules_view(new)}))
        self.forget(found.name)
        return {"project": found.name, **policy.rules_view(new)}

    async def allowlist(self, actor: Principal, project: str) -> list[dict[str, Any]]:
        found = await self._project(actor, project)
        async with self.db.read() as conn:
            entries = await rows.allowlist_of(conn, found.id)
        now = utcnow()
        return [policy.allow_view(entry, now) for entry in entries]

    async def allow(self, actor: Principal, project: str, fields: Mapping[str, object]) -> dict[str, Any]:
        """Add an allow-list entry (or replace the reason and expiry of the one with its id)."""
        found = await self._project(actor, project, change=True)
        entry = replace(policy.allow_entry(fields), created_at=utcnow(), created_by=actor.name or None)
        async with self.db.write() as conn:
            old = next((e for e in await rows.allowlist_of(conn, found.id) if e.vulnerability == entry.vulnerability),
                       None)
            await rows.put_allowed(conn, found.id, entry)
            await events.record(conn, events.Change(
                "policy.allowlist.added", project=found.name, target=entry.vulnerability,
                details={"old": None if old is None else policy.allow_view(old), "new": policy.allow_view(entry)}))
        self.forget(found.name)
        return policy.allow_view(entry, utcnow())

    async def disallow(self, actor: Principal, project: str, vulnerability: str) -> None:
        found = await self._project(actor, project, change=True)
        async with self.db.write() as conn:
            old = next((e for e in await rows.allowlist_of(conn, found.id) if e.vulnerability == vulnerability), None)
            if old is None or not await rows.delete_allowed(conn, found.id, vulnerability):
                raise ResourceUnknown(f"project {found.name!r} has no allow-list entry {vulnerability[:128]!r}")
            await events.record(conn, events.Change("policy.allowlist.deleted", project=found.name,
                                                    target=vulnerability, details={"old": policy.allow_view(old)}))
        self.forget(found.name)


def _decide(verdicts: Sequence[Verdict]) -> None:
    """Refuse when an enforce rule failed: 403 DENIED, or 503 when only a running scan stands in the way."""
    refusing = [v for v in verdicts if v.refuses]
    if not refusing:
        return
    message = policy.refusal(refusing) or ""
    error: RegistryError = (Unavailable(message) if all(v.retry for v in refusing) else Denied(message))
    raise error
