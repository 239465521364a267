"""``/api/v1`` usage reports: what each project and repository stores, exclusive and shared."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from dockyard.auth.principals import Principal
from dockyard.http.api import Operation
from dockyard.services.usage import UsageService

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/api/v1/projects/{project}/usage", "project_usage",
              "A project's storage usage and quota, and per repository the bytes exclusive to it and "
              "shared with others (project members, readers of a public project, system admins)."),
    Operation("GET", "/api/v1/usage", "all_usage", "Every project's storage usage (system admin)."),
)


class UsageApi:
    operations = OPERATIONS

    def __init__(self, usage: UsageService) -> None:
        self.usage = usage

    async def _project_usage(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return await self.usage.project(who, r.path_params["project"])

    async def _all_usage(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        return {"projects": await self.usage.all_projects(who)}
