"""Deleting a whole repository: its tags, manifests and links at once, its blobs' bytes through GC.

Maintainers and admins of the repository's project may do it (a system admin everywhere); a caller
who cannot see the project is answered as if the repository did not exist. A repository with a
tag that an immutable rule protects is refused, naming the rule. Every blob it linked becomes a
GC candidate, due after ``gc.grace_period``: the collector frees those no other repository links.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dockyard import events
from dockyard.auth.principals import Principal, project_of
from dockyard.errors import Denied, RegistryError, ResourceUnknown
from dockyard.oci.names import is_valid_name
from dockyard.policy.immutability import describe, matching_rule
from dockyard.services.accounts import AccountsService
from dockyard.store import accounts as account_rows
from dockyard.store import gc as gc_rows
from dockyard.store import policies, repositories
from dockyard.store.clock import utcnow
from dockyard.store.db import Database


class RepositoryService:
    def __init__(self, db: Database, accounts: AccountsService, *, grace_period: timedelta) -> None:
        self.db = db
        self.accounts = accounts
        self.grace_period = grace_period

    async def delete(self, actor: Principal, name: str) -> dict[str, Any]:
        """Delete repository ``name``; what it held (tags, manifests, blobs) in numbers."""
        unknown = ResourceUnknown(f"repository {name[:300]!r} not found", detail={"repository": name[:300]})
        if not is_valid_name(name):
            raise unknown
        project_id = await self._check_access(actor, name, unknown)
        async with self.db.write() as conn:
            # Locked first: a push holding the repository finishes before, and its rows go too.
            repo_id = await repositories.lock_for_delete(conn, name)
            if repo_id is None:
                raise unknown
            tags = await repositories.tag_names(conn, repo_id)
            rules = [] if project_id is None else await policies.immutable_rules_of(conn, project_id)
            for tag in tags:
                rule = matching_rule(rules, name, tag)
                if rule is not None:
                    raise Denied(f"repository {name} has tag {tag!r}, which {describe(rule)} protects: a repository "
                                 "with an immutable tag cannot be deleted (delete the rule first)",
                                 detail={"tag": tag, "rule": rule.id})
            digests = await repositories.linked_digests(conn, repo_id)
            manifests = await repositories.manifest_count(conn, repo_id)
            await repositories.delete(conn, repo_id)
            await gc_rows.add_candidates(conn, [gc_rows.Candidate(gc_rows.BLOB, None, d) for d in digests],
                                         reason="repository.deleted", due_at=utcnow() + self.grace_period)
            await events.record(conn, events.RepositoryDeleted(name, len(tags), manifests, len(digests)))
        return {"repository": name, "tags": len(tags), "manifests": manifests, "blobs": len(digests)}

    async def _check_access(self, actor: Principal, name: str, unknown: RegistryError) -> int | None:
        """The project's id (None: a repository outside any project, which only a system admin
        may delete); Denied below the maintainer role, NOT_FOUND if the caller cannot see it."""
        project = project_of(name)
        if actor.is_system_admin:
            async with self.db.read() as conn:
                found = await account_rows.find_project(conn, project)
            return None if found is None else found.id
        try:
            found, held = await self.accounts.project_and_permissions(actor, project)
        except ResourceUnknown:
            raise unknown from None
        if "delete" not in held:
            raise Denied(f"deleting a repository needs the maintainer role (or admin) in project {project!r}")
        return found.id
