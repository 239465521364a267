"""The RSGI bridge against the real app, driven by an in-process stand-in for granian's protocol.

granian itself is exercised end to end in tests/e2e; this pins down the translation rules that a
server process makes hard to reach: decoded paths, streamed bodies, ranges, lifespan.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dockyard.app import build_components, create_app
from dockyard.http.rsgi import RSGIBridge
from dockyard.store import migrate
from tests.integration.conftest import ADMIN_PASSWORD, make_config
from tests.support.content import random_bytes, sha256

BASIC = "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()


class Headers(dict[str, str]):
    """Request headers; the admin's credentials unless given others."""

    def __init__(self, *args: Any, **kwargs: str) -> None:
        super().__init__(*args, **kwargs)
        self.setdefault("authorization", BASIC)


@dataclass
class Scope:
    method: str
    path: str
    query_string: str = ""
    headers: Headers = field(default_factory=Headers)
    http_version: str = "1.1"
    scheme: str = "http"
    client: str = "127.0.0.1:40000"
    server: str = "127.0.0.1:5000"


@dataclass
class Protocol:
    """Records what the bridge asks of granian, the way granian's RSGIHTTPProtocol would take it."""

    body: list[bytes] = field(default_factory=list)
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    sent: bytes = b""
    file: tuple[str, int, int] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            for chunk in self.body:
                yield chunk
        return chunks()

    async def client_disconnect(self) -> None:
        return None

    def _start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.status, self.headers = status, dict(headers)

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self._start(status, headers)
        self.sent = body

    def response_file(self, status: int, headers: list[tuple[str, str]], file: str) -> None:
        self._start(status, headers)
        self.file = (file, 0, Path(file).stat().st_size)

    def response_file_range(self, status: int, headers: list[tuple[str, str]], file: str, start: int,
                            end: int) -> None:
        self._start(status, headers)
        self.file = (file, start, end)

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> Any:
        self._start(status, headers)
        protocol = self

        class Transport:
            async def send_bytes(self, data: bytes) -> None:
                protocol.sent += data
        return Transport()

    def file_bytes(self) -> bytes:
        assert self.file is not None
        path, start, end = self.file
        return Path(path).read_bytes()[start:end]


async def test_bridge_pushes_and_pulls_with_ranges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_ADMIN_PASSWORD", ADMIN_PASSWORD)
    config = make_config(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    parts = build_components(config)
    await migrate.upgrade(parts.db)
    bridge = RSGIBridge(create_app(config, parts))
    await bridge.startup()
    try:
        data = random_bytes(100_000)
        push = Protocol(body=[data[:60_000], data[60_000:]])
        await bridge.__rsgi__(Scope("POST", "/v2/team/app/blobs/uploads/", f"digest={sha256(data)}"), push)
        assert push.status == 201, push.sent

        whole = Protocol()
        await bridge.__rsgi__(Scope("GET", f"/v2/team/app/blobs/{sha256(data)}"), whole)
        assert whole.status == 200
        assert whole.file_bytes() == data

        part = Protocol()
        await bridge.__rsgi__(Scope("GET", f"/v2/team/app/blobs/{sha256(data)}",
                                    headers=Headers(range="bytes=10-19")), part)
        assert part.status == 206
        assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
        assert part.file_bytes() == data[10:20]

        decoded = Protocol()  # granian gives RSGI apps the path percent-decoded: no second decoding
        await bridge.__rsgi__(Scope("GET", "/v2/team/app/blobs/Ā%41"), decoded)
        assert decoded.status == 400
        assert b"DIGEST_INVALID" in decoded.sent

        truncated = Protocol(body=[b"0123456789"])
        await bridge.__rsgi__(Scope("POST", "/v2/team/app/blobs/uploads/", f"digest={sha256(b'x' * 100)}",
                                    headers=Headers({"content-length": "100"})), truncated)
        assert truncated.status == 400
        assert b"SIZE_INVALID" in truncated.sent
    finally:
        await bridge.shutdown()
