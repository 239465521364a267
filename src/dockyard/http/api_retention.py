"""``/api/v1`` retention runs: make a plan, apply it, restore a tag a run deleted (maintainer or
above in the project; a project the caller cannot see answers 404)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from dockyard.auth.principals import Principal
from dockyard.errors import RequestInvalid
from dockyard.http.api import Operation
from dockyard.services.retention import RetentionService

OPERATIONS: tuple[Operation, ...] = (
    Operation("POST", "/api/v1/projects/{project}/retention/plan", "plan_retention",
              "Make and save a retention plan: every tag and untagged manifest, kept or removed and why, and "
              "the bytes it frees (maintainer role). Changes nothing else.", status=201),
    Operation("POST", "/api/v1/projects/{project}/retention/apply", "apply_retention",
              "Apply the plan `plan` (default: the project's latest; with none saved, plan and apply at once). "
              "Refused with 409 if the repositories changed since the plan was made (maintainer role).",
              {"plan": "integer"}),
    Operation("POST", "/api/v1/repositories/{name:path}/tags/{tag}/restore", "restore_tag",
              "Bring back a tag a retention run deleted, pointing at the same digest, within "
              "retention.restore_window (maintainer role)."),
)


class RetentionApi:
    operations = OPERATIONS

    def __init__(self, retention: RetentionService) -> None:
        self.retention = retention

    async def _plan_retention(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return (await self.retention.plan(who, r.path_params["project"])).to_dict()

    async def _apply_retention(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        plan = b.get("plan")
        if plan is not None and (not isinstance(plan, int) or isinstance(plan, bool) or not 0 < plan < 2**31):
            raise RequestInvalid("plan must be a plan id (a positive integer) from `retention plan`")
        applied = await self.retention.apply(who, r.path_params["project"], plan)
        return applied.to_dict()

    async def _restore_tag(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.retention.restore(who, r.path_params["name"], r.path_params["tag"])
