"""A server's process tree and its peak memory, read from ``/proc``.

A server is "the process we started and all its descendants" (granian's workers, for dockyard).
Its peak RSS is the sum, over every process that was ever part of the tree, of that process's
``VmHWM`` (the kernel's per-process high-water mark of resident memory). The sampler only has to
see each process once before it exits; a spike between two samples is not missed.

RSS counts a page once in every process that maps it: the shared libraries every worker maps,
and what workers share with the process they were forked from. The tree's physical memory is its
PSS (each shared page split between the processes that map it), summed over the tree at one
moment. The kernel keeps no high-water mark of PSS, so its peak is the largest sample: a spike
between two samples is missed.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

PROC = Path("/proc")


def _parent_pid(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1])


def tree_pids(root: int) -> list[int]:
    """``root`` and all its living descendants."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            parent = _parent_pid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _proc_kib(pid: int, name: str, key: str) -> int | None:
    """The ``key:`` line of ``/proc/<pid>/<name>``, in KiB, or None if the process is gone."""
    try:
        text = (PROC / str(pid) / name).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def pss_kib(pid: int) -> int | None:
    """The process's proportional set size in KiB (``/proc/<pid>/smaps_rollup``), or None if it is gone."""
    return _proc_kib(pid, "smaps_rollup", "Pss")


def high_water_kib(pid: int) -> int | None:
    """The process's peak resident set (``VmHWM``) in KiB, or None if it is gone."""
    return _proc_kib(pid, "status", "VmHWM")


class PeakMemory:
    """Samples a process tree in a background thread; ``peak_mb`` is the sum of per-process peaks,
    ``peak_pss_mb`` the largest PSS of the whole tree seen at one sample.

    Use as a context manager around everything the server should be measured for.
    """

    def __init__(self, root_pid: int, interval: float = 0.1) -> None:
        self._root = root_pid
        self._interval = interval
        self._peaks_kib: dict[int, int] = {}
        self._peak_pss_kib = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        """Record the current high-water mark of every process in the tree, and the tree's PSS."""
        pss = 0
        for pid in tree_pids(self._root):
            kib = high_water_kib(pid)
            if kib is not None:
                self._peaks_kib[pid] = max(kib, self._peaks_kib.get(pid, 0))
            pss += pss_kib(pid) or 0
        self._peak_pss_kib = max(self._peak_pss_kib, pss)

    @property
    def peak_mb(self) -> float:
        """Sum of the peaks of every process seen, in MB (10^6 bytes)."""
        return sum(self._peaks_kib.values()) * 1024 / 1e6

    @property
    def peak_pss_mb(self) -> float:
        """The largest PSS of the whole tree in any sample, in MB (10^6 bytes)."""
        return self._peak_pss_kib * 1024 / 1e6

    @property
    def peaks_mb(self) -> list[float]:
        """Each process's peak, in MB, in the order the processes were first seen."""
        return [kib * 1024 / 1e6 for kib in self._peaks_kib.values()]

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.sample()

