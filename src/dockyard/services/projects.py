"""Looking up a project as a caller sees it: one rule for every service that acts on projects."""

from __future__ import annotations

from dockyard.auth.authorize import permissions
from dockyard.auth.principals import Permission, Principal
from dockyard.errors import ResourceUnknown
from dockyard.services.access import AccessService
from dockyard.store import accounts, limits
from dockyard.store.db import Database


async def visible_project(db: Database, access: AccessService, actor: Principal, name: str
                          ) -> tuple[accounts.Project, frozenset[Permission]]:
    """The project and what the actor holds there, if the actor may see it; else NOT_FOUND, the
    same as for a project that does not exist (DESIGN.md invariant 4). A name no column can hold
    is not found either, without a query."""
    if not isinstance(name, str) or not limits.can_hold(name, limits.PROJECT_NAME):
        raise ResourceUnknown(f"project {str(name)[:100]!r} not found")
    async with db.read() as conn:
        project = await accounts.find_project(conn, name)
    if project is None:
        raise ResourceUnknown(f"project {name[:100]!r} not found", detail={"project": name[:100]})
    held = permissions(actor, await access.facts_of(actor, name, project.id, project.public))
    if not held and not project.public:
        raise ResourceUnknown(f"project {name[:100]!r} not found", detail={"project": name[:100]})
    return project, held
