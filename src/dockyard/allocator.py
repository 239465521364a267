"""How a worker's C allocator (glibc malloc) keeps memory: bounded, so a worker stays flat.

Under load a worker's resident memory grew by tens of MB an hour while the bytes in use stayed
flat (``mallinfo2``: in use ~18 MB, held free 2 → 46 MB). Two habits of glibc's malloc do that:

- Its threshold for serving a large block from its own ``mmap`` (given back to the kernel when
  freed) rises to the size of the largest such block freed, up to 32 MiB. After the first argon2
  run (``auth.argon2_memory_kib``, 7 MiB) every later one is carved from an arena, and the space
  stays there, fragmented, when it is freed.
- Each thread that allocates may get an arena of its own, up to 8 per core: granian's threads,
  the thread pool that runs argon2 and file I/O. Each arena keeps its own free space.

So, in each worker: blocks of ``MMAP_THRESHOLD`` and more are always mapped on their own (given
back when freed), and there are at most ``ARENAS`` arenas. glibc's own environment variables
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_ARENA_MAX``) still win: a parameter they set is left alone.
Other C libraries (musl) are left alone too.
"""

from __future__ import annotations

import ctypes
import os

MMAP_THRESHOLD = 1024 * 1024
ARENAS = 2
# mallopt(3) parameters, from glibc's malloc.h.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_PARAMETERS = ((_M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", MMAP_THRESHOLD),
               (_M_ARENA_MAX, "MALLOC_ARENA_MAX", ARENAS))


def bound_retention(environ: dict[str, str] | None = None) -> list[str]:
    """Set glibc's parameters for this process; the names of those set (none off glibc)."""
    environ = dict(os.environ) if environ is None else environ
    libc = _glibc()
    if libc is None:
        return []
    done = []
    for parameter, variable, value in _PARAMETERS:
        if variable not in environ and libc.mallopt(parameter, value) == 1:
            done.append(variable)
    return done


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)  # the symbols the interpreter is linked with, the C library's among them
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return libc
