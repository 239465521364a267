"""One image's layers analysed in a process of its own: ``python -m dockyard.scan.analysis``.

The walk is CPU work in Python (tar headers, package databases, the secret rules' regular
expressions) that would hold the serving process's GIL for seconds, so a scan runs it in a child
process at a lower CPU priority (``NICENESS``) and the serving process only hands it bytes.

The protocol, on the child's stdin and stdout:

    stdin:  one JSON line  {"max_file_bytes": N, "clamd": {"socket": S, "timeout": T} | null,
                            "layers": [{"digest": D, "media_type": M, "path": P | null}, ...]}
            then, for each layer whose "path" is null, in order, its stored bytes as frames:
            a 4-byte big-endian length and that many bytes; a zero length ends the layer.
            (A layer with a "path" is a file the child opens itself: the filesystem driver.)
    stdout: one JSON object: {"analysis": Analysis.to_json()}
            or {"error": "layer" | "clamd" | "blob", "message": M} for a failure that is the
            image's or clamd's, not the scanner's.

Nothing the child writes holds a secret: findings carry masked values only.
"""

from __future__ import annotations

import io
import json
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

from dockyard.scan import layers
from dockyard.scan.clamd import Clamd, ClamdUnavailable, ClamdVisitor
from dockyard.scan.inventory import PackageVisitor
from dockyard.scan.report import Analysis, Findings
from dockyard.scan.secrets import SecretVisitor

NICENESS = 10  # a scan yields the CPU to the requests the node serves
FRAME = struct.Struct(">I")
END_OF_LAYER = FRAME.pack(0)


def analyse(tar_layers: Sequence[layers.Layer], *, max_file_bytes: int, clamd: Clamd | None) -> Analysis:
    """Every layer read once, by the package, secret and (with clamd) malware visitors at once."""
    packages = PackageVisitor()
    secrets = SecretVisitor(max_file_bytes)
    visitors: list[layers.Visitor] = [packages, secrets]
    malware = None
    engine = None
    if clamd is not None:
        engine = clamd.version()
        malware = ClamdVisitor(clamd)  # files up to clamd's own default StreamMaxLength
        visitors.append(malware)
    history = layers.walk(tar_layers, visitors)
    found_malware = tuple(malware.findings(history)) if malware is not None else ()
    return Analysis(packages.inventory(history),
                    Findings(tuple(secrets.findings(history)), found_malware, secrets.files_scanned,
                             secrets.skipped_large, secrets.skipped_binary, engine))


def frames(data: bytes, size: int = 1 << 20) -> list[bytes]:
    """``data`` as frames of at most ``size`` bytes (without the end-of-layer frame)."""
    return [FRAME.pack(len(part)) + part for part in (data[i:i + size] for i in range(0, len(data), size))]


class _Frames(io.RawIOBase):
    """One layer's bytes as they arrive in frames on ``stream``; closing it skips what was not read,
    so the next layer starts at its own first frame."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._left = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._left and not self._ended:
            self._next_frame()
        if self._ended:
            return 0
        data = self._stream.read(min(len(buffer), self._left))
        if not data:
            raise EOFError("the scanner's input ended inside a layer")
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)

    def _next_frame(self) -> None:
        header = self._stream.read(FRAME.size)
        if len(header) < FRAME.size:
            raise EOFError("the scanner's input ended inside a layer")
        self._left = FRAME.unpack(header)[0]
        self._ended = self._left == 0

    def close(self) -> None:
        if not self.closed:
            while not self._ended:
                self._stream.read(self._left)
                self._left = 0
                self._next_frame()
        super().close()


def _opener(path: str | None, stdin: BinaryIO) -> Callable[[], BinaryIO]:
    if path is not None:
        return lambda: open(path, "rb")
    return lambda: io.BufferedReader(_Frames(stdin), 1 << 16)


def run(request: dict[str, Any], stdin: BinaryIO) -> dict[str, Any]:
    """Carry out one request (see the module docstring) and return the answer to print."""
    tar_layers = [layers.Layer(layer["digest"], layer["media_type"], _opener(layer["path"], stdin))
                  for layer in request["layers"]]
    clamd = Clamd(request["clamd"]["socket"], request["clamd"]["timeout"]) if request["clamd"] else None
    try:
        analysis = analyse(tar_layers, max_file_bytes=request["max_file_bytes"], clamd=clamd)
    except layers.LayerUnreadable as exc:
        return {"error": "layer", "message": str(exc)}
    except ClamdUnavailable as exc:
        return {"error": "clamd", "message": str(exc)}
    except FileNotFoundError as exc:  # the collector removed the blob while it was read
        return {"error": "blob", "message": f"a layer's file is gone ({exc.filename})"}
    return {"analysis": analysis.to_json()}


def main() -> None:
    """The child's entry point: ``services/scan_process.py`` starts it with its priority lowered
    (``python -m dockyard.scan.analysis`` runs it without)."""
    stdin = sys.stdin.buffer
    request = json.loads(stdin.readline())
    sys.stdout.write(json.dumps(run(request, stdin)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
