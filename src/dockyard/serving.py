"""A worker: the app built from the config the ``serve`` command resolved, served by granian.

``dockyard serve`` validates the configuration once, then hands it to its workers as JSON in
``DOCKYARD_EFFECTIVE_CONFIG`` (workers are separate processes; nothing is built at import time).
The supervisor (``dockyard.supervisor``) forks each worker and calls ``run_worker`` in it: only
then are granian and the app imported, so the supervisor itself stays a bare interpreter.

Each worker runs granian's server in its own event loop (``granian.server.embed``): the worker
builds the app, runs its lifespan startup, serves until SIGTERM or SIGINT, lets the requests in
flight finish, and runs the lifespan shutdown. Every worker listens on the same address with
``SO_REUSEPORT``, as granian's own workers do, and the kernel spreads the connections.
"""

from __future__ import annotations

# The supervisor imports this module (for EFFECTIVE_CONFIG) and keeps what it loads for as long as
# the server runs: only the smallest standard modules at the top, the rest where it is used.
import json
import os
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from typing import Any

    from dockyard.config import Config
    from dockyard.http.observe import ObserveMiddleware
    from dockyard.http.rsgi import RSGIBridge

EFFECTIVE_CONFIG = "DOCKYARD_EFFECTIVE_CONFIG"
EMBEDDED_WARNING = "Embedded server is experimental!"
OWN_FILES = 256  # descriptors a worker needs besides its connections: database, blobs, logs


def configure_logging(config: Config) -> None:
    import logging

    logging.basicConfig(stream=sys.stdout, level=config.log.level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def pin_granian_threads(loop: asyncio.AbstractEventLoop, slot: int) -> None:
    """Put the threads granian is about to start for this worker on one CPU, the worker's own.

    Called right before granian starts serving: the main thread is pinned, so the runtime
    threads granian creates now (and the file-reading threads those create later) inherit its
    CPU; once the loop runs again, serving, the main thread is let go, and what it starts from
    then on (the app's Python threads) runs anywhere. Threads that hand each other work all the
    time then share a CPU's caches and never wait for another CPU to wake
    (docs/configuration.md, ``server.pin_workers``).
    """
    import logging

    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return
    try:
        os.sched_setaffinity(0, {allowed[slot % len(allowed)]})
    except OSError as exc:  # a sandbox that forbids it: serve unpinned rather than not at all
        logging.getLogger(__name__).warning("server.pin_workers: cannot pin this worker's threads (%s)", exc)
        return
    loop.call_soon(os.sched_setaffinity, 0, set(allowed))


def _prepare_to_serve(loop: asyncio.AbstractEventLoop, slot: int, pin: bool) -> None:
    """Right before granian starts serving (RSGI): pin its threads, and say so once it serves."""
    import logging

    if pin:
        pin_granian_threads(loop, slot)
    loop.call_soon(logging.getLogger(__name__).info, "worker-%d serving (pid %d)", slot + 1, os.getpid())


def build_app(config: Config, slot: int = 0) -> ObserveMiddleware | RSGIBridge:
    """The app a worker serves: the ASGI app itself, or wrapped for granian's RSGI interface."""
    from functools import partial

    from dockyard.app import create_app
    from dockyard.http.rsgi import RSGIBridge

    app = create_app(config)
    if config.server.interface == "asgi":
        return app
    return RSGIBridge(app, before_serving=partial(_prepare_to_serve, slot=slot, pin=config.server.pin_workers))


def run_worker(slot: int, stop_requested: Callable[[], bool]) -> int:
    """Serve as worker ``slot`` (0, 1, ...) until stopped; the process's exit status.

    Until the worker's loop takes SIGTERM and SIGINT itself, the handler it was forked with notes
    them, and ``stop_requested`` says whether one came (``dockyard.supervisor``); such a stop is
    acted on as soon as the server exists.
    """
    import uvloop

    from dockyard.allocator import bound_retention
    from dockyard.config import build_config

    bound_retention()  # before the app and granian allocate: see dockyard/allocator.py
    config = build_config(json.loads(os.environ[EFFECTIVE_CONFIG]))
    configure_logging(config)
    app = build_app(config, slot)
    uvloop.run(_serve(config, app, slot, stop_requested))
    return 0


def _server_class() -> type[Any]:
    """granian's embedded server, listening on a socket dockyard sets up (``http.sockets``).

    On Linux granian lets each worker build its own listening socket in native code, out of
    reach; like granian on other systems, this builds it first (``SO_REUSEPORT`` all the same) and
    hands it over, having set the send timeout on it that every connection inherits.
    """
    from granian._granian import ListenerSpec
    from granian.server.embed import Server

    from dockyard.http.sockets import set_send_timeout

    class DockyardServer(Server):
        send_timeout = 60.0

        def _init_shared_socket(self) -> None:
            holder: Any = ListenerSpec(self.bind_addr, self.bind_port, self.backlog).build()
            set_send_timeout(holder.get_fd(), self.send_timeout)
            self._shd, self._sfd, self._ssp = holder, holder.get_fd(), None

    return DockyardServer


def _check_open_files(config: Config) -> None:
    """Warn when a worker could run out of file descriptors before ``server.max_connections``."""
    import logging
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = config.server.max_connections + OWN_FILES
    if soft != resource.RLIM_INFINITY and soft < needed:
        logging.getLogger(__name__).warning(
            "server.max_connections is %d but this worker may open only %d files (RLIMIT_NOFILE): "
            "raise the limit (ulimit -n, LimitNOFILE= in systemd) to at least %d or lower the setting",
            config.server.max_connections, soft, needed)


async def _serve(config: Config, app: Any, slot: int, stop_requested: Callable[[], bool]) -> None:
    import asyncio
    import contextlib
    import logging

    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    from dockyard.http.rsgi import RSGIBridge
    from dockyard.http.sockets import SilentConnections

    server = _server_class()(
        app, address=config.server.host, port=config.server.port, backlog=config.server.backlog,
        interface=Interfaces.RSGI if isinstance(app, RSGIBridge) else Interfaces.ASGI,
        websockets=False, log_level=LogLevels.warning, log_access=False,
        backpressure=config.server.max_connections,
        http1_settings=HTTP1Settings(header_read_timeout=max(1, round(config.server.header_read_timeout * 1000))),
    )
    server.send_timeout = config.server.send_timeout
    _check_open_files(config)
    logging.getLogger("_granian").addFilter(lambda record: record.getMessage() != EMBEDDED_WARNING)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Once the loop runs, a signal stops the server (repeats change nothing); one that came
        # before was noted (``run_worker``), and is acted on right here.
        loop.add_signal_handler(signum, server.stop)
    if stop_requested():
        return
    if isinstance(app, RSGIBridge):
        await app.startup()
    if stop_requested():  # came while the app started: serve() starts and stops at once
        server.stop()
    elif not isinstance(app, RSGIBridge):
        logging.getLogger(__name__).info("worker-%d serving (pid %d)", slot + 1, os.getpid())
    silent = asyncio.ensure_future(SilentConnections(config.server.port, config.server.header_read_timeout).run())
    try:
        await server.serve()
    finally:
        silent.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await silent
    if isinstance(app, RSGIBridge):
        await app.shutdown()
