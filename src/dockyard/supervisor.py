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

from granian.constants import Interfaces, Loops
from granian.server import Server

from dockyard.serving import EFFECTIVE_CONFIG


def main() -> None:
    server = json.loads(os.environ[EFFECTIVE_CONFIG])["server"]
    Server(
        "dockyard.serving:app_factory", factory=True, address=server["host"], port=server["port"],
        interface=Interfaces.RSGI if server["interface"] == "rsgi" else Interfaces.ASGI,
        workers=server["workers"] or os.cpu_count() or 1, loop=Loops.uvloop, backlog=server["backlog"],
        log_access=False, respawn_failed_workers=True, workers_kill_timeout=int(server["graceful_timeout"]),
    ).serve()


if __name__ == "__main__":
    main()
