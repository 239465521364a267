"""Paginated listings: a repository's tags and the catalog of repositories."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dockyard.errors import NameUnknown, PaginationInvalid
from dockyard.oci.names import validate_name
from dockyard.store import repositories
from dockyard.store import tags as tag_rows
from dockyard.store.db import Database
from dockyard.store.limits import REPOSITORY_NAME, can_hold


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    next_last: str | None  # where the next page starts, when there is one
    limit: int


def page_size(n: str | None, maximum: int) -> int:
    """The ``n`` query parameter, capped at ``maximum``; absent means the maximum."""
    if n is None or n == "":
        return maximum
    if not n.isascii() or not n.isdigit() or len(n) > 18:
        raise PaginationInvalid(f"n must be a non-negative integer, not {n[:40]!r}")
    return min(int(n), maximum)


def _after(last: str | None) -> str | None:
    """The ``last`` query parameter: where the previous page ended (a name or a tag)."""
    if last is not None and not can_hold(last, REPOSITORY_NAME):
        raise PaginationInvalid(f"last must be a name or tag from the previous page, not {last[:40]!r}")
    return last


def _page(rows: list[str], limit: int) -> Page:
    if limit == 0:
        return Page([], None, 0)
    more = len(rows) > limit
    items = rows[:limit]
    return Page(items, items[-1] if more else None, limit)


class ListingService:
    def __init__(self, db: Database, *, page_max: int) -> None:
        self.db = db
        self.page_max = page_max

    async def tags(self, repository: str, n: str | None, last: str | None) -> Page:
        validate_name(repository)
        limit = page_size(n, self.page_max)
        last = _after(last)
        async with self.db.read() as conn:
            repo_id = await repositories.find_id(conn, repository)
            if repo_id is None:
                raise NameUnknown(detail={"name": repository})
            rows = [] if limit == 0 else await tag_rows.list_names(conn, repo_id, after=last, limit=limit + 1)
        return _page(rows, limit)

    async def catalog(self, n: str | None, last: str | None,
                      visible: Callable[[list[str]], Awaitable[list[str]]] | None = None) -> Page:
        """A page of repository names; with ``visible``, only those it keeps (the caller's view)."""
        limit = page_size(n, self.page_max)
        last = _after(last)
        if limit == 0:
            return Page([], None, 0)
        rows: list[str] = []
        after = last
        while len(rows) <= limit:
            async with self.db.read() as conn:
                batch = await repositories.list_names(conn, after=after, limit=max(limit + 1, 100))
            if not batch:
                break
            rows += await visible(batch) if visible is not None else batch
            after = batch[-1]
        return _page(rows[:limit + 1], limit)
