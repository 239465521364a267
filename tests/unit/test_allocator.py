"""A worker bounds what glibc's malloc keeps (dockyard/allocator.py): large blocks go back to the
kernel when freed, and the number of arenas is capped, unless glibc's own variables say otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dockyard.allocator import _glibc

# A fresh interpreter allocates and frees 8 MiB blocks (as argon2 does with its 7 MiB of memory),
# then prints its resident anonymous memory: blocks kept by malloc after free stay resident.
CHILD = """
import ctypes, json, sys
from dockyard.allocator import bound_retention
done = bound_retention() if sys.argv[1] == "bounded" else []
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
size = 8 << 20
for _ in range(3):
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)  # touch every page: resident
    small = libc.malloc(64)  # something allocated after the block, so the arena cannot shrink past it
    libc.free(block)
status = open("/proc/self/status").read()
anon = int(next(l for l in status.splitlines() if l.startswith("RssAnon:")).split()[1])
print(json.dumps({"done": done, "anon_kib": anon}))
"""


def _run(mode: str, env: dict[str, str] | None = None) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only (this C library is not glibc)")
def test_freed_large_blocks_go_back_to_the_kernel() -> None:
    """With glibc's defaults a freed 8 MiB block raises the mmap threshold, and the next ones stay
    resident in the heap once freed; bounded, every one is unmapped when freed."""
    default, bounded = _run("default"), _run("bounded")
    assert bounded["done"] == ["MALLOC_MMAP_THRESHOLD_", "MALLOC_ARENA_MAX"]
    assert isinstance(default["anon_kib"], int)
    assert isinstance(bounded["anon_kib"], int)
    assert default["anon_kib"] - bounded["anon_kib"] >= 7 * 1024  # the default keeps a freed block


@pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only (this C library is not glibc)")
def test_glibcs_own_variables_win() -> None:
    """An operator who set MALLOC_ARENA_MAX or MALLOC_MMAP_THRESHOLD_ keeps that choice."""
    kept = _run("bounded", {"MALLOC_ARENA_MAX": "8", "MALLOC_MMAP_THRESHOLD_": str(32 << 20)})
    assert kept["done"] == []
