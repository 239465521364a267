"""Go modules compiled into a binary, from the build information the Go linker embeds.

Since Go 1.18 the linker writes, 16-byte aligned in the binary's data (``.go.buildinfo`` in ELF),
Go's ``debug/buildinfo`` layout:

    "\\xff Go buildinf:"  (14 bytes)   pointer size (1 byte)   flags (1 byte: 0x2 = strings inline)
    ... up to 32 bytes of header, then two varint-length-prefixed strings:
    the Go version ("go1.21.6") and the module info, framed by 16 sentinel bytes at each end:
        path    example.com/cmd/hello
        mod     example.com/hello    (devel)
        dep     golang.org/x/text    v0.14.0    h1:...
        =>      example.com/fork     v0.14.1    h1:...     (the dep above is replaced by this one)
        build   GOARCH=amd64

The main module, each dependency (its replacement when that has a version) and the standard
library ("stdlib", at the Go version) become golang packages. Older binaries (before Go 1.18) keep
pointers instead of inline strings; reading them needs the executable's segments and is not done.
"""

from __future__ import annotations

from dockyard.scan.purls import Installed, Unreadable

MAGIC = b"\xff Go buildinf:"
HEADER = 32
INLINE = 0x2
SENTINEL = 16
DEVEL = "(devel)"


def has_build_info(data: bytes) -> bool:
    """Whether the bytes hold a Go build-info header (a cheap test before ``modules``)."""
    return data.find(MAGIC) >= 0


def modules(data: bytes) -> list[Installed]:
    """The modules a Go binary was built from (none when it is not a Go binary)."""
    at = data.find(MAGIC)
    while at >= 0 and at % 16:  # the linker aligns the header; a stray match elsewhere is not it
        at = data.find(MAGIC, at + 1)
    if at < 0:
        return []
    flags = data[at + 15] if at + 15 < len(data) else 0
    if not flags & INLINE:
        raise Unreadable("Go build info of a binary built before Go 1.18 (pointer format) is not read")
    version, end = _varint_string(data, at + HEADER)
    info, _ = _varint_string(data, end)
    if len(info) >= 2 * SENTINEL + 1 and info[-SENTINEL - 1] == "\n":
        info = info[SENTINEL:-SENTINEL]
    return _packages(version, info)


def _packages(go_version: str, info: str) -> list[Installed]:
    found: list[Installed] = []
    arch = None
    for line in info.splitlines():
        fields = line.split("\t")
        if fields[0] in ("mod", "dep") and len(fields) >= 3:
            found.append(Installed("golang", fields[1], fields[2] or DEVEL))
        elif fields[0] == "=>" and len(fields) >= 3 and found and fields[2]:
            found[-1] = Installed("golang", fields[1], fields[2])
        elif fields[0] == "build" and len(fields) >= 2 and fields[1].startswith("GOARCH="):
            arch = fields[1].removeprefix("GOARCH=")
    release = go_version.split()[0].removeprefix("go") if go_version.startswith("go") else ""
    if release:
        found.append(Installed("golang", "stdlib", release))
    return [Installed("golang", p.name, p.version, arch=arch) for p in found]


def _varint_string(data: bytes, at: int) -> tuple[str, int]:
    length, shift = 0, 0
    while True:
        if at >= len(data) or shift > 28:
            raise Unreadable("Go build info is cut short")
        byte = data[at]
        at += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    if at + length > len(data):
        raise Unreadable("Go build info is cut short")
    return data[at:at + length].decode("utf-8", "replace"), at + length
