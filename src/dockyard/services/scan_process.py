"""Running the layer walk of one image in a child process (``scan/analysis.py`` is the child).

The serving process only locates the layers and, for blobs that are not local files (an object
store), streams their stored bytes to the child's stdin in frames, at the pace the child reads them
(the pipe's back-pressure bounds memory to a chunk). A filesystem blob is opened by the child
itself. Cancelling the scan kills the child. The child's answer maps back to the errors the scan
records: an unreadable layer (the image's fault), clamd unavailable, a blob gone from storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from dockyard.config import ScanConfig
from dockyard.errors import BlobUnknown
from dockyard.oci.manifests import Descriptor
from dockyard.scan.analysis import END_OF_LAYER, NICENESS, frames
from dockyard.scan.clamd import ClamdUnavailable
from dockyard.scan.layers import LayerUnreadable
from dockyard.scan.report import Analysis
from dockyard.storage.blobstore import BlobLocation, BlobStore

# Lower its priority before the imports, which cost more CPU than a small image's walk.
CHILD = f"import os; os.nice({NICENESS}); from dockyard.scan.analysis import main; main()"


class ScannerFailed(RuntimeError):
    """The child process ended without an answer (killed, out of memory, a bug)."""


async def analyse_in_child(store: BlobStore, layers: Sequence[Descriptor], config: ScanConfig) -> Analysis:
    """The analysis of these tar layers (in order), made by a child process at low CPU priority."""
    located: list[tuple[Descriptor, BlobLocation]] = []
    for layer in layers:
        location = await store.locate(layer.digest)
        if location is None:
            raise BlobUnknown(f"blob {layer.digest} is not in storage", detail={"digest": layer.digest})
        located.append((layer, location))
    clamd = ({"socket": config.clamd.socket, "timeout": config.clamd.timeout.total_seconds()}
             if config.clamd.socket else None)
    request = {"max_file_bytes": config.secret_max_file_bytes, "clamd": clamd,
               "layers": [{"digest": d.digest, "media_type": d.media_type, "path": loc.local_path}
                          for d, loc in located]}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert child.stdin is not None
    assert child.stdout is not None
    assert child.stderr is not None
    try:
        _, out, err = await asyncio.gather(_feed(child.stdin, request, store, located),
                                           child.stdout.read(), child.stderr.read())
        await child.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
        raise
    return _answer(out, err, child.returncode)


async def _feed(stdin: asyncio.StreamWriter, request: dict[str, Any], store: BlobStore,
                located: list[tuple[Descriptor, BlobLocation]]) -> None:
    try:
        stdin.write(json.dumps(request).encode() + b"\n")
        for _, location in located:
            if location.local_path is not None:
                continue
            async for chunk in store.read(location):
                stdin.writelines(frames(chunk))
                await stdin.drain()
            stdin.write(END_OF_LAYER)
        await stdin.drain()
        stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the child stopped reading (a layer it could not read): its answer says why


def _answer(out: bytes, err: bytes, returncode: int | None) -> Analysis:
    try:
        answer = json.loads(out) if out else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        # Only the exception's kind: its text may quote what the child read from a layer.
        last = (err.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise ScannerFailed(f"the scanner process ended with status {returncode} ({last.split(':')[0][:100]})")
    if "analysis" in answer:
        return Analysis.from_json(answer["analysis"])
    message = str(answer.get("message", "unknown"))
    if answer.get("error") == "clamd":
        raise ClamdUnavailable(message)
    if answer.get("error") == "blob":
        raise BlobUnknown(message)
    raise LayerUnreadable(message)
