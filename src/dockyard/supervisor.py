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
from typing import Any

from granian.constants import Interfaces, Loops
from granian.server import Server

from dockyard import serving
from dockyard.serving import EFFECTIVE_CONFIG


class Supervisor(Server):  # type: ignore[misc,valid-type]  # granian picks its server class at import
    """granian's supervisor, handing each worker it forks a ``serving.Handoff``: the worker's
    number (for ``server.pin_workers``), and a stop that came before the worker was serving.

    granian forks each worker with the supervisor's SIGTERM/SIGINT handler still installed, and
    the worker replaces it only once the app is imported and built. A stop that reached the
    worker before then (systemd signals every process of a unit; the supervisor signals workers
    as it stops) only set a flag in the worker's copy of this object, and the stop waited
    server.graceful_timeout to kill it. Now this handler notes it in the worker's handoff; in
    the supervisor, it first marks the shared byte that says the supervisor stops.
    """

    def __init__(self, handoff: serving.Handoff, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handoff = serving.handoff = handoff
        self.supervisor_pid = os.getpid()

    def _spawn_worker(self, idx: int, *args: Any, **kwargs: Any) -> Any:
        self.handoff.slot = idx  # the worker is forked right after: it inherits its number
        return super()._spawn_worker(idx, *args, **kwargs)

    def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
        if os.getpid() != self.supervisor_pid:  # a worker not serving yet
            self.handoff.stopped_early = True
            return
        self.handoff.stopping[0] = 1
        super().signal_handler_interrupt(*args, **kwargs)


def main() -> None:
    server = json.loads(os.environ[EFFECTIVE_CONFIG])["server"]
    Supervisor(
        serving.Handoff(), "dockyard.serving:app_factory", factory=True, address=server["host"],
        port=server["port"], interface=Interfaces.RSGI if server["interface"] == "rsgi" else Interfaces.ASGI,
        workers=server["workers"] or os.cpu_count() or 1, loop=Loops.uvloop, backlog=server["backlog"],
        log_access=False, respawn_failed_workers=True, workers_kill_timeout=int(server["graceful_timeout"]),
    ).serve()


if __name__ == "__main__":
    main()
