"""Byte ranges: ``Range`` on blob GETs (RFC 9110) and ``Content-Range`` on upload PATCHes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.errors import BlobUploadInvalid, RangeNotSatisfiable

_BYTES_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})", flags=re.ASCII)
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d{1,19})-(\d{1,19})(?:/(?:\d{1,19}|\*))?", flags=re.ASCII)


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Inclusive first and last byte positions."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


def parse_range(header: str, size: int) -> ByteRange | None:
    """A single satisfiable range of a representation of ``size`` bytes.

    Returns None when the header should be ignored (a syntax we do not serve partially, such as
    several ranges: RFC 9110 lets a server answer those with the whole representation).
    Raises ``RangeNotSatisfiable`` for a valid range that lies outside the content.
    """
    match = _BYTES_RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    start_text, end_text = match.groups()
    if not start_text and not end_text:
        return None
    if not start_text:  # suffix: the last N bytes
        suffix = int(end_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
        return ByteRange(max(0, size - suffix), size - 1)
    first = int(start_text)
    last = int(end_text) if end_text else size - 1
    if end_text and last < first:
        return None  # invalid syntax: ignore, serve everything
    if first >= size:
        raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return ByteRange(first, min(last, size - 1))


def parse_content_range(header: str) -> ByteRange:
    """The inclusive range a PATCH chunk claims to carry."""
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if match is None:
        raise BlobUploadInvalid(
            "invalid Content-Range: expected <first>-<last> (inclusive byte positions)")
    first, last = int(match.group(1)), int(match.group(2))
    if last < first:
        raise BlobUploadInvalid("invalid Content-Range: last byte is before the first")
    return ByteRange(first, last)
