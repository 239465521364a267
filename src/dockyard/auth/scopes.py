"""The Docker token scope grammar (SPEC.md §5.3) and the access entries a token carries.

A scope is ``type:name:action[,action]``; several are separated by spaces (or given as repeated
``scope`` parameters). A repository name may hold one ``:`` (a registry host with a port), so the
type ends at the first ``:`` and the actions start after the last one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_SCOPES = 16
MAX_SCOPE_LENGTH = 1024
_TYPE = re.compile(r"[a-z0-9]{1,32}(?:\([a-z0-9]{1,32}\))?", flags=re.ASCII)
_ACTION = re.compile(r"[a-z*]{1,16}", flags=re.ASCII)
_RESOURCE_NAME = re.compile(r"[A-Za-z0-9._/:-]{1,255}", flags=re.ASCII)


class ScopeInvalid(ValueError):
    """A scope string that does not follow ``type:name:action[,action]``."""


@dataclass(frozen=True, slots=True)
class Grant:
    """One entry of a token's ``access`` claim: ``actions`` on the resource ``type:name``."""

    type: str
    name: str
    actions: tuple[str, ...]

    def to_claim(self) -> dict[str, object]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scope(text: str) -> Grant:
    """One ``type:name:actions`` scope; ``ScopeInvalid`` says what is wrong with it."""
    if len(text) > MAX_SCOPE_LENGTH:
        raise ScopeInvalid(f"a scope may be at most {MAX_SCOPE_LENGTH} characters")
    type_, sep, rest = text.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2:
        raise ScopeInvalid(f"scope {text[:100]!r} is not type:name:action[,action]")
    if not _TYPE.fullmatch(type_):
        raise ScopeInvalid(f"scope type {type_[:40]!r} is not valid")
    if not _RESOURCE_NAME.fullmatch(name):
        raise ScopeInvalid(f"scope resource name {name[:100]!r} is not valid")
    wanted = tuple(dict.fromkeys(a for a in actions.split(",") if a))
    if not all(_ACTION.fullmatch(a) for a in wanted):
        raise ScopeInvalid(f"scope actions {actions[:60]!r} are not valid")
    return Grant(type_.split("(")[0], name, wanted)


def parse_scopes(values: Iterable[str]) -> list[Grant]:
    """Every scope in the given parameters (each may hold several, space-separated), merged by
    resource in the order first seen."""
    merged: dict[tuple[str, str], list[str]] = {}
    count = 0
    for value in values:
        for text in value.split():
            count += 1
            if count > MAX_SCOPES:
                raise ScopeInvalid(f"at most {MAX_SCOPES} scopes may be requested at once")
            grant = parse_scope(text)
            actions = merged.setdefault((grant.type, grant.name), [])
            actions.extend(a for a in grant.actions if a not in actions)
    return [Grant(t, n, tuple(a)) for (t, n), a in merged.items()]


def grants_from_claim(claim: object) -> tuple[Grant, ...]:
    """The ``access`` claim of a verified token as grants; anything malformed is ``ScopeInvalid``."""
    if not isinstance(claim, list):
        raise ScopeInvalid("the access claim must be a list")
    found: list[Grant] = []
    for entry in claim:
        if not isinstance(entry, dict):
            raise ScopeInvalid("each access entry must be an object")
        type_, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if not isinstance(type_, str) or not isinstance(name, str) or not isinstance(actions, list) \
                or not all(isinstance(a, str) for a in actions):
            raise ScopeInvalid("each access entry needs a string type and name and a list of actions")
        found.append(Grant(type_, name, tuple(actions)))
    return tuple(found)
