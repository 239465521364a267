"""What each granian worker imports: the app built from the config the ``serve`` command resolved.

``dockyard serve`` validates the configuration once, then hands it to its workers as JSON in
``DOCKYARD_EFFECTIVE_CONFIG`` (workers are separate processes; nothing is built at import time).
"""

from __future__ import annotations

import json
import logging
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


def signal_workers_once() -> None:
    """Make a granian worker act on its first stop signal only.

    granian's worker handler passes every SIGTERM/SIGINT on to its server through a channel with
    room for one message, which is read once. The second signal that arrives before the server
    reads it (a service manager signals every process of a unit, and the supervisor signals each
    worker again as it stops), or the third one after, blocks the handler, and with it the
    worker's main thread, for good: the stop then waits server.graceful_timeout to kill the
    worker. Any later signal has nothing to add, so only the first is passed on. granian looks
    ``set_loop_signals`` up in its ``_signals`` module when it starts a worker's server, after
    calling ``app_factory``, which is where this is installed.
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
            loop.add_signal_handler(signum, handler, signum, None)
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
    return RSGIBridge(app) if config.server.interface == "rsgi" else app
