"""``/api/v1`` scan reports: an image's packages, vulnerabilities, secrets (masked) and malware
(anyone who may pull the repository; docs/supply-chain.md)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from dockyard.auth.principals import Principal
from dockyard.http.api import Operation
from dockyard.services.scanning import ScanService

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/api/v1/repositories/{name:path}/manifests/{reference}/scan", "scan_report",
              "The scan report of an image (by tag or digest): packages, vulnerabilities, secrets (masked), "
              "malware, scanner and vulnerability database versions, a count per severity; an index has one "
              "per child. Scans now when there is no current result (pull access; 404 MANIFEST_UNKNOWN for "
              "an unknown reference).", pull="name"),
)


class ScanApi:
    operations = OPERATIONS

    def __init__(self, scanning: ScanService) -> None:
        self.scanning = scanning

    async def _scan_report(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return (await self.scanning.report(r.path_params["name"], r.path_params["reference"])).to_json()
