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


# Stop signals a worker got before granian installed the worker's own handlers (see
# ``dockyard.supervisor.Supervisor``); passed on as soon as it has.
_early_stops: list[int] = []
# Set by the supervisor as it starts to stop: one shared byte, made when the supervisor imports
# this module, so every worker it forks sees it. A signal that reaches a worker before the
# worker first runs is lost (CPython clears pending signals in a forked child); this is not.
_supervisor_stopping = mmap.mmap(-1, 1)


# Which worker this process is (0, 1, ...): set by the supervisor just before it forks the
# worker (``dockyard.supervisor.Supervisor``), so each worker inherits its own number.
worker_slot: int | None = None


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
    if worker_slot is None or len(allowed) < 2:
        return
    try:
        os.sched_setaffinity(0, {allowed[worker_slot % len(allowed)]})
    except OSError as exc:  # a sandbox that forbids it: serve unpinned rather than not at all
        logging.getLogger(__name__).warning("server.pin_workers: cannot pin this worker's threads (%s)", exc)
        return
    loop.call_soon(os.sched_setaffinity, 0, set(allowed))


def stop_arrived_early(signum: int) -> None:
    """Called in a worker for a SIGTERM/SIGINT that arrived before granian's handlers."""
    _early_stops.append(signum)


def supervisor_stops() -> None:
    """Called in the supervisor as it starts to stop, before it signals the workers."""
    _supervisor_stopping[0] = 1


def signal_workers_once() -> None:
    """Make a granian worker act on its first stop signal, whenever it came, and on that only.

    granian's worker handler passes every SIGTERM/SIGINT on to its server through a channel with
    room for one message, which is read once. The second signal that arrives before the server
    reads it (a service manager signals every process of a unit, and the supervisor signals each
    worker again as it stops), or the third one after, blocks the handler, and with it the
    worker's main thread, for good: the stop then waits server.graceful_timeout to kill the
    worker. Any later signal has nothing to add, so only the first is passed on; one that came
    before these handlers existed is passed on as soon as they do, so the worker stops the way
    a serving one does. granian looks ``set_loop_signals`` up in its ``_signals`` module when it
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
        if _early_stops or _supervisor_stopping[0]:
            handler(_early_stops[0] if _early_stops else signal.SIGTERM, None)
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
