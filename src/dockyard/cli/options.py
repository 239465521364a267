"""What every ``dockyard`` command shares: ``--config`` / ``--data-dir`` and loading the config."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from dockyard.config import Config, load_config
from dockyard.errors import ConfigError
from dockyard.storage.layout import check_key_prefix

T = TypeVar("T")

CONFIG_HELP = "TOML configuration file (default: none; DOCKYARD_* environment variables still apply)"
DATA_DIR_HELP = "directory for the SQLite database and blob storage (default ./data)"


def load(config_file: Path | None, data_dir: Path | None, **server: Any) -> Config:
    try:
        config = load_config(config_file)
        if data_dir is not None:
            config = config.with_overrides(data_dir=data_dir)
        overrides = {k: v for k, v in server.items() if v is not None}
        if config.storage.driver == "s3":
            check_key_prefix(config.storage.s3.prefix)
        return config.with_overrides(server=overrides) if overrides else config
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration: {exc}") from None


def make_data_dir(config: Config) -> None:
    """Create the data directory if needed; a path that cannot be one is a clear error."""
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "it is a file" if isinstance(exc, FileExistsError) else exc.strerror
        raise click.ClickException(f"cannot use {config.data_dir} as the data directory ({reason}): "
                                   "choose another with --data-dir (data_dir in the config)") from None
    if not os.access(config.data_dir, os.W_OK | os.X_OK):
        raise click.ClickException(f"cannot write in the data directory {config.data_dir}: give this user "
                                   "write access to it, or choose another with --data-dir (data_dir in the config)")


def config_options(func: Any) -> Any:
    func = click.option("--data-dir", type=click.Path(path_type=Path), help=DATA_DIR_HELP)(func)
    return click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
                        help=CONFIG_HELP)(func)


def run_on_database(config: Config, work: Coroutine[Any, Any, T]) -> T:
    """Run a command's ``work``; a database it cannot reach, or that refuses it, is a clear error
    naming the URL (without its password) and the setting to fix, not a traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from dockyard.errors import DatabaseUnavailable

    try:
        return asyncio.run(work)
    except (OSError, DBAPIError, DatabaseUnavailable) as exc:
        # The store's seam turns a failure into DatabaseUnavailable; the reason is what it wraps.
        cause = exc.__cause__ if isinstance(exc, DatabaseUnavailable) and exc.__cause__ else exc
        reason = cause.orig if isinstance(cause, DBAPIError) else cause
        url = make_url(config.database_url).render_as_string(hide_password=True)
        raise click.ClickException(f"the database at {url} failed: {reason}; check database.url "
                                   "(DOCKYARD_DATABASE__URL) and that the database is up") from None
