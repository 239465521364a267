"""What each granian worker imports: the app built from the config the ``serve`` command resolved.

``dockyard serve`` validates the configuration once, then hands it to its workers as JSON in
``DOCKYARD_EFFECTIVE_CONFIG`` (workers are separate processes; nothing is built at import time).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.config import Config
    from dockyard.http.observe import ObserveMiddleware
    from dockyard.http.rsgi import RSGIBridge

EFFECTIVE_CONFIG = "DOCKYARD_EFFECTIVE_CONFIG"


def configure_logging(config: Config) -> None:
    logging.basicConfig(stream=sys.stdout, level=config.log.level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def app_factory() -> ObserveMiddleware | RSGIBridge:
    """Granian calls this once per worker process."""
    from dockyard.app import create_app  # here, not at import: the supervisor never loads the app
    from dockyard.config import build_config
    from dockyard.http.rsgi import RSGIBridge

    config = build_config(json.loads(os.environ[EFFECTIVE_CONFIG]))
    configure_logging(config)
    app = create_app(config)
    return RSGIBridge(app) if config.server.interface == "rsgi" else app
