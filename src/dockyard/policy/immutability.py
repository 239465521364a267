"""Immutable tags: a tag that matches a project's rule is never overwritten or deleted."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from dockyard.store.policies import ImmutableRule


def repository_path(repository: str) -> str:
    """The part of a repository name after its project ("team-a/api/web" → "api/web")."""
    return repository.split("/", 1)[1] if "/" in repository else ""


def matching_rule(rules: Iterable[ImmutableRule], repository: str, tag: str) -> ImmutableRule | None:
    """The first rule that makes ``repository:tag`` immutable, or None.

    Globs are shell-style (``*``, ``?``, ``[...]``), case-sensitive, matched against the repository
    name after the project and against the whole tag; ``*`` also matches across slashes.
    """
    path = repository_path(repository)
    for rule in rules:
        if fnmatchcase(path, rule.repository_glob) and fnmatchcase(tag, rule.tag_glob):
            return rule
    return None


def describe(rule: ImmutableRule) -> str:
    return f"immutable rule #{rule.id} (repository {rule.repository_glob!r}, tag {rule.tag_glob!r})"
