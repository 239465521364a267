"""The streamed layer walker (dockyard.scan.layers): compression, whiteouts, hard links, memory."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import textwrap
from dataclasses import dataclass

import pytest
import zstandard

from dockyard.scan.layers import Layer, LayerFile, LayerUnreadable, walk

DIR = object()  # an entry that is a directory


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass(frozen=True)
class Hardlink:
    target: str


Entry = bytes | Symlink | Hardlink | object


def tar_of(entries: dict[str, Entry], *, executable: frozenset[str] = frozenset()) -> bytes:
    """A tar archive with these members, in this order (bytes: a regular file)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if name in executable else 0o644
            if isinstance(content, bytes):
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
                continue
            if isinstance(content, Symlink):
                info.type, info.linkname = tarfile.SYMTYPE, content.target
            elif isinstance(content, Hardlink):
                info.type, info.linkname = tarfile.LNKTYPE, content.target
            else:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
    return out.getvalue()


def compress(tar: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(tar, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(tar)
    assert compression == "none"
    return tar


def layer(entries: dict[str, Entry], *, compression: str = "gzip", executable: frozenset[str] = frozenset()) -> Layer:
    """An in-memory layer blob of these entries; its digest is that of its (compressed) bytes."""
    blob = compress(tar_of(entries, executable=executable), compression)
    media = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
             "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}.get(compression,
                                                                        "application/vnd.oci.image.layer.v1.tar")
    return Layer(f"sha256:{hashlib.sha256(blob).hexdigest()}", media, lambda: io.BytesIO(blob))


class Recorder:
    """A visitor that wants the first ``limit`` bytes of every file and records what it is handed."""

    def __init__(self, limit: int = 1 << 20) -> None:
        self.limit = limit
        self.seen: list[tuple[int, str, int, int, bytes]] = []

    def wants(self, entry: LayerFile) -> int:
        return self.limit

    def visit(self, entry: LayerFile, data: bytes) -> None:
        self.seen.append((entry.index, entry.path, entry.size, entry.mode & 0o777, data))


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_every_compression_is_read_as_a_stream_of_files(compression: str) -> None:
    recorder = Recorder()
    base = layer({"etc/": DIR, "./etc/hostname": b"box\n", "/usr/bin/tool": b"#!/bin/sh\n"},
                 compression=compression, executable=frozenset({"/usr/bin/tool"}))

    history = walk([base], [recorder])

    assert recorder.seen == [(0, "etc/hostname", 4, 0o644, b"box\n"), (0, "usr/bin/tool", 10, 0o755, b"#!/bin/sh\n")]
    assert history.layers == 1
    assert history.present(0, "etc/hostname")


def test_a_visitor_gets_only_the_bytes_it_wants_and_others_the_same_read() -> None:
    short, full = Recorder(limit=3), Recorder()
    walk([layer({"a.txt": b"abcdef"})], [short, full])
    assert [s[4] for s in short.seen] == [b"abc"]
    assert [s[4] for s in full.seen] == [b"abcdef"]


def test_whiteouts_and_opaque_directories_are_history_not_files() -> None:
    recorder = Recorder()
    layers = [
        layer({"app/secret.txt": b"s", "app/keep.txt": b"k", "cache/a": b"a", "cache/sub/b": b"b"}),
        layer({"app/.wh.secret.txt": b"", "cache/.wh..wh..opq": b"", "cache/new": b"n"}),
        layer({"app/keep.txt": b"k2"}),
    ]

    history = walk(layers, [recorder])

    assert [(i, p) for i, p, *_ in recorder.seen] == [
        (0, "app/secret.txt"), (0, "app/keep.txt"), (0, "cache/a"), (0, "cache/sub/b"), (1, "cache/new"),
        (2, "app/keep.txt")]
    assert history.removed(0, "app/secret.txt")
    assert not history.present(0, "app/secret.txt")
    assert history.removed(0, "cache/sub/b")
    assert history.removed(0, "cache/a")
    assert history.present(1, "cache/new")
    assert history.replaced(0, "app/keep.txt")
    assert not history.present(0, "app/keep.txt")
    assert history.present(2, "app/keep.txt")


def test_history_looks_at_a_span_of_layers_when_asked() -> None:
    layers = [layer({"f": b"1"}), layer({"other": b""}), layer({".wh.f": b""}), layer({"f": b"2"})]
    history = walk(layers, [])
    assert not history.removed(0, "f", until=1)
    assert history.removed(0, "f", until=2)
    assert not history.replaced(0, "f", until=2)
    assert history.replaced(0, "f", until=3)
    assert history.present(3, "f")


def test_a_hard_link_is_handed_the_bytes_of_the_file_it_links_to() -> None:
    recorder = Recorder()
    walk([layer({"usr/bin/a": b"binary", "usr/bin/b": Hardlink("usr/bin/a"), "etc/l": Symlink("../usr/bin/a")})],
         [recorder])
    assert [(p, size, data) for _, p, size, _, data in recorder.seen] == [
        ("usr/bin/a", 6, b"binary"), ("usr/bin/b", 6, b"binary")]


def test_a_layer_that_is_not_a_tar_archive_is_refused_with_its_digest() -> None:
    for blob in (gzip.compress(b"not a tar archive at all" * 100), b"\x1f\x8b\x08\x00garbage", b"\x28\xb5\x2f\xfdjunk"):
        bad = Layer("sha256:" + "0" * 64, "application/vnd.oci.image.layer.v1.tar+gzip", lambda b=blob: io.BytesIO(b))
        with pytest.raises(LayerUnreadable, match="sha256:0000"):
            walk([bad], [Recorder()])


def test_a_truncated_layer_is_refused() -> None:
    blob = gzip.compress(tar_of({"big": os.urandom(200_000)}), mtime=0)[:50_000]
    cut = Layer("sha256:" + "1" * 64, "application/vnd.oci.image.layer.v1.tar+gzip", lambda: io.BytesIO(blob))
    with pytest.raises(LayerUnreadable):
        walk([cut], [Recorder()])


class Failing(Recorder):
    def visit(self, entry: LayerFile, data: bytes) -> None:
        raise ConnectionRefusedError("the visitor's own error")


def test_a_visitors_own_error_is_not_taken_for_an_unreadable_layer() -> None:
    with pytest.raises(ConnectionRefusedError, match="own error"):
        walk([layer({"a.txt": b"abc"})], [Failing()])


# A child process walks a gzip layer of DOCKYARD_TEST_BIG_LAYER_MB MiB generated as it is read (never
# whole on disk or in memory) and prints its peak RSS: the walk keeps memory flat whatever the size.
BIG_LAYER = """
import io, os, resource, tarfile, zlib
from dockyard.scan.inventory import PackageVisitor
from dockyard.scan.layers import Layer, walk

MIB = 1024 * 1024
size = int(os.environ["DOCKYARD_TEST_BIG_LAYER_MB"]) * MIB

def member(data):  # gzip allows concatenated members: each chunk is compressed once, sent many times
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()

def tar_header(name, length, mode):
    info = tarfile.TarInfo(name)
    info.size, info.mode = length, mode
    return info.tobuf(format=tarfile.PAX_FORMAT)

def pad(length):
    return b"\\0" * (-length % 512)

status = b"Package: tiny\\nStatus: install ok installed\\nArchitecture: all\\nVersion: 1.0-1\\n\\n"
chunk = member(os.urandom(MIB))

def pieces():
    yield member(tar_header("usr/bin/huge", size, 0o755))
    for _ in range(size // MIB):
        yield chunk
    yield member(pad(size) + tar_header("var/lib/dpkg/status", len(status), 0o644) + status + pad(len(status))
                 + b"\\0" * 1024)

class Stream(io.RawIOBase):
    def __init__(self):
        self.parts, self.left = pieces(), b""
    def readable(self):
        return True
    def readinto(self, buffer):
        while not self.left:
            self.left = next(self.parts, b"")
            if not self.left:
                return 0
        n = min(len(buffer), len(self.left))
        buffer[:n] = self.left[:n]
        self.left = self.left[n:]
        return n

visitor = PackageVisitor()
history = walk([Layer("sha256:" + "b" * 64, "", lambda: io.BufferedReader(Stream(), MIB))], [visitor])
inventory = visitor.inventory(history)
print([p.name for p in inventory.packages], len(inventory.notes))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


@pytest.mark.slow
def test_walking_a_huge_layer_keeps_memory_flat() -> None:
    megabytes = int(os.environ.get("DOCKYARD_TEST_BIG_LAYER_MB", "2048"))
    env = {**os.environ, "DOCKYARD_TEST_BIG_LAYER_MB": str(megabytes)}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(BIG_LAYER)], env=env, capture_output=True,
                            text=True, timeout=600, check=True)
    found, peak_mb = result.stdout.splitlines()
    assert found == "['tiny'] 1"  # the package after the huge file; a note says the huge one was not searched
    print(f"walked a {megabytes} MiB gzip layer with a peak RSS of {peak_mb} MiB")
    assert int(peak_mb) < 150
