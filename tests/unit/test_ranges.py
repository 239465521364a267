"""``Range`` on blob GETs (RFC 9110 §14) and ``Content-Range`` on upload PATCHes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.errors import BlobUploadInvalid, RangeNotSatisfiable
from dockyard.oci.ranges import ByteRange, parse_content_range, parse_range

SIZE = 100


@pytest.mark.parametrize(("header", "size", "expected"), [
    ("bytes=0-0", SIZE, (0, 0)),                 # the first byte
    ("bytes=0-99", SIZE, (0, 99)),
    ("bytes=10-19", SIZE, (10, 19)),
    ("bytes=99-99", SIZE, (99, 99)),             # the last byte
    ("bytes=50-", SIZE, (50, 99)),               # open-ended
    ("bytes=0-", SIZE, (0, 99)),
    ("bytes=90-1000", SIZE, (90, 99)),           # last beyond the end is clamped
    ("bytes=0-9999999999999999999", SIZE, (0, 99)),
    ("bytes=-1", SIZE, (99, 99)),                # suffix: the last N bytes
    ("bytes=-10", SIZE, (90, 99)),
    ("bytes=-100", SIZE, (0, 99)),
    ("bytes=-1000", SIZE, (0, 99)),              # suffix longer than the content: all of it
    ("bytes=-1", 1, (0, 0)),
    ("bytes=0-0", 1, (0, 0)),
    (" bytes=1-2 ", SIZE, (1, 2)),               # optional whitespace
    ("bytes = 1 - 2", SIZE, (1, 2)),
])
def test_satisfiable_ranges(header: str, size: int, expected: tuple[int, int]) -> None:
    found = parse_range(header, size)
    assert found is not None
    assert (found.first, found.last) == expected
    assert found.length == expected[1] - expected[0] + 1


@pytest.mark.parametrize(("header", "size"), [
    ("bytes=100-", SIZE),          # first byte beyond the end
    ("bytes=100-200", SIZE),
    ("bytes=1000-1001", SIZE),
    ("bytes=-0", SIZE),            # an empty suffix selects nothing
    ("bytes=0-", 0),               # nothing is satisfiable in empty content
    ("bytes=0-0", 0),
    ("bytes=-5", 0),
])
def test_unsatisfiable_ranges_say_the_size(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        parse_range(header, size)
    assert caught.value.status == 416
    assert caught.value.headers == {"Content-Range": f"bytes */{size}"}


@pytest.mark.parametrize("header", [
    "",
    "bytes=",
    "bytes=-",
    "bytes=0-1,3-4",               # several ranges: answer with the whole content
    "bytes=0-0,-1",
    "bytes=5-4",                   # last before first is invalid syntax: ignore it
    "bytes=a-b",
    "bytes=0x1-2",
    "bytes=1.5-2",
    "bytes=--1",
    "bytes=-1-2",
    "items=0-1",                   # an unknown range unit
    "0-1",
    "bytes 0-1",
    "bytes=\u0661-\u0662",         # non-ASCII digits
    "bytes=99999999999999999999-",  # more digits than any real size
])
def test_unserviceable_range_headers_are_ignored(header: str) -> None:
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize(("header", "expected"), [
    ("0-0", (0, 0)),
    ("0-99", (0, 99)),
    ("100-199", (100, 199)),
    ("bytes 0-99", (0, 99)),
    ("bytes=0-99", (0, 99)),
    ("bytes 0-99/100", (0, 99)),
    ("bytes 0-99/*", (0, 99)),
    ("0-99/100", (0, 99)),
    (" 5-6 ", (5, 6)),
])
def test_content_range_forms(header: str, expected: tuple[int, int]) -> None:
    assert parse_content_range(header) == ByteRange(*expected)


@pytest.mark.parametrize(("header", "message_part"), [
    ("", "expected <first>-<last>"),
    ("5", "expected <first>-<last>"),
    ("5-", "expected <first>-<last>"),
    ("-5", "expected <first>-<last>"),
    ("a-b", "expected <first>-<last>"),
    ("bytes */100", "expected <first>-<last>"),
    ("0-1/", "expected <first>-<last>"),
    ("0-1/x", "expected <first>-<last>"),
    ("0-1,2-3", "expected <first>-<last>"),
    ("items 0-1", "expected <first>-<last>"),
    ("\u0661-\u0662", "expected <first>-<last>"),
    ("1" * 20 + "-" + "1" * 20, "expected <first>-<last>"),
    ("10-9", "last byte is before the first"),
])
def test_invalid_content_ranges(header: str, message_part: str) -> None:
    with pytest.raises(BlobUploadInvalid) as caught:
        parse_content_range(header)
    assert caught.value.code == "BLOB_UPLOAD_INVALID"
    assert message_part in caught.value.message


@given(st.text(max_size=60) | st.from_regex(r"bytes=[0-9]{0,21}-[0-9]{0,21}", fullmatch=True),
       st.integers(min_value=0, max_value=2**63))
def test_parse_range_only_raises_registry_errors(header: str, size: int) -> None:
    try:
        found = parse_range(header, size)
    except RangeNotSatisfiable:  # any other exception fails the test
        return
    if found is not None:
        assert 0 <= found.first <= found.last < size


CONTENT_RANGE_LIKE = r"(bytes[ =])?[0-9]{1,21}-[0-9]{1,21}(/[0-9*]{1,3})?"


@given(st.text(max_size=60) | st.from_regex(CONTENT_RANGE_LIKE, fullmatch=True))
def test_parse_content_range_only_raises_registry_errors(header: str) -> None:
    try:
        found = parse_content_range(header)
    except BlobUploadInvalid:
        return
    assert 0 <= found.first <= found.last
