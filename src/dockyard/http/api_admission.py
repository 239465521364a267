"""``/api/v1/projects/{project}/admission`` and ``/allowlist``: a project's push and pull rules and
its vulnerability allow-list (docs/supply-chain.md, "Push and pull policies").

Handlers unpack the request and call one ``AdmissionService`` method, which checks the values
(the same checks as the policy file), the caller's rights, and records the audit event.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from dockyard.auth.principals import Principal
from dockyard.http.api import Operation
from dockyard.services.admission import AdmissionService

_P = "/api/v1/projects/{project}"
OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", f"{_P}/admission", "get_admission",
              "Show a project's push and pull rules: each check 'enforce', 'warn', or a table with mode "
              "(and severity for vulnerabilities, required for labels)."),
    Operation("PUT", f"{_P}/admission", "set_admission",
              "Replace the push and/or pull rules (a stage left out stays as it is; {} removes its rules; "
              "maintainer role). E.g. {\"push\": {\"secrets\": \"enforce\", \"vulnerabilities\": "
              "{\"severity\": \"critical\", \"mode\": \"enforce\"}}, \"pull\": {\"signed\": \"enforce\"}}.",
              {"push": "object|null", "pull": "object|null"}),
    Operation("GET", f"{_P}/allowlist", "list_allowlist",
              "List the vulnerabilities the project accepts, with reason and expiry."),
    Operation("POST", f"{_P}/allowlist", "add_allowlist",
              "Accept a vulnerability (an id or alias such as CVE-2023-4863) with a reason and an optional "
              "expiry date (the entry stops counting at its start, UTC); replaces an entry with that id "
              "(maintainer role).",
              {"id": "string", "reason": "string", "expires": "string|null"}, ("id", "reason"), status=201),
    Operation("DELETE", f"{_P}/allowlist/{{id}}", "delete_allowlist", "Remove an allow-list entry.", status=204),
)


class AdmissionApi:
    operations = OPERATIONS

    def __init__(self, admission: AdmissionService) -> None:
        self.admission = admission

    async def _get_admission(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.admission.rules(who, r.path_params["project"])

    async def _set_admission(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.admission.set_rules(who, r.path_params["project"], b.get("push"), b.get("pull"))

    async def _list_allowlist(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.admission.allowlist(who, r.path_params["project"])

    async def _add_allowlist(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.admission.allow(who, r.path_params["project"], b)

    async def _delete_allowlist(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        await self.admission.disallow(who, r.path_params["project"], r.path_params["id"])
