"""Repository names and tags (distribution-spec grammar)."""

from __future__ import annotations

import re

from dockyard.errors import NameInvalid, ReferenceInvalid

MAX_NAME_LENGTH = 255
MAX_TAG_LENGTH = 128
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_PATTERN = rf"{_COMPONENT}(?:/{_COMPONENT})*"
TAG_PATTERN = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
_NAME = re.compile(NAME_PATTERN, flags=re.ASCII)
_TAG = re.compile(TAG_PATTERN, flags=re.ASCII)


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name) is not None


def validate_name(name: str) -> str:
    if not is_valid_name(name):
        raise NameInvalid(detail={"name": name[:MAX_NAME_LENGTH + 1]})
    return name


def is_valid_tag(tag: str) -> bool:
    return len(tag) <= MAX_TAG_LENGTH and _TAG.fullmatch(tag) is not None


def validate_tag(tag: str) -> str:
    if not is_valid_tag(tag):
        raise ReferenceInvalid(
            "invalid tag: a tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}",
            detail={"tag": tag[:MAX_TAG_LENGTH + 1]})
    return tag
