"""``/api/v1/projects/{project}/…``: a project's policies (retention, immutable tags, naming, quota).

Handlers unpack the request and call one ``PolicyService`` method, which checks the values and the
caller's rights and records the audit event.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from dockyard.auth.principals import Principal
from dockyard.http.api import Operation
from dockyard.services.policies import PolicyService

_P = "/api/v1/projects/{project}"
OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", f"{_P}/policies", "get_policies",
              "Show a project's whole policy: quota, naming rules, retention policies, immutable rules."),
    Operation("PUT", f"{_P}/retention", "set_retention",
              "Create or replace the retention policy for a repository glob (default '*'; maintainer role).",
              {"repository": "string", "keep_last": "integer", "keep_days": "integer",
               "keep_pulled_days": "integer", "keep_tags": "string", "keep_tags_invert": "boolean",
               "untagged_days": "integer", "schedule": "string"}),
    Operation("DELETE", f"{_P}/retention", "delete_retention",
              "Delete the retention policy for the repository glob ?repository= (default '*').",
              query=("repository",), status=204),
    Operation("GET", f"{_P}/immutable", "list_immutable", "List a project's immutable-tag rules."),
    Operation("POST", f"{_P}/immutable", "add_immutable",
              "Add an immutable-tag rule: a repository glob (default '*') and a tag glob (maintainer role).",
              {"repository": "string", "tag": "string"}, ("tag",), status=201),
    Operation("DELETE", f"{_P}/immutable/{{id}}", "delete_immutable", "Delete an immutable-tag rule by id.",
              status=204),
    Operation("PUT", f"{_P}/naming", "set_naming",
              "Set the regular expressions repository names and/or tags must match; null clears one, a field "
              "left out stays as it is (maintainer role).",
              {"repository": "string|null", "tag": "string|null"}),
    Operation("PUT", f"{_P}/quota", "set_quota",
              "Set the project's storage quota: a size like '10GiB', a number of bytes, or null / 'none' "
              "(system admin).",
              {"quota": "string|integer|null"}, ("quota",)),
)


class PoliciesApi:
    operations = OPERATIONS

    def __init__(self, policies: PolicyService) -> None:
        self.policies = policies

    async def _get_policies(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.policies.policy(who, r.path_params["project"])

    async def _set_retention(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.policies.set_retention(who, r.path_params["project"], b)

    async def _delete_retention(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        await self.policies.delete_retention(who, r.path_params["project"], r.query_params.get("repository"))

    async def _list_immutable(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.policies.list_immutable(who, r.path_params["project"])

    async def _add_immutable(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.policies.add_immutable(who, r.path_params["project"], b.get("repository"), b["tag"])

    async def _delete_immutable(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        await self.policies.delete_immutable(who, r.path_params["project"], r.path_params["id"])

    async def _set_naming(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.policies.set_naming(who, r.path_params["project"], b)

    async def _set_quota(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.policies.set_quota(who, r.path_params["project"], b["quota"])
