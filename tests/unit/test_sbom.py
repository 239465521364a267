"""The CycloneDX SBOM of an inventory: valid against the 1.6 schema, complete and deterministic."""

from __future__ import annotations

import json
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from dockyard.scan.inventory import PackageVisitor
from dockyard.scan.layers import walk
from dockyard.scan.report import Inventory, Package
from dockyard.scan.sbom import SBOM_ARTIFACT_TYPE, cyclonedx
from tests.unit.test_scan_layers import Symlink, layer

DATA = Path(__file__).parent.parent / "data" / "scan"
SUBJECT = "sha256:" + "5" * 64


def minbase_with_extras() -> Inventory:
    """The real minbase status and os-release, plus apk, rpm, Python and npm packages with licenses."""
    image = layer({
        "usr/lib/os-release": (DATA / "debian/usr/lib/os-release").read_bytes(),
        "etc/os-release": Symlink("../usr/lib/os-release"),
        "var/lib/dpkg/status": (DATA / "debian/var/lib/dpkg/status").read_bytes(),
        "lib/apk/db/installed": (DATA / "alpine/lib/apk/db/installed").read_bytes(),
        "var/lib/rpm/rpmdb.sqlite": (DATA / "rpm/rpmdb.sqlite").read_bytes(),
        "var/lib/rpm/Packages": b"\x00" * 4096,
        "usr/lib/python2.7/wsgiref.egg-info": (DATA / "python/wsgiref.egg-info").read_bytes(),
        "app/node_modules/@types/ms/package.json": (DATA / "npm/node_modules/@types/ms/package.json").read_bytes(),
    })
    visitor = PackageVisitor()
    return visitor.inventory(walk([image], [visitor]))


def test_the_document_is_valid_cyclonedx_1_6_and_lists_every_package() -> None:
    inventory = minbase_with_extras()

    document = cyclonedx(inventory, subject=SUBJECT, name="library/debian")

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(document.decode()) is None
    bom = json.loads(document)
    assert (bom["bomFormat"], bom["specVersion"]) == ("CycloneDX", "1.6")
    assert bom["metadata"]["component"] == {
        "bom-ref": SUBJECT, "name": "library/debian", "type": "container", "version": SUBJECT,
        "purl": f"pkg:oci/debian@{SUBJECT}"}
    libraries = [c for c in bom["components"] if c["type"] == "library"]
    assert sorted(c["purl"] for c in libraries) == sorted(p.purl for p in inventory.packages)
    assert len(libraries) == 88 + 6 + 3 + 1 + 1
    [system] = [c for c in bom["components"] if c["type"] == "operating-system"]
    assert (system["name"], system["version"]) == ("debian", "12")
    [image] = [d for d in bom["dependencies"] if d["ref"] == SUBJECT]
    assert len(image["dependsOn"]) == len(bom["components"])
    assert [p["name"] for p in bom["properties"]] == ["dockyard:note"]
    assert "BerkeleyDB" in bom["properties"][0]["value"]
    assert SBOM_ARTIFACT_TYPE == "application/vnd.cyclonedx+json"


def test_a_component_carries_its_layer_path_source_and_licenses() -> None:
    bom = json.loads(cyclonedx(minbase_with_extras(), subject=SUBJECT))
    by_name = {c["name"]: c for c in bom["components"]}

    assert by_name["libtiny"]["properties"] == [
        {"name": "dockyard:layer", "value": by_name["libtiny"]["properties"][0]["value"]},
        {"name": "dockyard:path", "value": "var/lib/rpm/rpmdb.sqlite"},
        {"name": "dockyard:source", "value": "tiny-suite"},
        {"name": "dockyard:source-version", "value": "0.9-7"}]
    assert by_name["libtiny"]["licenses"] == [{"license": {"id": "BSD-3-Clause"}}]
    assert by_name["epoch-tool"]["licenses"] == [{"expression": "GPL-2.0-or-later AND MIT"}]
    assert by_name["wsgiref"]["licenses"] == [{"license": {"name": "PSF or ZPL"}}]
    assert by_name["@types/ms"]["purl"] == "pkg:npm/%40types/ms@0.7.34"
    assert "licenses" not in by_name["bash"]  # dpkg's status does not name licenses
    assert "component" in bom["metadata"]
    assert bom["metadata"]["component"]["name"] == SUBJECT  # no repository name given


def test_the_same_inventory_gives_the_same_bytes_and_another_a_new_serial() -> None:
    inventory = minbase_with_extras()
    first = cyclonedx(inventory, subject=SUBJECT)
    assert cyclonedx(inventory, subject=SUBJECT) == first
    other = cyclonedx(Inventory(inventory.distro, inventory.packages[1:], inventory.notes), subject=SUBJECT)
    assert json.loads(other)["serialNumber"] != json.loads(first)["serialNumber"]
    assert "timestamp" not in json.loads(first)["metadata"]


def test_the_same_purl_installed_twice_gets_two_bom_refs() -> None:
    twice = tuple(Package("ms", "2.1.3", "npm", "pkg:npm/ms@2.1.3", SUBJECT, path, licenses=("MIT", "Apache-2.0"))
                  for path in ("a/node_modules/ms/package.json", "b/node_modules/ms/package.json"))
    document = cyclonedx(Inventory(None, twice), subject=SUBJECT)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(document.decode()) is None
    bom = json.loads(document)
    assert [c["bom-ref"] for c in bom["components"]] == ["pkg:npm/ms@2.1.3", "pkg:npm/ms@2.1.3#2"]
    assert bom["components"][0]["licenses"] == [{"license": {"id": "Apache-2.0"}}, {"license": {"id": "MIT"}}]
