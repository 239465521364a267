"""The process ``dockyard serve`` becomes once the configuration is valid and the schema current.

It runs granian's supervisor and nothing else: granian forks every worker from this process, so
whatever it has loaded, each worker would carry too. It reads the settings ``serve`` resolved
from ``DOCKYARD_EFFECTIVE_CONFIG`` as plain JSON (already validated) instead of loading the
configuration machinery again. Started by ``os.execv``, it keeps ``serve``'s PID: SIGTERM and
SIGKILL reach it as they would have reached ``serve``.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from granian.constants import Interfaces, Loops
from granian.server import Server

from dockyard import serving
from dockyard.serving import EFFECTIVE_CONFIG, stop_arrived_early, supervisor_stops


class Supervisor(Server):  # type: ignore[misc,valid-type]  # granian picks its server class at import
    """granian's supervisor; it numbers the workers it forks (``serving.worker_slot``, for
    ``server.pin_workers``) and honours a stop signal in a worker that is still starting.

    granian forks each worker with the supervisor's SIGTERM/SIGINT handler still installed, and
    the worker replaces it only once the app is imported and built. A stop that reached the
    worker before then (systemd signals every process of a unit; the supervisor signals workers
    as it stops) only set a flag in the worker's copy of this object, and the stop waited
    server.graceful_timeout to kill it. In a worker, this handler now hands the signal to
    ``dockyard.serving``, which passes it on to the worker's server as soon as it has one; in
    the supervisor, it first marks that the supervisor stops, which a worker also acts on (a
    signal that reaches a worker before it first runs is lost altogether).
    """

    supervisor_pid = os.getpid()

    def _spawn_worker(self, idx: int, *args: Any, **kwargs: Any) -> Any:
        serving.worker_slot = idx  # the worker is forked right after: it inherits its number
        return super()._spawn_worker(idx, *args, **kwargs)

    def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
        if os.getpid() != self.supervisor_pid:
            stop_arrived_early(args[0] if args else signal.SIGTERM)
            return
        supervisor_stops()
        super().signal_handler_interrupt(*args, **kwargs)


def main() -> None:
    server = json.loads(os.environ[EFFECTIVE_CONFIG])["server"]
    Supervisor(
        "dockyard.serving:app_factory", factory=True, address=server["host"], port=server["port"],
        interface=Interfaces.RSGI if server["interface"] == "rsgi" else Interfaces.ASGI,
        workers=server["workers"] or os.cpu_count() or 1, loop=Loops.uvloop, backlog=server["backlog"],
        log_access=False, respawn_failed_workers=True, workers_kill_timeout=int(server["graceful_timeout"]),
    ).serve()


if __name__ == "__main__":
    main()
