"""Run end-to-end tests against dockyard or, for comparison, the reference registry.

`registry_process(data_dir, workers)` returns a `ServerProcess` (dockyard) by default. With
`DOCKYARD_E2E_TARGET=distribution` it returns a `DistributionProcess` instead: CNCF distribution
(`docker-registry`, Debian package) on the same kind of free loopback port and data directory,
with the same `start` / `stop` / `kill` / `url` surface. That lets a test be checked against
a registry that is known to work, and lets tests that are about dockyard's own extras (for example
its error bodies) ask `is_dockyard()`.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tests.support.server import ManagedProcess, ServerProcess

TARGET_ENV = "DOCKYARD_E2E_TARGET"


class RegistryProcess(Protocol):
    """What e2e tests need from a registry process."""

    proc: subprocess.Popen[bytes] | None

    @property
    def url(self) -> str: ...

    def start(self, timeout: float = 30.0) -> RegistryProcess: ...

    def stop(self, timeout: float = 15.0) -> int | None: ...

    def kill(self) -> None: ...


def is_dockyard() -> bool:
    """True unless the tests were pointed at the reference registry."""
    return os.environ.get(TARGET_ENV, "dockyard") == "dockyard"


def registry_process(data_dir: Path, workers: int = 1, env: dict[str, str] | None = None) -> RegistryProcess:
    """A not-yet-started registry process for the selected target (`env`: dockyard's extra settings).

    dockyard starts with its system admin's password set (``tests.support.server.ADMIN_AUTH``);
    the reference registry runs without authentication, and ignores the credentials tests send.
    """
    if is_dockyard():
        return ServerProcess(data_dir=data_dir, workers=workers, env=dict(env or {}))
    return DistributionProcess(data_dir=data_dir)


_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
"""


@dataclass
class DistributionProcess(ManagedProcess):
    """One `docker-registry serve` process; `start()` waits until `/v2/` answers 200."""

    def start(self, timeout: float = 30.0) -> DistributionProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir.parent / f"distribution-{self.port}.yml"
        config.write_text(_CONFIG.format(root=self.data_dir, port=self.port))
        self._launch("docker-registry", ["docker-registry", "serve", str(config)], "/v2/", timeout)
        return self
