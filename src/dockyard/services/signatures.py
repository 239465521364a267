"""cosign signatures of images: finding and verifying them, signing, and each project's trusted keys.

An image's signatures are found where cosign puts them (``scan/cosign.py`` draws the format):
the manifest under the tag ``sha256-<hex>.sig`` in the image's repository, and every manifest whose
``subject`` is the image with artifactType ``application/vnd.dev.cosign.artifact.sig.v1+json``
(the OCI 1.1 referrers form). Each simple-signing layer is one signature; it counts only when its
payload blob is in the repository with the digest the layer names, the payload is cosign's
(``critical.type``), it names exactly this image's digest (a signature copied from another image
does not count), and its signature verifies with a key the project trusts.

Who may do what: a project's keys are read by its members and changed by its admins (the
``manage_settings`` permission) or a system admin; an image's signatures are shown to whoever may
pull it. Signing (``sign``) is for the CLI, which holds the private key; it writes the payload and
config blobs and the signature manifest through the upload and manifest services, so they are
verified and recorded like any push (and pass the project's push rules).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard import events
from dockyard.auth.principals import Principal, project_of
from dockyard.errors import (
    BlobUnknown,
    Denied,
    DigestInvalid,
    ManifestUnknown,
    RequestInvalid,
    ResourceExists,
    ResourceUnknown,
)
from dockyard.oci import mediatypes as mt
from dockyard.oci.digests import algorithm_of, digest_of, looks_like_digest, parse_digest
from dockyard.oci.names import is_valid_name
from dockyard.scan import cosign
from dockyard.services.access import AccessService
from dockyard.services.blobs import BlobService
from dockyard.services.manifests import ManifestService
from dockyard.services.projects import visible_project
from dockyard.services.uploads import UploadService
from dockyard.storage.blobstore import BlobStore
from dockyard.store import accounts, limits
from dockyard.store import manifests as manifest_rows
from dockyard.store import trusted_keys as key_rows
from dockyard.store.db import Database

KEY_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{limits.KEY_NAME - 1}}}")
KEY_NAME_RULE = f"letters, digits, '.', '_' or '-', starting with a letter or digit, at most {limits.KEY_NAME}"


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    name: str
    fingerprint: str
    key: cosign.PublicKey


@dataclass(frozen=True, slots=True)
class SignatureView:
    """One signature (one simple-signing layer) of an image, and whether it verifies."""

    source: str  # "tag" (the sha256-<hex>.sig manifest) or "referrer" (OCI 1.1, by subject)
    manifest: str  # the signature manifest's digest
    tag: str | None
    layer: str  # the payload blob's digest
    docker_reference: str | None
    verified: bool
    key: str | None  # the trusted key it verifies with
    fingerprint: str | None
    reason: str | None  # why it does not verify
    signature: str | None
    annotations: tuple[str, ...]  # the layer's other annotation names (certificate, chain, bundle)

    @property
    def has_bundle(self) -> bool:
        return cosign.BUNDLE_ANNOTATION in self.annotations

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "manifest": self.manifest, "tag": self.tag, "layer": self.layer,
                "docker_reference": self.docker_reference, "verified": self.verified, "key": self.key,
                "fingerprint": self.fingerprint, "reason": self.reason, "signature": self.signature,
                "annotations": list(self.annotations), "rekor_bundle": self.has_bundle}


def key_view(key: key_rows.TrustedKey) -> dict[str, Any]:
    return {"name": key.name, "fingerprint": key.fingerprint, "public_key": key.public_key,
            "created_at": key.created_at.isoformat(), "created_by": key.created_by}


class _Unverified(Exception):
    """A layer that cannot count as a signature of the image; the message says why."""


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class SignatureService:
    def __init__(self, db: Database, store: BlobStore, manifests: ManifestService, *, blobs: BlobService,
                 uploads: UploadService, access: AccessService, registry_host: str) -> None:
        self.db = db
        self.store = store
        self.manifests = manifests
        self.blobs = blobs
        self.uploads = uploads
        self.access = access
        self.registry_host = registry_host  # the docker-reference's registry in payloads signed here

    # -- finding and verifying -----------------------------------------------------------------

    async def signatures(self, repository: str, digest: str) -> list[SignatureView]:
        """Every signature of the image, each verified against the project's trusted keys."""
        return await self.verify_with(repository, digest, await self.trusted_keys(project_of(repository)))

    async def is_signed_by_trusted_key(self, repository: str, digest: str) -> bool:
        return any(view.verified for view in await self.signatures(repository, digest))

    async def trusted_keys(self, project: str) -> list[VerifyingKey]:
        async with self.db.read() as conn:
            found = await accounts.find_project(conn, project)
            rows = [] if found is None else await key_rows.keys_of(conn, found.id)
        return [VerifyingKey(r.name, r.fingerprint, cosign.load_public_key(r.public_key.encode())) for r in rows]

    async def verify_with(self, repository: str, digest: str, keys: Sequence[VerifyingKey]) -> list[SignatureView]:
        """Every signature of the image, each verified against ``keys`` (the first that verifies)."""
        parse_digest(digest)
        views = []
        for source, manifest_digest, tag, body in await self._signature_manifests(repository, digest):
            try:
                layers = cosign.parse_signature_manifest(body).layers
            except cosign.PayloadInvalid:
                continue
            for layer in layers:
                views.append(await self._check(repository, digest, keys, source, manifest_digest, tag, layer))
        return views

    async def _signature_manifests(self, repository: str, digest: str) -> list[tuple[str, str, str | None, bytes]]:
        """(source, manifest digest, tag, body) of the .sig tag's manifest and the signature referrers."""
        found: list[tuple[str, str, str | None, bytes]] = []
        tag = cosign.signature_tag(digest)
        try:
            tagged = await self.manifests.get(repository, tag)
            found.append(("tag", tagged.digest, tag, tagged.content))
        except ManifestUnknown:
            pass
        async with self.db.read() as conn:
            referrers = await manifest_rows.referrers(conn, repository, digest, cosign.SIGNATURE_ARTIFACT_TYPE)
        for ref in referrers:
            if any(ref.digest == seen[1] for seen in found):
                continue
            try:
                stored = await self.manifests.get(repository, ref.digest)
            except ManifestUnknown:  # deleted since the listing
                continue
            found.append(("referrer", stored.digest, None, stored.content))
        return found

    async def _check(self, repository: str, digest: str, keys: Sequence[VerifyingKey], source: str,
                     manifest_digest: str, tag: str | None, layer: cosign.SignatureLayer) -> SignatureView:
        others = tuple(sorted(a for a in layer.annotations if a != cosign.SIGNATURE_ANNOTATION))
        reference = None
        try:
            if layer.signature is None:
                raise _Unverified(f"the layer has no {cosign.SIGNATURE_ANNOTATION} annotation")
            data = await self._payload(repository, layer)
            try:
                claim = cosign.parse_payload(data)
            except cosign.PayloadInvalid as exc:
                raise _Unverified(f"not a cosign payload: {exc}") from None
            reference = claim.docker_reference
            if claim.digest != digest:
                raise _Unverified(f"the payload signs {claim.digest[:80]}, not this image")
            if not keys:
                project = project_of(repository)
                raise _Unverified(f"project {project!r} trusts no key: add one with `dockyard key add` "
                                  f"or POST /api/v1/projects/{project}/keys")
            key = next((k for k in keys if cosign.verify(k.key, data, layer.signature)), None)
            if key is None:
                raise _Unverified(f"no trusted key verifies it (tried {', '.join(k.name for k in keys)})")
        except _Unverified as exc:
            return SignatureView(source, manifest_digest, tag, layer.digest, reference, False, None, None,
                                 str(exc), layer.signature, others)
        return SignatureView(source, manifest_digest, tag, layer.digest, reference, True, key.name,
                             key.fingerprint, None, layer.signature, others)

    async def _payload(self, repository: str, layer: cosign.SignatureLayer) -> bytes:
        """The payload blob, read from the repository and checked against the layer's digest."""
        if layer.size > cosign.MAX_PAYLOAD_BYTES:
            raise _Unverified(f"the payload is {layer.size} bytes, more than {cosign.MAX_PAYLOAD_BYTES}")
        try:
            parse_digest(layer.digest)
            location = await self.blobs.locate(repository, layer.digest)
        except (BlobUnknown, DigestInvalid) as exc:
            # Storage that does not answer is raised (503): "unsigned" would be a wrong answer.
            raise _Unverified(f"the payload blob {layer.digest[:80]} cannot be read: {exc.message}") from None
        if location.size > cosign.MAX_PAYLOAD_BYTES:
            raise _Unverified(f"the payload is {location.size} bytes, more than {cosign.MAX_PAYLOAD_BYTES}")
        data = b"".join([chunk async for chunk in self.store.read(location)])
        if digest_of(data, algorithm_of(layer.digest)) != layer.digest:
            raise _Unverified(f"the payload blob does not have the digest {layer.digest}")
        return data

    # -- signing -------------------------------------------------------------------------------

    async def resolve(self, repository: str, reference: str) -> str:
        """The digest a tag or digest names in the repository (MANIFEST_UNKNOWN if none)."""
        return (await self.manifests.get(repository, reference)).digest

    async def sign(self, repository: str, reference: str, private_key: cosign.PrivateKey, *,
                   referrer: bool = False, registry_host: str | None = None) -> str:
        """Sign the image as cosign does; the signature manifest's digest.

        By default the signature is a new layer of the ``sha256-<hex>.sig`` manifest (created if
        missing); a signature by the same key of the same payload already there is kept instead
        (cosign's duplicate rule). With ``referrer``, a manifest of its own whose subject is the
        image (cosign's OCI 1.1 form). Two signers adding layers at the same moment may lose one
        of the two layers, as with cosign: sign again. ``registry_host`` is the registry name the
        payload's docker-reference gives (default: this registry's, from the configuration).
        """
        image = await self.manifests.get(repository, reference)
        data = cosign.payload(image.digest, f"{registry_host or self.registry_host}/{repository}")
        layer = cosign.new_layer(data, cosign.sign(private_key, data))
        public = private_key.public_key()
        layers: list[cosign.SignatureLayer] = []
        tag = cosign.signature_tag(image.digest)
        if not referrer:
            try:
                existing = await self.manifests.get(repository, tag)
                layers = list(cosign.parse_signature_manifest(existing.content).layers)
            except ManifestUnknown:
                existing = None
            except cosign.PayloadInvalid:
                raise RequestInvalid(f"the tag {tag} holds something that is not a signature manifest: "
                                     "delete it or sign with --referrer") from None
            if existing is not None and any(cosign.is_duplicate(old, layer, lambda s: cosign.verify(public, data, s))
                                            for old in layers):
                return existing.digest
        layers.append(layer)
        config = cosign.signature_config(layers)
        await self.uploads.push(repository, layer.digest, _once(data))
        await self.uploads.push(repository, digest_of(config), _once(config))
        if referrer:
            subject = {"mediaType": image.media_type, "size": len(image.content), "digest": image.digest}
            body = cosign.signature_manifest(layers, config, subject=subject)
            return (await self.manifests.put(repository, digest_of(body), body, mt.OCI_MANIFEST, [])).digest
        body = cosign.signature_manifest(layers, config)
        return (await self.manifests.put(repository, tag, body, mt.OCI_MANIFEST, [])).digest

    # -- as a caller sees it (API and CLI) -----------------------------------------------------

    async def signatures_of(self, actor: Principal, repository: str, reference: str) -> dict[str, Any]:
        """Who signed the image, with which key, and whether each signature verifies (pull access)."""
        if not is_valid_name(repository) or "pull" not in await self.access.actions_on(actor, repository):
            raise ResourceUnknown(f"repository {repository[:300]!r} not found", detail={"repository": repository[:300]})
        digest = parse_digest(reference) if looks_like_digest(reference) else await self.resolve(repository, reference)
        views = await self.signatures(repository, digest)
        return {"repository": repository, "digest": digest, "signed": any(v.verified for v in views),
                "signatures": [v.to_json() for v in views]}

    async def _project(self, actor: Principal, name: str, *, change: bool = False) -> accounts.Project:
        project, held = await visible_project(self.db, self.access, actor, name)
        if change and "manage_settings" not in held:
            raise Denied(f"changing the trusted keys of project {name!r} needs the admin role there")
        if not held:
            raise Denied(f"reading the trusted keys of project {name!r} needs a role there")
        return project

    async def list_keys(self, actor: Principal, project: str) -> list[dict[str, Any]]:
        found = await self._project(actor, project)
        async with self.db.read() as conn:
            return [key_view(k) for k in await key_rows.keys_of(conn, found.id)]

    async def add_key(self, actor: Principal, project: str, name: object, public_key: object) -> dict[str, Any]:
        """Trust a PEM public key (ECDSA P-256) for the project's signatures, under ``name``."""
        found = await self._project(actor, project, change=True)
        if not isinstance(name, str) or not KEY_NAME.fullmatch(name):
            raise RequestInvalid(f"a key name is {KEY_NAME_RULE} characters", detail={"field": "name"})
        if not isinstance(public_key, str):
            raise RequestInvalid("public_key must be the PEM text of the public key (-----BEGIN PUBLIC KEY-----…)",
                                 detail={"field": "public_key"})
        key = cosign.load_public_key(public_key.encode())
        pem, fingerprint = cosign.public_key_pem(key), cosign.fingerprint(key)
        async with self.db.write() as conn:
            same = next((k for k in await key_rows.keys_of(conn, found.id) if k.fingerprint == fingerprint), None)
            if same is not None and same.name != name:
                raise ResourceExists(f"project {found.name!r} trusts this key already, as {same.name!r}")
            if same is not None or not await key_rows.add(conn, found.id, name, pem, fingerprint, actor.name or None):
                raise ResourceExists(f"project {found.name!r} has a key named {name!r} already: remove it first "
                                     "or choose another name")
            await events.record(conn, events.Change("signing_key.added", project=found.name, target=name,
                                                    details={"fingerprint": fingerprint}))
            added = next(k for k in await key_rows.keys_of(conn, found.id) if k.name == name)
        return key_view(added)

    async def remove_key(self, actor: Principal, project: str, name: str) -> None:
        found = await self._project(actor, project, change=True)
        if not KEY_NAME.fullmatch(name):  # no such key can exist: no query with a name no column holds
            raise ResourceUnknown(f"project {found.name!r} has no trusted key named {name[:100]!r}")
        async with self.db.write() as conn:
            old = next((k for k in await key_rows.keys_of(conn, found.id) if k.name == name), None)
            if old is None or not await key_rows.remove(conn, found.id, name):
                raise ResourceUnknown(f"project {found.name!r} has no trusted key named {name[:100]!r}")
            await events.record(conn, events.Change("signing_key.removed", project=found.name, target=name,
                                                    details={"fingerprint": old.fingerprint}))
