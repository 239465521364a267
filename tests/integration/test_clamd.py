"""Malware scanning against a real clamd that loads only the tiny signature database written here.

No database is involved (the scanner is pure; the pipeline that stores its findings is tested with
the scans), so these tests run once, not once per database backend.
"""

from __future__ import annotations

import gzip
import io
import socket
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import zstandard

from dockyard.errors import Unavailable
from dockyard.scan.clamd import Clamd, ClamdUnavailable, ClamdVisitor
from dockyard.scan.layers import Layer, walk
from dockyard.scan.report import MalwareFinding
from dockyard.scan.secrets import SecretVisitor
from tests.support.clamd import EICAR, STREAM_MAX_BYTES, ClamdServer, running_clamd

MARKER = b"dockyard-custom-malware-test-marker-7f3a"
SIGNATURES = {"Dockyard.Test.EICAR": EICAR, "Dockyard.Test.Marker": MARKER}


@pytest.fixture(scope="module")
def clamd() -> Iterator[ClamdServer]:
    with running_clamd(SIGNATURES) as server:
        yield server


def layer(digest: str, files: Mapping[str, bytes], compression: str = "gzip") -> Layer:
    """A layer blob holding ``files`` (a name ``dir/.wh.x`` is a whiteout of ``dir/x``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    blob = {"gzip": gzip.compress, "zstd": zstandard.ZstdCompressor().compress, "none": bytes}[compression](raw)
    return Layer(digest, "application/vnd.oci.image.layer.v1.tar", lambda: io.BytesIO(blob))


def names(findings: list[MalwareFinding]) -> set[tuple[str, str, str, bool]]:
    """(layer, path, signature without clamd's ".UNOFFICIAL" suffix, removed) of each finding."""
    return {(f.layer, f.path, f.signature.removesuffix(".UNOFFICIAL"), f.removed) for f in findings}


def test_ping_and_version(clamd: ClamdServer) -> None:
    client = clamd.client()
    client.ping()
    assert client.version().startswith("ClamAV ")


def test_scan_bytes_over_unix_and_tcp(clamd: ClamdServer) -> None:
    for address in (clamd.unix_socket, clamd.tcp_socket):
        client = Clamd(address, 30)
        assert client.scan_bytes(EICAR).startswith("Dockyard.Test.EICAR")  # type: ignore[union-attr]
        assert client.scan_bytes(b"#!/bin/sh\necho hello\n") is None
        assert client.scan_bytes(b"") is None


def test_detections_in_layers_and_the_removed_flag(clamd: ClamdServer) -> None:
    base = layer("sha256:base", {
        "tmp/eicar.com": EICAR,
        "etc/clean.txt": b"nothing to see here\n" * 100,
        "opt/old/dropper.txt": b"header\n" + MARKER + b"\nfooter\n",
        "opt/old/readme": b"plain text\n",
        "srv/gone.com": EICAR,
    })
    top = layer("sha256:top", {"opt/.wh.old": b"", "srv/.wh.gone.com": b"", "usr/bin/tool": MARKER * 3}, "zstd")
    plain = layer("sha256:plain", {"home/user/eicar.txt": EICAR}, "none")
    visitor = ClamdVisitor(clamd.client(), max_file_bytes=10 * 1024 * 1024)

    history = walk([base, top, plain], [visitor])

    assert names(visitor.findings(history)) == {
        ("sha256:base", "tmp/eicar.com", "Dockyard.Test.EICAR", False),
        ("sha256:base", "opt/old/dropper.txt", "Dockyard.Test.Marker", True),  # whiteout of its directory
        ("sha256:base", "srv/gone.com", "Dockyard.Test.EICAR", True),  # whiteout of the file
        ("sha256:top", "usr/bin/tool", "Dockyard.Test.Marker", False),
        ("sha256:plain", "home/user/eicar.txt", "Dockyard.Test.EICAR", False),
    }
    assert (visitor.files_scanned, visitor.skipped_large) == (7, 0)  # whiteouts are not files


def test_files_over_either_limit_are_counted_as_skipped(clamd: ClamdServer) -> None:
    over_clamd = EICAR + b"\n" + b"a" * STREAM_MAX_BYTES  # under our limit, over clamd's StreamMaxLength
    over_ours = b"b" * (4 * STREAM_MAX_BYTES)
    image = layer("sha256:big", {"big/clamd": over_clamd, "big/ours": over_ours, "small/eicar": EICAR})
    visitor = ClamdVisitor(clamd.client(), max_file_bytes=2 * STREAM_MAX_BYTES)

    history = walk([image], [visitor])

    assert names(visitor.findings(history)) == {("sha256:big", "small/eicar", "Dockyard.Test.EICAR", False)}
    assert (visitor.files_scanned, visitor.skipped_large) == (1, 2)


def test_missing_socket_is_unavailable_and_names_the_setting(tmp_path: Path) -> None:
    client = Clamd(str(tmp_path / "no-clamd.sock"), 5)
    with pytest.raises(ClamdUnavailable, match=r"scan\.clamd\.socket") as raised:
        client.ping()
    assert isinstance(raised.value, Unavailable)
    assert raised.value.status == 503


def test_closed_tcp_port_is_unavailable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: refused
        with pytest.raises(ClamdUnavailable, match="unreachable"):
            Clamd(address, 5).scan_bytes(EICAR)


def test_a_daemon_that_never_answers_times_out() -> None:
    with tempfile.TemporaryDirectory(prefix="clamd-") as directory, \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        path = str(Path(directory) / "silent.sock")
        silent.bind(path)
        silent.listen(8)  # connections queue; nobody ever reads or answers
        client = Clamd(path, 0.2)
        with pytest.raises(ClamdUnavailable, match=r"did not answer within 0\.2s"):
            client.ping()
        with pytest.raises(ClamdUnavailable, match="did not answer"):
            client.scan_bytes(b"x" * 100)


@pytest.mark.parametrize("address", ["tcp://127.0.0.1", "tcp://:3310", "tcp://host:port"])
def test_a_malformed_tcp_address_names_the_setting(address: str) -> None:
    with pytest.raises(ClamdUnavailable, match=r"scan\.clamd\.socket .* is not tcp://HOST:PORT"):
        Clamd(address, 1)


def test_an_outage_mid_walk_stops_only_the_malware_scan(tmp_path: Path) -> None:
    image = layer("sha256:l", {"etc/a.env": b"DB_PASSWORD=correct-horse-battery\n", "b": b"b", "c": b"c"})
    malware = ClamdVisitor(Clamd(str(tmp_path / "gone.sock"), 5), max_file_bytes=1024)
    secrets = SecretVisitor(1024)

    history = walk([image], [malware, secrets])

    assert malware.files_scanned == 0
    assert secrets.files_scanned == 3  # the other visitors saw every file
    with pytest.raises(ClamdUnavailable, match=r"scan\.clamd\.socket"):
        malware.findings(history)


def test_a_layer_over_its_time_budget_stops_the_malware_scan(clamd: ClamdServer) -> None:
    ticks = iter(range(0, 1000, 10))  # each file seems to take ten seconds
    visitor = ClamdVisitor(Clamd(clamd.unix_socket, 25), clock=lambda: float(next(ticks)))
    first = layer("sha256:a", {"one": b"1", "two": b"2"})  # 0 s, 10 s: within 25 s
    second = layer("sha256:b", {"x": b"x", "y": b"y", "z": EICAR, "w": b"w"})  # 20, 30, 40 s; 50 s: over

    history = walk([first, second], [visitor])

    assert visitor.files_scanned == 5
    with pytest.raises(ClamdUnavailable, match=r"over 25s on the files of layer sha256:b; raise scan\.clamd\.timeout"):
        visitor.findings(history)
