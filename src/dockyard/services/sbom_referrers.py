"""An image's inventory, attached to it in a repository as a CycloneDX referrer artifact.

The artifact is an OCI image manifest with ``subject`` = the image, ``artifactType``
``application/vnd.cyclonedx+json``, the OCI empty config (``{}``) and one layer, the CycloneDX
document. Its blobs go through ``UploadService.push`` and the manifest through
``ManifestService.put``, like any client's push: digests are verified, the naming rules and quota
apply, a ``manifest.pushed`` event is written (by the actor "scanner"), and the referrers API lists
it. An image that has one in the repository already gets no second one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from dockyard import events
from dockyard.errors import RegistryError
from dockyard.oci import mediatypes as mt
from dockyard.oci.digests import digest_of
from dockyard.scan.report import SCANNER_VERSION, Inventory
from dockyard.scan.sbom import SBOM_ARTIFACT_TYPE, cyclonedx
from dockyard.services.manifests import ManifestService
from dockyard.services.uploads import UploadService
from dockyard.store import manifests as manifest_rows
from dockyard.store.db import Database

log = logging.getLogger("dockyard.scan")
EMPTY = b"{}"
SCANNER = events.Actor("scanner")


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class SbomReferrers:
    def __init__(self, db: Database, uploads: UploadService, manifests: ManifestService) -> None:
        self.db = db
        self.uploads = uploads
        self.manifests = manifests

    async def has_one(self, repository: str, subject: str) -> bool:
        async with self.db.read() as conn:
            return bool(await manifest_rows.referrers(conn, repository, subject, SBOM_ARTIFACT_TYPE))

    async def attach(self, repository: str, subject: str, subject_media_type: str, subject_size: int,
                     inventory: Inventory) -> str | None:
        """Push the SBOM referrer of ``subject`` into ``repository`` unless one is there; its digest
        (None: there was one already, or the registry refused it, which is logged)."""
        if await self.has_one(repository, subject):
            return None
        document = cyclonedx(inventory, subject=subject, name=repository)
        manifest = {
            "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": SBOM_ARTIFACT_TYPE,
            "config": {"mediaType": mt.OCI_EMPTY, "digest": digest_of(EMPTY), "size": len(EMPTY)},
            "layers": [{"mediaType": SBOM_ARTIFACT_TYPE, "digest": digest_of(document), "size": len(document),
                        "annotations": {"org.opencontainers.image.title": "sbom.cdx.json"}}],
            "subject": {"mediaType": subject_media_type, "digest": subject, "size": subject_size},
            "annotations": {"dev.dockyard.scanner": SCANNER_VERSION},
        }
        body = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
        digest = digest_of(body)
        actor = events.CURRENT_ACTOR.set(SCANNER)
        try:
            for blob in (EMPTY, document):
                await self.uploads.push(repository, digest_of(blob), _once(blob))
            await self.manifests.put(repository, digest, body, mt.OCI_MANIFEST, [])
        except RegistryError as exc:  # a quota or naming rule refused it: the scan result stands
            log.warning("the SBOM of %s was not attached in %s: %s", subject, repository, exc.message)
            return None
        finally:
            events.CURRENT_ACTOR.reset(actor)
        return digest
