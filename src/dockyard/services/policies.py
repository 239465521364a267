"""Project policies as data: retention policies, immutable-tag rules, naming rules and the quota.

The API (``http/api_policies.py``), the CLI (``cli/policies.py``) and the declarative policy file
(``policy/document.py``) all change policies through these methods, which check every value
(``policy/values.py``), the caller's rights, and record each change as an audit event in the same
transaction. Who may do what:

- reading a project's policies: anyone who can see the project (else 404, as if it did not exist);
- changing retention, immutable and naming rules: the ``manage_policies`` permission (the
  maintainer and admin roles) or a system admin (else 403 DENIED);
- setting the quota: system admins only, since a quota limits what the project's own admins and
  maintainers may store.

The rules are enforced elsewhere (pushes, deletes, retention runs); this module owns how they are
stored and changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dockyard import events
from dockyard.auth.principals import Principal
from dockyard.errors import Denied, RequestInvalid, ResourceExists, ResourceUnknown
from dockyard.policy import admission, values
from dockyard.policy.checks import format_size
from dockyard.policy.document import PolicyChange, ProjectPolicy, diff
from dockyard.services.access import AccessService
from dockyard.services.projects import visible_project
from dockyard.store import accounts
from dockyard.store import admission as admission_rows
from dockyard.store import policies as rows
from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.db import Database

QUOTA_IS_FOR_SYSTEM_ADMINS = ("only a system admin may set a project's quota (it limits what the project's "
                              "own admins may store)")


def immutable_view(rule: rows.ImmutableRule) -> dict[str, Any]:
    return {"id": rule.id, "repository": rule.repository_glob, "tag": rule.tag_glob,
            "created_at": rule.created_at.isoformat(), "created_by": rule.created_by}


def retention_policy_view(policy: rows.RetentionPolicy) -> dict[str, Any]:
    return {**values.retention_view(policy.rules), "updated_at": policy.updated_at.isoformat(),
            "last_run_at": policy.last_run_at.isoformat() if policy.last_run_at else None}


class PolicyService:
    def __init__(self, db: Database, access: AccessService) -> None:
        self.db = db
        self.access = access

    async def _project(self, actor: Principal, name: str, *, change: bool = False) -> accounts.Project:
        """The project, if the actor may see it (else NOT_FOUND, as for one that does not exist);
        with ``change``, the actor must hold manage_policies there (else DENIED)."""
        project, held = await visible_project(self.db, self.access, actor, name)
        if change and "manage_policies" not in held:
            raise Denied(f"changing the policies of project {name!r} needs the maintainer or admin role there")
        return project

    # -- reading -------------------------------------------------------------------------------

    async def policy(self, actor: Principal, project: str) -> dict[str, Any]:
        """The whole policy of a project: quota, naming, retention policies, immutable rules."""
        found = await self._project(actor, project)
        async with self.db.read() as conn:
            project_rules = await rows.project_rules(conn, found.id)
            retention = await rows.retention_policies_of(conn, found.id)
            immutable = await rows.immutable_rules_of(conn, found.id)
        retention.sort(key=lambda p: p.rules.repository_glob)  # by code point on every backend's collation
        if project_rules is None:
            raise ResourceUnknown(f"project {project[:100]!r} not found")
        quota = project_rules.quota_bytes
        return {"project": found.name, "quota": quota, "quota_size": None if quota is None else format_size(quota),
                "naming": {"repository": project_rules.repository_pattern, "tag": project_rules.tag_pattern},
                "retention": [retention_policy_view(p) for p in retention],
                "immutable": [immutable_view(r) for r in immutable]}

    async def list_immutable(self, actor: Principal, project: str) -> list[dict[str, Any]]:
        return list((await self.policy(actor, project))["immutable"])

    # -- retention -----------------------------------------------------------------------------

    async def set_retention(self, actor: Principal, project: str, fields: Mapping[str, object]) -> dict[str, Any]:
        """Create or replace the project's retention policy for ``fields["repository"]`` (default ``*``)."""
        found = await self._project(actor, project, change=True)
        rules = values.retention_rules(fields)
        async with self.db.write() as conn:
            old = await _retention_rules(conn, found.id, rules.repository_glob)
            if old != rules:
                await rows.put_retention_policy(conn, found.id, rules)
                await events.record(conn, events.Change(
                    "policy.retention.set", project=found.name, target=rules.repository_glob,
                    details={"old": None if old is None else values.retention_view(old),
                             "new": values.retention_view(rules)}))
        return values.retention_view(rules)

    async def delete_retention(self, actor: Principal, project: str, repository: object) -> None:
        found = await self._project(actor, project, change=True)
        glob = values.glob("repository", "*" if repository is None else repository)
        async with self.db.write() as conn:
            old = await _retention_rules(conn, found.id, glob)
            if old is None or not await rows.delete_retention_policy(conn, found.id, glob):
                raise ResourceUnknown(f"project {found.name!r} has no retention policy for repository {glob!r}")
            await events.record(conn, events.Change("policy.retention.deleted", project=found.name, target=glob,
                                                    details={"old": values.retention_view(old)}))

    # -- immutable tags ------------------------------------------------------------------------

    async def add_immutable(self, actor: Principal, project: str, repository: object, tag: object
                            ) -> dict[str, Any]:
        found = await self._project(actor, project, change=True)
        repository_glob = values.glob("repository", "*" if repository is None else repository)
        tag_glob = values.glob("tag", tag)
        async with self.db.write() as conn:
            if not await rows.add_immutable_rule(conn, found.id, repository_glob, tag_glob, actor.name or None):
                raise ResourceExists(f"project {found.name!r} has this immutable rule already "
                                     f"(repository {repository_glob!r}, tag {tag_glob!r})")
            rule = next(r for r in await rows.immutable_rules_of(conn, found.id)
                        if (r.repository_glob, r.tag_glob) == (repository_glob, tag_glob))
            await events.record(conn, events.Change("policy.immutable.added", project=found.name,
                                                    target=f"{repository_glob}:{tag_glob}",
                                                    details={"id": rule.id, "old": None,
                                                             "new": _pair(repository_glob, tag_glob)}))
        return immutable_view(rule)

    async def delete_immutable(self, actor: Principal, project: str, rule_id: object) -> None:
        found = await self._project(actor, project, change=True)
        text = str(rule_id)
        if not text.isascii() or not text.isdigit() or len(text) > 9:
            raise ResourceUnknown(f"immutable rule {text[:40]!r} not found: give the id `immutable list` shows")
        async with self.db.write() as conn:
            rule = next((r for r in await rows.immutable_rules_of(conn, found.id) if r.id == int(text)), None)
            if rule is None or not await rows.delete_immutable_rule(conn, found.id, rule.id):
                raise ResourceUnknown(f"project {found.name!r} has no immutable rule #{text}")
            await events.record(conn, events.Change(
                "policy.immutable.deleted", project=found.name, target=f"{rule.repository_glob}:{rule.tag_glob}",
                details={"id": rule.id, "old": _pair(rule.repository_glob, rule.tag_glob), "new": None}))

    # -- naming and quota ----------------------------------------------------------------------

    async def set_naming(self, actor: Principal, project: str, changes: Mapping[str, object]) -> dict[str, Any]:
        """Set the repository and/or tag pattern: a key left out stays as it is, None clears it."""
        found = await self._project(actor, project, change=True)
        unknown = sorted(set(changes) - {"repository", "tag"})
        if unknown or not changes:
            raise RequestInvalid("naming takes repository and/or tag: a regular expression, or null to clear it",
                                 detail={"field": (unknown or ["repository"])[0]})
        checked = {key: values.pattern(f"naming.{key}", value) for key, value in changes.items()}
        async with self.db.write() as conn:
            current = await rows.project_rules(conn, found.id)
            if current is None:
                raise ResourceUnknown(f"project {project[:100]!r} not found")
            old = {"repository": current.repository_pattern, "tag": current.tag_pattern}
            new = {**old, **checked}
            if new != old:
                await rows.set_naming(conn, found.id, repository_pattern=new["repository"], tag_pattern=new["tag"])
                await events.record(conn, events.Change("policy.naming.set", project=found.name,
                                                        details={"old": old, "new": new}))
        return new

    async def set_quota(self, actor: Principal, project: str, quota: object) -> dict[str, Any]:
        """Set the project's storage quota: bytes, a size like ``10GiB``, or None / ``none`` for none."""
        found = await self._project(actor, project)
        if not actor.is_system_admin:
            raise Denied(QUOTA_IS_FOR_SYSTEM_ADMINS)
        size = values.quota(quota)
        async with self.db.write() as conn:
            current = await rows.project_rules(conn, found.id)
            if current is None:
                raise ResourceUnknown(f"project {project[:100]!r} not found")
            if current.quota_bytes != size:
                await rows.set_quota(conn, found.id, size)
                await events.record(conn, events.Change("policy.quota.set", project=found.name,
                                                        details={"old": current.quota_bytes, "new": size}))
        return {"quota": size, "quota_size": None if size is None else format_size(size)}

    # -- the declarative file ------------------------------------------------------------------

    async def diff(self, actor: Principal, desired: Mapping[str, ProjectPolicy]) -> list[PolicyChange]:
        """What applying ``desired`` would change, project by project (each must exist)."""
        changes: list[PolicyChange] = []
        for name, policy in desired.items():
            try:
                found = await self._project(actor, name)
            except ResourceUnknown as exc:
                raise ResourceUnknown(f"{exc.message}: a policy file does not create projects; create it first "
                                      f"(`dockyard project add {name[:100]}`) or take it out of the file") from None
            async with self.db.read() as conn:
                changes += diff(found.name, await _current(conn, found.id), policy)
        return changes

    async def apply(self, actor: Principal, desired: Mapping[str, ProjectPolicy]) -> list[PolicyChange]:
        """Make each project in ``desired`` match it exactly, one transaction per project, after
        checking that the caller may make every change; returns what changed."""
        planned = await self.diff(actor, desired)
        for name in desired:
            kinds = {c.kind for c in planned if c.project == name}
            if kinds:
                await self._project(actor, name, change=True)
            if "quota" in kinds and not actor.is_system_admin:
                raise Denied(f"project {name!r}: {QUOTA_IS_FOR_SYSTEM_ADMINS}")
        applied: list[PolicyChange] = []
        for name, policy in desired.items():
            found = await self._project(actor, name)
            async with self.db.write() as conn:
                changes = diff(found.name, await _current(conn, found.id), policy)
                for change in changes:
                    if change.kind == "quota" and not actor.is_system_admin:  # changed since the check
                        raise Denied(f"project {name!r}: {QUOTA_IS_FOR_SYSTEM_ADMINS}")
                    await _apply(conn, found.id, change, actor)
            applied += changes
        return applied


def _pair(repository: str, tag: str) -> dict[str, str]:
    return {"repository": repository, "tag": tag}


async def _retention_rules(conn: AsyncConnection, project_id: int, glob: str) -> rows.RetentionRules | None:
    return next((p.rules for p in await rows.retention_policies_of(conn, project_id)
                 if p.rules.repository_glob == glob), None)


async def _current(conn: AsyncConnection, project_id: int) -> ProjectPolicy:
    found = await rows.project_rules(conn, project_id)
    if found is None:
        raise ResourceUnknown("the project was deleted meanwhile")
    retention = await rows.retention_policies_of(conn, project_id)
    immutable = await rows.immutable_rules_of(conn, project_id)
    rules = await admission_rows.rules_of(conn, project_id)
    allow = await admission_rows.allowlist_of(conn, project_id)
    return ProjectPolicy(found.quota_bytes, found.repository_pattern, found.tag_pattern,
                         tuple(sorted((p.rules for p in retention), key=lambda r: r.repository_glob)),
                         tuple(sorted((r.repository_glob, r.tag_glob) for r in immutable)),
                         tuple(sorted(rules, key=lambda r: (r.stage, r.check))),
                         tuple(sorted(allow, key=lambda e: e.vulnerability)))


async def _apply(conn: AsyncConnection, project_id: int, change: PolicyChange, actor: Principal) -> None:
    """Carry out one line of a diff and record it, inside the caller's transaction."""
    project = change.project
    if change.kind == "quota":
        await rows.set_quota(conn, project_id, change.new)
        event = events.Change("policy.quota.set", project=project, details={"old": change.old, "new": change.new})
    elif change.kind.startswith("naming."):
        current = await rows.project_rules(conn, project_id)
        assert current is not None
        old = {"repository": current.repository_pattern, "tag": current.tag_pattern}
        new = {**old, change.kind.removeprefix("naming."): change.new}
        await rows.set_naming(conn, project_id, repository_pattern=new["repository"], tag_pattern=new["tag"])
        event = events.Change("policy.naming.set", project=project, details={"old": old, "new": new})
    elif change.kind == "admission":
        event = await _apply_admission(conn, project_id, change)
    elif change.kind == "allow":
        event = await _apply_allow(conn, project_id, change, actor)
    elif change.kind == "retention" and change.new is None:
        await rows.delete_retention_policy(conn, project_id, change.key or "")
        event = events.Change("policy.retention.deleted", project=project, target=change.key,
                              details={"old": change.old})
    elif change.kind == "retention":
        await rows.put_retention_policy(conn, project_id, values.retention_rules(change.new))
        event = events.Change("policy.retention.set", project=project, target=change.key,
                              details={"old": change.old, "new": change.new})
    else:
        pair = change.new or change.old
        if change.new is not None:
            await rows.add_immutable_rule(conn, project_id, pair["repository"], pair["tag"], actor.name or None)
        rule = next(r for r in await rows.immutable_rules_of(conn, project_id)
                    if (r.repository_glob, r.tag_glob) == (pair["repository"], pair["tag"]))
        if change.new is None:
            await rows.delete_immutable_rule(conn, project_id, rule.id)
        event = events.Change(f"policy.immutable.{'added' if change.new else 'deleted'}", project=project,
                              target=change.key, details={"id": rule.id, "old": change.old, "new": change.new})
    await events.record(conn, event)


async def _apply_admission(conn: AsyncConnection, project_id: int, change: PolicyChange) -> events.Change:
    """Replace one push or pull rule (``change.key`` is "STAGE.CHECK") and keep the others."""
    stage, check = (change.key or ".").split(".", 1)
    kept = [r for r in await admission_rows.rules_of(conn, project_id) if r.name != change.key]
    if change.new is not None:
        kept += admission.parse_rules(stage, {check: change.new})
    await admission_rows.replace_rules(conn, project_id, kept)
    return events.Change("policy.admission.set" if change.new is not None else "policy.admission.deleted",
                         project=change.project, target=change.key, details={"old": change.old, "new": change.new})


async def _apply_allow(conn: AsyncConnection, project_id: int, change: PolicyChange,
                       actor: Principal) -> events.Change:
    if change.new is None:
        await admission_rows.delete_allowed(conn, project_id, change.key or "")
        return events.Change("policy.allowlist.deleted", project=change.project, target=change.key,
                             details={"old": change.old})
    entry = admission.allow_entry(change.new)
    await admission_rows.put_allowed(conn, project_id, admission_rows.AllowEntry(
        entry.vulnerability, entry.reason, entry.expires_at, created_by=actor.name or None))
    return events.Change("policy.allowlist.added", project=change.project, target=change.key,
                         details={"old": change.old, "new": change.new})
