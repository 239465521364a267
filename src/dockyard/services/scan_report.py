"""The scan report of one image (or of an index, with one per child): what the API, ``dockyard scan``
and the admission rules read. Built from a ``scans`` row; secrets in it are masked already."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dockyard.scan.matching import ecosystem_of
from dockyard.scan.report import (
    SEVERITIES,
    Distro,
    Findings,
    Inventory,
    MalwareFinding,
    Package,
    SecretFinding,
    Vulnerability,
)
from dockyard.store.scans import ScanRow

DONE = "done"
NOT_AN_IMAGE = "not-an-image"  # a signature, an SBOM, an artifact without tar layers: nothing to scan


def count_by_severity(vulnerabilities: tuple[Vulnerability, ...]) -> dict[str, int]:
    summary = dict.fromkeys(SEVERITIES, 0)
    for vulnerability in vulnerabilities:
        summary[vulnerability.severity if vulnerability.severity in summary else "unknown"] += 1
    return summary


@dataclass(frozen=True, slots=True)
class ScanReport:
    """A scan's result. ``status``: "done", "queued", "running", "failed" (``error`` says why),
    "not-an-image", or for an index the worst of its children's ("done" when all are)."""

    digest: str
    status: str
    packages: tuple[Package, ...] = ()
    vulnerabilities: tuple[Vulnerability, ...] = ()
    secrets: tuple[SecretFinding, ...] = ()
    malware: tuple[MalwareFinding, ...] = ()
    scanner_version: str | None = None
    vulndb_revision: int | None = None
    scanned_at: datetime | None = None
    summary: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))
    children: tuple[ScanReport, ...] = ()
    platform: str | None = None  # "linux/arm64/v8" for a child of an index
    distro: Distro | None = None
    notes: tuple[str, ...] = ()
    files_scanned: int = 0
    skipped_large: int = 0
    skipped_binary: int = 0
    malware_engine: str | None = None
    error: str | None = None

    @property
    def is_done(self) -> bool:
        return self.status == DONE

    @classmethod
    def from_row(cls, row: ScanRow, *, platform: str | None = None) -> ScanReport:
        if row.status != DONE or row.inventory is None:
            return cls(row.digest, row.status, platform=platform, error=row.error, scanned_at=row.finished_at)
        inventory = Inventory.from_json(row.inventory)
        findings = Findings.from_json(row.findings or {})
        vulnerabilities = tuple(Vulnerability.from_json(v) for v in row.vulnerabilities or ())
        return cls(row.digest, DONE, inventory.packages, vulnerabilities, findings.secrets, findings.malware,
                   row.scanner_version, row.vulndb_revision, row.finished_at, count_by_severity(vulnerabilities),
                   platform=platform, distro=inventory.distro, notes=inventory.notes,
                   files_scanned=findings.files_scanned, skipped_large=findings.skipped_large,
                   skipped_binary=findings.skipped_binary, malware_engine=findings.malware_engine)

    @classmethod
    def of_index(cls, digest: str, children: tuple[ScanReport, ...]) -> ScanReport:
        """An index's report: its children's, their severities added up."""
        summary = dict.fromkeys(SEVERITIES, 0)
        for child in children:
            for severity, count in child.summary.items():
                summary[severity] = summary.get(severity, 0) + count
        order = ("failed", "running", "queued")
        status = next((s for s in order if any(c.status == s for c in children)), DONE)
        scanned = [c.scanned_at for c in children if c.scanned_at is not None]
        return cls(digest, status, summary=summary, children=children,
                   scanned_at=max(scanned) if scanned and status == DONE else None)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "digest": self.digest, "status": self.status,
            "scanned_at": self.scanned_at.isoformat() if self.scanned_at else None,
            "scanner_version": self.scanner_version,
            "vulndb_revision": self.vulndb_revision,
            "summary": dict(self.summary),
        }
        if self.platform is not None:
            data["platform"] = self.platform
        if self.error is not None:
            data["error"] = self.error
        if self.children:
            data["children"] = [child.to_json() for child in self.children]
            return data
        data.update({
            "distro": self.distro.to_json() if self.distro else None,
            "packages": [_package_json(p, self.distro) for p in self.packages],
            "vulnerabilities": [_vulnerability_json(v) for v in self.vulnerabilities],
            "secrets": [s.to_json() for s in self.secrets],
            "malware": [m.to_json() for m in self.malware],
            "files_scanned": self.files_scanned, "skipped_large": self.skipped_large,
            "skipped_binary": self.skipped_binary, "malware_engine": self.malware_engine,
            "notes": list(self.notes),
        })
        return data


def _package_json(package: Package, distro: Distro | None) -> dict[str, Any]:
    return {"name": package.name, "version": package.version, "type": package.type,
            "ecosystem": ecosystem_of(package, distro), "purl": package.purl, "layer": package.layer,
            "path": package.path, "source": package.source, "licenses": list(package.licenses)}


def _vulnerability_json(vulnerability: Vulnerability) -> dict[str, Any]:
    return {"id": vulnerability.id, "aliases": list(vulnerability.aliases), "package": vulnerability.package,
            "ecosystem": vulnerability.ecosystem, "installed": vulnerability.installed,
            "fixed": vulnerability.fixed, "severity": vulnerability.severity, "score": vulnerability.score,
            "summary": vulnerability.summary, "purl": vulnerability.purl, "layer": vulnerability.layer}
