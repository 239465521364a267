"""What a scan finds, as plain records: the inventory of an image, its findings, its vulnerabilities.

These records cross every layer (scanner → store as JSON → API, CLI and policy), so each has a
``to_json`` and a ``from_json`` that round-trip exactly. A secret's value never enters a record:
``SecretFinding.masked`` holds at most its first four characters (``mask``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCANNER_VERSION = "dockyard-scan/1"  # bump when the same image would now give a different inventory

SEVERITIES = ("critical", "high", "medium", "low", "unknown")  # most to least severe
SEVERITY_RANK = {name: len(SEVERITIES) - i for i, name in enumerate(SEVERITIES)}  # critical 5 ... unknown 1


def at_least(severity: str, threshold: str) -> bool:
    """Whether ``severity`` is ``threshold`` or worse ("unknown" is below "low")."""
    return SEVERITY_RANK.get(severity, 1) >= SEVERITY_RANK[threshold]


def mask(secret: str) -> str:
    """The only form of a secret that leaves the scanner: at most its first four characters."""
    shown = secret[:4] if len(secret) > 8 else secret[:1] if secret else ""
    return f"{shown}****"


@dataclass(frozen=True, slots=True)
class Package:
    """One installed package: where it was read, and in which layer it appeared."""

    name: str
    version: str  # as the ecosystem writes it (dpkg: [epoch:]upstream[-revision]; rpm: [epoch:]version-release)
    type: str  # the purl type: "deb", "apk", "rpm", "pypi", "npm", "golang"
    purl: str
    layer: str  # digest of the layer that installed this version
    path: str  # the file it was read from: "var/lib/dpkg/status", ".../METADATA", ...
    source: str | None = None  # the source package (dpkg ``Source:``, rpm SOURCERPM's name, apk origin)
    source_version: str | None = None
    arch: str | None = None
    licenses: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__slots__}
        data["licenses"] = list(self.licenses)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Package:
        return cls(**{**data, "licenses": tuple(data.get("licenses", ()))})


@dataclass(frozen=True, slots=True)
class Distro:
    """The distribution from ``etc/os-release`` (``usr/lib/os-release`` when that is absent)."""

    id: str  # ID: "debian", "ubuntu", "alpine", "rhel", "rocky", "almalinux", "fedora"
    version_id: str | None  # VERSION_ID: "12", "3.18.4", "9.3"
    pretty_name: str | None = None
    codename: str | None = None  # VERSION_CODENAME: "bookworm"

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Distro:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Inventory:
    """Every package installed in an image's final filesystem, and what could not be read."""

    distro: Distro | None
    packages: tuple[Package, ...]
    notes: tuple[str, ...] = ()  # e.g. an rpm BerkeleyDB database that is not read, and why

    def to_json(self) -> dict[str, Any]:
        return {"distro": self.distro.to_json() if self.distro else None,
                "packages": [p.to_json() for p in self.packages], "notes": list(self.notes)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Inventory:
        distro = Distro.from_json(data["distro"]) if data.get("distro") else None
        return cls(distro, tuple(Package.from_json(p) for p in data.get("packages", ())),
                   tuple(data.get("notes", ())))


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """A credential found in a layer file or in the image config; ``masked`` is all that is kept of it."""

    layer: str  # the layer digest; the config digest for a finding in the image config
    path: str  # the file's path in the layer; "config:Env", "config:Labels", "config:Cmd", "config:history"
    rule: str  # "aws-access-key-id", "private-key", "github-token", "netrc-password", ...
    line: int  # 1-based line in the file (for the config: the index of the entry, from 1)
    masked: str
    removed: bool = False  # deleted by a later layer's whiteout: not in the image, still downloadable

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SecretFinding:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class MalwareFinding:
    layer: str
    path: str
    signature: str  # the engine's name for it: "Eicar-Signature", "Win.Test.EICAR_HDB-1"
    removed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MalwareFinding:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Findings:
    """What the file scanners found, and what they did not look at."""

    secrets: tuple[SecretFinding, ...] = ()
    malware: tuple[MalwareFinding, ...] = ()
    files_scanned: int = 0
    skipped_large: int = 0  # over scan.secret_max_file_bytes
    skipped_binary: int = 0
    malware_engine: str | None = None  # clamd's VERSION answer; None: no malware scan configured

    def to_json(self) -> dict[str, Any]:
        return {"secrets": [s.to_json() for s in self.secrets], "malware": [m.to_json() for m in self.malware],
                "files_scanned": self.files_scanned, "skipped_large": self.skipped_large,
                "skipped_binary": self.skipped_binary, "malware_engine": self.malware_engine}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Findings:
        return cls(tuple(SecretFinding.from_json(s) for s in data.get("secrets", ())),
                   tuple(MalwareFinding.from_json(m) for m in data.get("malware", ())),
                   data.get("files_scanned", 0), data.get("skipped_large", 0), data.get("skipped_binary", 0),
                   data.get("malware_engine"))


@dataclass(frozen=True, slots=True)
class Vulnerability:
    """An advisory that affects an installed package."""

    id: str  # the advisory's OSV id: "CVE-2023-4863", "DSA-5496-1", "GHSA-…"
    aliases: tuple[str, ...]
    package: str  # the installed package's name (the binary package, for dpkg)
    ecosystem: str  # OSV's: "Debian:12", "Alpine:v3.18", "PyPI"
    installed: str
    fixed: str | None  # the lowest fixed version above the installed one, if the advisory names one
    severity: str  # one of SEVERITIES
    summary: str | None = None
    score: float | None = None  # CVSS base score, when the advisory has a vector
    purl: str = ""
    layer: str = ""

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__slots__}
        data["aliases"] = list(self.aliases)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vulnerability:
        return cls(**{**data, "aliases": tuple(data.get("aliases", ()))})

    def names(self) -> tuple[str, ...]:
        """Its id and aliases: an allow-list entry matches any of them."""
        return (self.id, *self.aliases)


@dataclass(frozen=True, slots=True)
class Analysis:
    """What reading an image's layers and config gives, before vulnerability matching."""

    inventory: Inventory
    findings: Findings = field(default_factory=Findings)

    def to_json(self) -> dict[str, Any]:
        return {"inventory": self.inventory.to_json(), "findings": self.findings.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Analysis:
        return cls(Inventory.from_json(data["inventory"]), Findings.from_json(data["findings"]))
