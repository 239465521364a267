"""The benchmark's memory sampler (bench/proctree.py) on a real process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.proctree import PeakMemory, high_water_kib, pss_kib

# A parent that forks a child; the child touches 64 MB, says so, and waits to be told to exit.
TREE = """
import os, sys
if os.fork() == 0:
    block = bytearray(64 * 1000 * 1000)
    for i in range(0, len(block), 4096):
        block[i] = 1
    print("touched", flush=True)
    sys.stdin.readline()
    os._exit(0)
os.wait()
"""


def test_peaks_count_a_childs_memory_in_rss_and_in_pss() -> None:
    with subprocess.Popen([sys.executable, "-c", TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as tree:
        assert tree.stdout is not None
        assert tree.stdin is not None
        with PeakMemory(tree.pid, interval=0.02) as memory:
            assert tree.stdout.readline().strip() == "touched"
            time.sleep(0.1)  # a few samples while the child holds its memory
            tree.stdin.write("\n")
            tree.stdin.flush()
            tree.wait(timeout=30)
    assert len(memory.peaks_mb) == 2
    assert memory.peak_mb >= 64
    # The child's pages are its own, so they count in full in PSS too; what parent and child share
    # counts once in PSS and twice in RSS.
    assert 64 <= memory.peak_pss_mb < memory.peak_mb


def test_pss_of_a_process_and_of_one_that_does_not_exist() -> None:
    own, peak = pss_kib(os.getpid()), high_water_kib(os.getpid())
    assert own is not None
    assert peak is not None
    assert 0 < own <= peak
    assert pss_kib(2**22 + 1) is None  # above the kernel's largest PID
