"""What a push or a delete must satisfy in its project: naming rules, immutable tags, the quota.

Each request reads its project's rules once (``store/project_rules.py``: one query, the
immutable-tag rules joined in when the request names tags) and every check below works from
that. Each refusal is a 403 ``DENIED`` whose message names the rule and what to do:

- naming: the repository name after ``<project>/`` must fully match ``repository_pattern``, every
  pushed tag ``tag_pattern`` (``re.fullmatch``); checked at the first request that names the
  repository (the upload POST, with or without ``?digest=`` or ``mount=``), at upload completion
  and at a manifest PUT, never on reads;
- immutable tags: a tag matching an immutable rule is never moved to another digest or deleted,
  nor is a manifest such a tag keeps (points at, or lists as an index) deleted by digest
  (``ensure_mutable``, ``ensure_deletable``: other services call them too);
- quota: a push that adds bytes the project does not have yet must fit ``quota_bytes``
  (``ensure_room``), checked inside the transaction that records it, with the project row locked
  (PostgreSQL) so that two pushes cannot both take the last room. The lock is taken before the
  transaction inserts anything (a repository, a link), so pushes into a project always take
  their locks in one order.

With no quota, no patterns and no immutable rules, a request costs that one lookup and nothing
more: no aggregate is computed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dockyard.auth.principals import project_of
from dockyard.errors import Denied
from dockyard.oci.names import is_valid_name, is_valid_tag
from dockyard.policy import naming, quotas
from dockyard.policy.immutability import describe, matching_rule, repository_path
from dockyard.store import repositories
from dockyard.store import tags as tag_rows
from dockyard.store import usage as usage_rows
from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.db import Database
from dockyard.store.policies import ImmutableRule
from dockyard.store.project_rules import Rules, project_rules, project_rules_now


async def rules_for(conn_or_db: AsyncConnection | Database, repository: str, *, immutable: bool = True) -> Rules:
    """The rules of the repository's project: inside a transaction (a connection), or as a hot
    read (the database; quota and naming only)."""
    if isinstance(conn_or_db, Database):
        return await project_rules_now(conn_or_db, project_of(repository))
    return await project_rules(conn_or_db, project_of(repository), immutable=immutable)


# -- naming ------------------------------------------------------------------------------------


def check_name(rules: Rules, repository: str, tags: Iterable[str] = ()) -> None:
    """Refuse a repository name or tags that break the project's naming rules."""
    if rules.project is None:
        return
    project = project_of(repository)
    pattern = rules.project.repository_pattern
    if pattern is not None and not _matches(pattern, repository_path(repository)):
        made = naming.example(pattern, lambda path: is_valid_name(f"{project}/{path}" if path else project))
        raise Denied(naming.describe_failure(
            "repository", repository, pattern, f"the name after '{project}/'",
            None if made is None else (f"{project}/{made}" if made else project)),
            detail={"repository": repository, "rule": pattern})
    tag_pattern = rules.project.tag_pattern
    if tag_pattern is None:
        return
    for tag in tags:
        if not _matches(tag_pattern, tag):
            made = naming.example(tag_pattern, is_valid_tag)
            raise Denied(naming.describe_failure("tag", tag, tag_pattern, f"every tag in project {project}", made),
                         detail={"repository": repository, "tag": tag, "rule": tag_pattern})


def _matches(pattern: str, value: str) -> bool:
    try:
        return naming.matches(pattern, value)
    except (ValueError, RecursionError):  # re.error is a ValueError; a rule stored without the checks
        raise Denied(f"the project's naming rule '{pattern}' is not a valid regular expression: a project "
                     "admin must fix it with `dockyard naming set`") from None


# -- immutable tags ----------------------------------------------------------------------------


def guarded(rules: Sequence[ImmutableRule], repository: str, tags: Iterable[str]) -> dict[str, ImmutableRule]:
    """The tags an immutable rule protects, each with its (first) rule."""
    found = {}
    for tag in tags:
        rule = matching_rule(rules, repository, tag)
        if rule is not None:
            found[tag] = rule
    return found


async def ensure_mutable(conn: AsyncConnection, repository: str, tags: Iterable[str], *,
                         digest: str | None = None, rules: Sequence[ImmutableRule] | None = None) -> None:
    """Refuse to move or delete an immutable tag of ``repository`` (403 DENIED naming the rule).

    Each of ``tags`` that an immutable rule protects and that exists must point at ``digest``
    already (pushing the same digest again is not an overwrite); ``digest`` None means the tags
    are to be deleted, which is refused for any that exists. ``rules``: the project's immutable
    rules when the caller has read them already (else they are read here, in ``conn``).
    """
    if rules is None:
        rules = (await rules_for(conn, repository)).immutable
    protected = guarded(rules, repository, tags) if rules else {}
    if not protected:
        return
    repo_id = await repositories.find_id(conn, repository)
    current = {} if repo_id is None else await tag_rows.digests_of(conn, repo_id, sorted(protected))
    for tag, rule in protected.items():
        if tag in current and current[tag] != digest:
            raise _immutable(repository, tag, current[tag], rule, moving=digest is not None)


async def ensure_deletable(conn: AsyncConnection, repository: str, repository_id: int, digest: str,
                           rules: Sequence[ImmutableRule] | None = None) -> None:
    """Refuse to delete a manifest that an immutable tag keeps: one pointing at it, or at an
    index of the repository that lists it."""
    if rules is None:
        rules = (await rules_for(conn, repository)).immutable
    if not rules:
        return
    keeping = await tag_rows.pointing_at(conn, repository_id, digest)
    for tag, rule in guarded(rules, repository, sorted(keeping)).items():
        raise _immutable(repository, tag, keeping[tag], rule, moving=False, manifest=digest)


async def claim_immutable(conn: AsyncConnection, repository: str, repository_id: int, tag: str,
                          manifest_id: int, digest: str, rule: ImmutableRule) -> None:
    """Point an immutable tag at a manifest without ever moving it: of two pushes that create it
    at the same moment, the one that comes second is refused."""
    if await tag_rows.claim(conn, repository_id, tag, manifest_id) != manifest_id:
        current = (await tag_rows.digests_of(conn, repository_id, [tag])).get(tag, "another manifest")
        raise _immutable(repository, tag, current, rule, moving=True)


def _immutable(repository: str, tag: str, current: str, rule: ImmutableRule, *, moving: bool,
               manifest: str | None = None) -> Denied:
    if manifest is not None and manifest != current:
        what = f"manifest {manifest} cannot be deleted: the immutable tag {repository}:{tag} keeps it " \
               f"(it points at the index {current} that lists it)"
    elif manifest is not None:
        what = f"manifest {manifest} cannot be deleted: the immutable tag {repository}:{tag} points at it"
    elif moving:
        what = f"tag {repository}:{tag} is immutable and points at {current}; it cannot be overwritten " \
               "(push under a new tag)"
    else:
        what = f"tag {repository}:{tag} is immutable; it cannot be deleted"
    return Denied(f"{what}: {describe(rule)}; a project maintainer can remove the rule with "
                  "`dockyard immutable delete`",
                  detail={"repository": repository, "tag": tag, "rule": rule.id})


# -- quota -------------------------------------------------------------------------------------


def has_quota(rules: Rules) -> bool:
    return rules.project is not None and rules.project.quota_bytes is not None


async def ensure_room(conn: AsyncConnection, rules: Rules, repository: str, *, blob: str | None = None,
                      size: int, locked: bool = True) -> None:
    """Refuse a push that would take the project over its quota (403 DENIED with usage and limit).

    ``size`` bytes are added unless ``blob`` (a digest) is linked in the project already, which
    costs nothing. ``locked``: lock the project row first and read the quota under the lock, so
    this check and the caller's insert are one step for every other push into the project (the
    check inside the transaction that records the push); False for the early check that runs
    before the bytes are published.
    """
    if rules.project is None or rules.project.quota_bytes is None or size == 0:
        return
    quota = await usage_rows.lock_quota(conn, rules.project.project_id) if locked else rules.project.quota_bytes
    if quota is None:
        return
    project = project_of(repository)
    if blob is not None and await usage_rows.blob_in_project(conn, project, blob):
        return
    used = await usage_rows.project_usage(conn, project)
    if not quotas.fits(used, size, quota):
        raise Denied(quotas.refusal(project, used, size, quota),
                     detail={"project": project, "used_bytes": used, "push_bytes": size, "quota_bytes": quota})
