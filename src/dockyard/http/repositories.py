"""``/api/v1/repositories``: deleting a whole repository (its storage is freed by GC)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from dockyard.auth.principals import Principal
from dockyard.http.api import Operation
from dockyard.services.repositories import RepositoryService

OPERATIONS: tuple[Operation, ...] = (
    Operation("DELETE", "/api/v1/repositories/{name:path}", "delete_repository",
              "Delete a repository with its tags and manifests (maintainer role); garbage collection frees "
              "its blobs after gc.grace_period. Refused (403) while an immutable rule protects one of its tags.",
              status=204),
)


class RepositoryApi:
    operations = OPERATIONS

    def __init__(self, repositories: RepositoryService) -> None:
        self.repositories = repositories

    async def _delete_repository(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        await self.repositories.delete(who, r.path_params["name"])
