"""Events: what happened, recorded in the same transaction as the change (DESIGN.md decision 5).

Each event is a frozen dataclass with a stable dotted ``name``. The one table they go to is the
audit log and the outbox that webhooks, scanning and replication will read.
"""

from __future__ import annotations

import contextvars
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from dockyard.store import events as event_rows
from dockyard.store.asyncsql import AsyncConnection
from dockyard.store.clock import utcnow


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting and from where; the HTTP layer and the CLI set it once per request or command."""

    name: str | None
    address: str | None = None


# Set per request (a context variable follows the request's task), read by ``record``.
NOBODY = Actor(None)
CURRENT_ACTOR: contextvars.ContextVar[Actor] = contextvars.ContextVar("dockyard_actor", default=NOBODY)


@dataclass(frozen=True, slots=True)
class Event:
    name: ClassVar[str]
    repository: str

    def detail(self) -> dict[str, Any] | None:
        extra = {k: v for k, v in asdict(self).items() if k not in ("repository", "digest", "tag")}
        return extra or None


@dataclass(frozen=True, slots=True)
class BlobPushed(Event):
    """A blob upload completed and the blob is linked to the repository."""

    name = "blob.pushed"
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class BlobMounted(Event):
    """A blob was linked into the repository from another one."""

    name = "blob.mounted"
    digest: str
    source: str


@dataclass(frozen=True, slots=True)
class BlobDeleted(Event):
    """A blob was unlinked from the repository (its bytes go later, through GC)."""

    name = "blob.deleted"
    digest: str


@dataclass(frozen=True, slots=True)
class ManifestPushed(Event):
    """A manifest was stored, optionally under tags."""

    name = "manifest.pushed"
    digest: str
    media_type: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ManifestDeleted(Event):
    """A manifest and every tag pointing at it were deleted."""

    name = "manifest.deleted"
    digest: str


@dataclass(frozen=True, slots=True)
class TagDeleted(Event):
    """A tag was deleted; the manifest stays."""

    name = "tag.deleted"
    tag: str


@dataclass(frozen=True, slots=True)
class TagRetired(Event):
    """A retention run deleted a tag; ``dockyard tag restore`` can bring it back within the window."""

    name = "tag.deleted"
    tag: str
    digest: str
    plan: int
    by: str = "retention"


@dataclass(frozen=True, slots=True)
class ManifestRetired(Event):
    """A retention run deleted an untagged manifest (its blobs go through GC)."""

    name = "manifest.deleted"
    digest: str
    plan: int
    by: str = "retention"


@dataclass(frozen=True, slots=True)
class TagRestored(Event):
    """A tag a retention run deleted was brought back, pointing at the same digest."""

    name = "tag.restored"
    tag: str
    digest: str


@dataclass(frozen=True, slots=True)
class RepositoryDeleted(Event):
    """A repository was deleted with its tags, manifests and links; GC frees its blobs' bytes later."""

    name = "repository.deleted"
    tags: int
    manifests: int
    blobs: int


@dataclass(frozen=True, slots=True)
class ManifestPulled(Event):
    """A manifest was downloaded (GET): what the audit log calls a pull."""

    name = "manifest.pulled"
    digest: str
    reference: str


@dataclass(frozen=True, slots=True)
class PolicyWarned(Event):
    """A push or pull went through although a ``warn`` admission rule failed (the message says why)."""

    name = "policy.warned"
    digest: str
    stage: str  # "push" or "pull"
    rules: tuple[str, ...]  # "push.secrets", "pull.signed", ...
    message: str
    reference: str  # the tag or digest pushed or pulled


@dataclass(frozen=True, slots=True)
class Change:
    """Anything about accounts and access: logins, tokens, users, projects, teams, members, robots,
    keys. ``action`` is the event name (``login.failed``, ``member.set``, ``robot.created``, ...)."""

    action: str
    project: str | None = None
    target: str | None = None  # the user, team, robot or key acted on
    details: dict[str, Any] = field(default_factory=dict)


def _row(event: Event | Change, actor: Actor) -> dict[str, Any]:
    if isinstance(event, Change):
        detail = dict(event.details)
        if event.target is not None:
            detail["target"] = event.target
        return {"name": event.action, "project": event.project, "repository": None, "digest": None, "tag": None,
                "detail": detail or None, "actor": actor.name, "address": actor.address}
    return {"name": event.name, "project": event.repository.split("/", 1)[0], "repository": event.repository,
            "digest": getattr(event, "digest", None), "tag": getattr(event, "tag", None),
            "detail": event.detail(), "actor": actor.name, "address": actor.address}


async def record(conn: AsyncConnection, event: Event | Change, actor: Actor | None = None) -> None:
    """Write the event inside the caller's transaction, on behalf of the current actor."""
    row = _row(event, actor or CURRENT_ACTOR.get())
    await event_rows.insert_many(conn, [{"created_at": utcnow(), **row}])


class PullLog:
    """Pull events, buffered and written in batches: a pull changes nothing, so it needs no
    transaction of its own, and one write per manifest GET would cap reads at the write rate.

    Pulls of the same manifest by the same actor from the same address within one batch become
    one row whose detail counts them (``"count": n``; ``policy.warned`` events of pulls alike), so a
    fleet pulling one image thousands of times a second writes a row a second. A process killed
    hard loses at most the last batch (docs/access.md says so).
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.pending: dict[tuple[str | None, str | None, str, str, str, str], dict[str, Any]] = {}
        self.limit = limit

    def add(self, event: ManifestPulled | PolicyWarned) -> None:
        actor = CURRENT_ACTOR.get()
        key = (actor.name, actor.address, event.name, event.repository, event.digest, event.reference)
        row = self.pending.get(key)
        if row is not None:
            row["detail"]["count"] += 1
        elif len(self.pending) < self.limit:
            row = {"created_at": utcnow(), **_row(event, actor)}
            row["detail"] = {**(row["detail"] or {}), "count": 1}
            self.pending[key] = row

    def take(self) -> list[dict[str, Any]]:
        taken, self.pending = list(self.pending.values()), {}
        return taken
