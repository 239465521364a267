"""What each granian worker imports: the app built from the config the ``serve`` command resolved.

``dockyard serve`` validates the configuration once, then hands it to its workers as JSON in
``DOCKYARD_EFFECTIVE_CONFIG`` (workers are separate processes; nothing is built at import time).
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from dockyard.config import Config
    from dockyard.http.observe import ObserveMiddleware
    from dockyard.http.rsgi import RSGIBridge

EFFECTIVE_CONFIG = "DOCKYARD_EFFECTIVE_CONFIG"


def configure_logging(config: Config) -> None:
    logging.basicConfig(stream=sys.stdout, level=config.log.level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


@dataclass(slots=True)
class Handoff:
    """What the supervisor hands each worker it forks: a forked child inherits this object as it
    was at the fork, and the ``stopping`` byte stays shared with the supervisor after it.

    A stop signal can reach a worker before granian has installed the worker's own handlers.
    Signalled directly, the worker notes it in ``stopped_early`` (``dockyard.supervisor``); one
    that reached it before it first ran is lost (CPython clears pending signals in a forked
    child), but the supervisor, stopping, has set ``stopping`` first. Either is passed on to
    granian as soon as it can act on it (``signal_workers_once``).
    """

    stopping: mmap.mmap = field(default_factory=lambda: mmap.mmap(-1, 1))  # byte 0 is 1 once stopping
    slot: int | None = None  # which worker this is: 0, 1, ... (set just before each fork)
    stopped_early: bool = False


# Set by ``dockyard.supervisor`` before it forks any worker; None wherever no supervisor forked us.
handoff: Handoff | None = None


def pin_granian_threads(loop: asyncio.AbstractEventLoop) -> None:
    """Put the threads granian is about to start for this worker on one CPU, the worker's own.

    Called at the end of the app's startup, right before granian starts serving: the main
    thread is pinned, so the runtime threads granian creates now (and the file-reading threads
    those create later) inherit its CPU; once the loop runs again, serving, the main thread is
    let go, and what it starts from then on (the app's Python threads) runs anywhere. Threads
    that hand each other work all the time then share a CPU's caches and never wait for
    another CPU to wake (docs/configuration.md, ``server.pin_workers``).
    """
    allowed = sorted(os.sched_getaffinity(0))
    if handoff is None or handoff.slot is None or len(allowed) < 2:
        return
    try:
        os.sched_setaffinity(0, {allowed[handoff.slot % len(allowed)]})
    except OSError as exc:  # a sandbox that forbids it: serve unpinned rather than not at all
        logging.getLogger(__name__).warning("server.pin_workers: cannot pin this worker's threads (%s)", exc)
        return
    loop.call_soon(os.sched_setaffinity, 0, set(allowed))


def signal_workers_once() -> None:
    """Make a granian worker act on its first stop signal, whenever it came, and on that only.

    granian's worker handler passes every SIGTERM/SIGINT on to its server through a channel with
    room for one message, which is read once. The second signal that arrives before the server
    reads it (a service manager signals every process of a unit, and the supervisor signals each
    worker again as it stops), or the third one after, blocks the handler, and with it the
    worker's main thread, for good: the stop then waits server.graceful_timeout to kill the
    worker. Any later signal has nothing to add, so only the first is passed on; a stop that came
    before these handlers existed (``Handoff``) is passed on as soon as they do, so the worker
    stops the way a serving one does. granian looks ``set_loop_signals`` up in its ``_signals`` module when it
    starts a worker's server, after calling ``app_factory``, which is where this is installed.
    """
    from granian import _signals
    from granian._granian import WorkerSignal

    def set_loop_signals(loop: asyncio.AbstractEventLoop) -> Any:
        stop = WorkerSignal()
        stopping = False

        def handler(_signum: int, _frame: object) -> None:
            nonlocal stopping
            if not stopping:
                stopping = True
                stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            # The loop's handler runs while the loop does; uvloop drops a signal that arrives
            # while it does not (before the app's startup, and while granian starts serving), so
            # the same handler is also Python's own for the signal, which runs either way.
            loop.add_signal_handler(signum, handler, signum, None)
            signal.signal(signum, handler)
        if handoff is not None and (handoff.stopped_early or handoff.stopping[0]):
            handler(signal.SIGTERM, None)
        return stop

    _signals.set_loop_signals = set_loop_signals


def app_factory() -> ObserveMiddleware | RSGIBridge:
    """Granian calls this once per worker process."""
    signal_workers_once()
    from dockyard.app import create_app  # here, not at import: the supervisor never loads the app
    from dockyard.config import build_config
    from dockyard.http.rsgi import RSGIBridge

    config = build_config(json.loads(os.environ[EFFECTIVE_CONFIG]))
    configure_logging(config)
    app = create_app(config)
    if config.server.interface == "asgi":
        return app
    return RSGIBridge(app, after_startup=pin_granian_threads if config.server.pin_workers else None)
