"""Storage usage reports: per project and per repository, exclusive and shared bytes.

What counts is defined once, in ``store/usage.py`` (the quota checks count the same way): each
blob once per project, plus every manifest row. A repository's ``exclusive_bytes`` are its
manifests and the blobs no other repository links; its ``shared_bytes`` the blobs another
repository (of this or another project) links too. A project's ``exclusive_bytes`` are its
manifests and the blobs no other project links; its ``shared_bytes`` the blobs another project
links too; ``used_bytes`` (what the quota is checked against) is their sum.
"""

from __future__ import annotations

from typing import Any

from dockyard.auth.principals import Principal
from dockyard.errors import Denied, ResourceUnknown
from dockyard.services.accounts import AccountsService
from dockyard.store import limits
from dockyard.store import usage as usage_rows
from dockyard.store.db import Database
from dockyard.store.usage import ProjectUsage


def usage_view(report: ProjectUsage) -> dict[str, Any]:
    """The report as JSON: the shape of ``GET /api/v1/projects/{project}/usage`` and ``--json``."""
    return {
        "project": report.project, "quota_bytes": report.quota_bytes, "used_bytes": report.used_bytes,
        "exclusive_bytes": report.exclusive_bytes, "shared_bytes": report.shared_bytes,
        "manifest_bytes": report.manifest_bytes,
        "repositories": [{"name": r.name, "used_bytes": r.exclusive_bytes + r.shared_bytes,
                          "exclusive_bytes": r.exclusive_bytes, "shared_bytes": r.shared_bytes,
                          "manifest_bytes": r.manifest_bytes} for r in report.repositories],
    }


class UsageService:
    def __init__(self, db: Database, accounts: AccountsService) -> None:
        self.db = db
        self.accounts = accounts

    async def report(self, project: str) -> ProjectUsage:
        """The figures for ``project``, without an access check (jobs, tests, the CLI's admin)."""
        async with self.db.read() as conn:
            conn = await usage_rows.consistent(conn)
            quota = await usage_rows.quota_of(conn, project)
            return await usage_rows.project_report(conn, project, quota)

    async def project(self, actor: Principal, project: str) -> dict[str, Any]:
        """The project's report for a member, a reader of a public project, or a system admin;
        NOT_FOUND for a project the caller cannot see (as if it did not exist)."""
        if not isinstance(project, str) or not limits.can_hold(project, limits.PROJECT_NAME):
            raise ResourceUnknown(f"project {str(project)[:100]!r} not found")
        if not actor.is_system_admin:
            await self.accounts.get_project(actor, project)  # NOT_FOUND unless the caller sees it
        report = await self.report(project)
        if actor.is_system_admin and not report.repositories and not await self._has_row(project):
            raise ResourceUnknown(f"project {project[:100]!r} not found", detail={"project": project[:100]})
        return usage_view(report)

    async def all_projects(self, actor: Principal) -> list[dict[str, Any]]:
        """Every project's report (system admin)."""
        if not actor.is_system_admin:
            raise Denied("only a system admin may see every project's usage; ask for one project instead")
        async with self.db.read() as conn:
            conn = await usage_rows.consistent(conn)
            projects = await usage_rows.project_names(conn)
            return [usage_view(await usage_rows.project_report(conn, name, quota)) for name, quota in projects]

    async def _has_row(self, project: str) -> bool:
        async with self.db.read() as conn:
            return await usage_rows.project_exists(conn, project)
