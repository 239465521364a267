"""One typed, frozen configuration tree.

Loaded from a TOML file, then overridden mechanically by environment variables:
``DOCKYARD_STORAGE__ROOT=/srv/blobs`` sets ``storage.root``; ``DOCKYARD_DATA_DIR`` sets
``data_dir``. Every setting is documented in ``docs/configuration.md`` (a test checks it).
Validation happens once, at start-up; an invalid file is a ``ConfigError`` naming the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dockyard.errors import ConfigError

ENV_PREFIX = "DOCKYARD_"


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(5000, ge=1, le=65535)
    workers: int = Field(0, ge=0, description="0 means one worker per CPU core")
    backlog: int = Field(1024, ge=16)
    graceful_timeout: float = Field(30.0, gt=0)
    interface: Literal["rsgi", "asgi"] = "rsgi"


class StorageConfig(Section):
    driver: Literal["filesystem", "memory"] = "filesystem"
    root: Path | None = Field(None, description="defaults to <data_dir>/storage")
    fsync: bool = True


class DatabaseConfig(Section):
    url: str | None = Field(None, description="defaults to SQLite in <data_dir>/dockyard.db")
    pool_size: int = Field(10, ge=1)
    max_overflow: int = Field(10, ge=0)
    pool_timeout: float = Field(30.0, gt=0)
    statement_timeout_ms: int = Field(30000, ge=0)
    echo: bool = False
    auto_migrate: bool = Field(True, description="serve migrates the schema itself; off: it refuses a stale one")


class RegistryConfig(Section):
    manifest_max_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    list_page_max: int = Field(1000, ge=1)
    manifest_cache_entries: int = Field(4096, ge=0)
    upload_expiry_seconds: int = Field(24 * 3600, ge=60)
    upload_purge_interval_seconds: int = Field(600, ge=1)
    upload_read_chunk_bytes: int = Field(1024 * 1024, ge=4096)


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True


class Config(Section):
    data_dir: Path = Path("data")
    server: ServerConfig = ServerConfig()
    storage: StorageConfig = StorageConfig()
    database: DatabaseConfig = DatabaseConfig()
    registry: RegistryConfig = RegistryConfig()
    log: LogConfig = LogConfig()

    @property
    def storage_root(self) -> Path:
        return self.storage.root or self.data_dir / "storage"

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{(self.data_dir / 'dockyard.db').resolve()}"

    def with_overrides(self, **sections: Any) -> Config:
        """A copy with some keys replaced, validated again (CLI flags use this)."""
        data = self.model_dump()
        for key, value in sections.items():
            if isinstance(value, Mapping):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return build_config(data)


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``DOCKYARD_A__B=v`` variables into the nested mapping ``{"a": {"b": "v"}}``."""
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "DOCKYARD_CONFIG":
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        if not all(path) or path[0] not in Config.model_fields:
            continue  # not ours (DOCKYARD_TEST_*, DOCKYARD_ADMIN_PASSWORD, ...)
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: {'.'.join(path)} is not a section")
        node[path[-1]] = value
    return tree


def merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``top`` over ``base``."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def build_config(data: Mapping[str, Any]) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"])
        message = "unknown setting (check the spelling in docs/configuration.md)" \
            if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{key}: {message}")
    return "; ".join(lines)


def read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the file (if any), apply environment overrides, validate."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get("DOCKYARD_CONFIG"):
        path = Path(environ["DOCKYARD_CONFIG"])
    data = read_file(path) if path is not None else {}
    return build_config(merge(data, env_overrides(environ)))
