"""A granian worker's stop signals, as ``dockyard.serving`` installs them (in a fresh interpreter).

granian's own handler passes each signal through a one-message channel that its server reads
once, so a second or third SIGTERM blocked the worker's main thread for good. These run the
handler a worker really gets, on a real uvloop loop, with real signals.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# As a worker gets them: granian's uvloop, handlers from ``set_loop_signals``, signals arriving
# while the loop runs (uvloop drops those that arrive while it does not).
THREE_SIGTERMS = """
import asyncio, os, signal, sys
from granian import _signals
from granian._loops import loops
if sys.argv[1] == "dockyard":
    from dockyard.serving import signal_workers_once
    signal_workers_once()
loop = loops.get("uvloop")
_signals.set_loop_signals(loop)

async def main():
    for _ in range(3):
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.05)

loop.run_until_complete(main())
print("handled")
"""


def _three_sigterms(handler: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run([sys.executable, "-c", THREE_SIGTERMS, handler], capture_output=True, text=True,
                              timeout=10, check=False)
    except subprocess.TimeoutExpired:
        return None


def test_a_worker_handles_any_number_of_stop_signals() -> None:
    done = _three_sigterms("dockyard")
    assert done is not None, "the worker's signal handler blocked"
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "handled"


def test_granians_own_handler_still_needs_the_mending() -> None:
    # When granian fixes its handler this fails: then signal_workers_once can go.
    done = _three_sigterms("granian")
    if done is not None and done.stdout.strip() == "handled":
        pytest.fail("granian's own worker signal handler no longer blocks on a repeated signal: "
                    "remove dockyard.serving.signal_workers_once")
