"""An image's inventory as a CycloneDX SBOM (JSON, spec 1.6), built with cyclonedx-python-lib.

The document describes the image (``metadata.component``: a container whose version is the image's
digest) and lists one component per installed package (``library``, with its purl, version,
licenses when the database names them, and ``dockyard:*`` properties for the layer that installed
it, the file it was read from and its source package) plus the distribution (``operating-system``).
The image depends on every component. Notes on what could not be read are ``dockyard:note``
properties of the document. The same inventory and subject give the same bytes: the serial number
is derived from them and no timestamp is written (the scan that made it records when).
"""

from __future__ import annotations

import hashlib
import json
import uuid

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import DisjunctiveLicense, License, LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from dockyard.scan.report import SCANNER_VERSION, Distro, Inventory, Package

SBOM_ARTIFACT_TYPE = "application/vnd.cyclonedx+json"
SPEC_VERSION = "1.6"
PROPERTY = "dockyard:"


def cyclonedx(inventory: Inventory, *, subject: str, name: str | None = None) -> bytes:
    """The CycloneDX JSON document of ``inventory`` for the image ``subject`` (its digest)."""
    image = Component(type=ComponentType.CONTAINER, name=name or subject, version=subject, bom_ref=subject,
                      purl=_image_purl(name, subject))
    tool = Component(type=ComponentType.APPLICATION, name="dockyard", version=SCANNER_VERSION)
    metadata = BomMetaData(component=image)
    metadata.timestamp = None  # type: ignore[assignment]  # the library omits it; the stub says datetime
    metadata.tools.components.add(tool)
    components = [_package(p, ref) for p, ref in zip(inventory.packages, _refs(inventory.packages), strict=True)]
    if inventory.distro is not None:
        components.append(_distro(inventory.distro))
    bom = Bom(components=components, metadata=metadata, serial_number=_serial(inventory, subject),
              properties=[Property(name=f"{PROPERTY}note", value=note) for note in inventory.notes])
    bom.register_dependency(image, components)
    return JsonV1Dot6(bom).output_as_string().encode()


def _package(package: Package, ref: str) -> Component:
    properties = [Property(name=f"{PROPERTY}layer", value=package.layer),
                  Property(name=f"{PROPERTY}path", value=package.path)]
    if package.source:
        properties.append(Property(name=f"{PROPERTY}source", value=package.source))
    if package.source_version:
        properties.append(Property(name=f"{PROPERTY}source-version", value=package.source_version))
    return Component(type=ComponentType.LIBRARY, name=package.name, version=package.version, bom_ref=ref,
                     purl=PackageURL.from_string(package.purl), licenses=_licenses(package.licenses),
                     properties=properties)


def _distro(distro: Distro) -> Component:
    return Component(type=ComponentType.OPERATING_SYSTEM, name=distro.id, version=distro.version_id,
                     description=distro.pretty_name, bom_ref=f"os:{distro.id}@{distro.version_id or ''}")


def _licenses(declared: tuple[str, ...]) -> list[License]:
    """One license (an SPDX id, expression or name); several: each by id or name (CycloneDX allows
    a list of licenses or one expression, not both)."""
    factory = LicenseFactory()
    if len(declared) == 1:
        return [factory.make_from_string(declared[0])]
    found: list[License] = []
    for text in declared:
        made = factory.make_from_string(text)
        found.append(DisjunctiveLicense(name=text) if isinstance(made, LicenseExpression) else made)
    return found


def _refs(packages: tuple[Package, ...]) -> list[str]:
    """A unique bom-ref per package: its purl, numbered when the same purl is installed twice."""
    seen: dict[str, int] = {}
    refs = []
    for package in packages:
        seen[package.purl] = seen.get(package.purl, 0) + 1
        refs.append(package.purl if seen[package.purl] == 1 else f"{package.purl}#{seen[package.purl]}")
    return refs


def _image_purl(name: str | None, subject: str) -> PackageURL | None:
    if not name or not subject.startswith("sha256:"):
        return None
    return PackageURL(type="oci", name=name.rsplit("/", 1)[-1].lower(), version=subject)


def _serial(inventory: Inventory, subject: str) -> uuid.UUID:
    content = json.dumps(inventory.to_json(), sort_keys=True).encode()
    return uuid.uuid5(uuid.NAMESPACE_URL, f"dockyard:sbom:{subject}:{hashlib.sha256(content).hexdigest()}")
