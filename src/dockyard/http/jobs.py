"""``/api/v1/jobs``: recent runs of the background jobs (system admins only)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from dockyard.auth.principals import Principal
from dockyard.errors import RequestInvalid
from dockyard.http.api import Operation
from dockyard.services.jobs import JobsService
from dockyard.store.db import Database

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/api/v1/jobs", "list_job_runs",
              "Recent job runs, newest first: job, node, start, end, outcome, items examined and removed, bytes "
              "freed (system admin).", query=("job", "limit")),
)


class JobsApi:
    operations = OPERATIONS

    def __init__(self, db: Database) -> None:
        self.jobs = JobsService(db)

    async def _list_job_runs(self, r: Request, who: Principal, b: dict[str, Any]) -> Any:
        q = r.query_params
        return await self.jobs.recent_runs(who, job=q.get("job") or None, limit=_limit(q.get("limit")))


def _limit(text: str | None) -> int:
    if text is None or text == "":
        return 50
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise RequestInvalid("limit must be an integer between 1 and 1000")
    return int(text)
