"""Events: what happened, recorded in the same transaction as the change (DESIGN.md decision 5).

Each event is a frozen dataclass with a stable dotted ``name``. The one table they go to is the
audit log and the outbox that webhooks, scanning and replication will read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.store import events as event_rows


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


async def record(conn: AsyncConnection, event: Event, actor: str | None = None) -> None:
    """Write the event inside the caller's transaction."""
    await event_rows.insert(
        conn, event.name, repository=event.repository, digest=getattr(event, "digest", None),
        tag=getattr(event, "tag", None), actor=actor, detail=event.detail())
