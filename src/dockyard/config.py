"""One typed, frozen configuration tree.

Loaded from a TOML file, then overridden mechanically by environment variables:
``DOCKYARD_STORAGE__ROOT=/srv/blobs`` sets ``storage.root``; ``DOCKYARD_DATA_DIR`` sets
``data_dir``. Every setting is documented in ``docs/configuration.md`` (a test checks it).
Validation happens once, at start-up; an invalid file is a ``ConfigError`` naming each bad key.

The tree is plain frozen dataclasses, checked by ``build_config`` against their annotations
(types, ``Literal`` choices) and the bounds declared with ``setting()``: every process carries
it, and a validation library would cost each of them more memory than the rest of the tree.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from dockyard.errors import ConfigError

ENV_PREFIX = "DOCKYARD_"
T = TypeVar("T")
_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})


def setting(default: T, *, minimum: float | None = None, maximum: float | None = None,
            positive: bool = False) -> T:
    """A field with bounds that ``build_config`` enforces."""
    bounds = {"minimum": minimum, "maximum": maximum, "positive": positive}
    return field(default=default, metadata=bounds)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = setting(5000, minimum=1, maximum=65535)
    workers: int = setting(0, minimum=0)  # 0: one per CPU core
    backlog: int = setting(1024, minimum=16)
    graceful_timeout: float = setting(30.0, positive=True)
    interface: Literal["rsgi", "asgi"] = "rsgi"
    pin_workers: bool = True  # each worker's granian threads on a CPU of their own (rsgi only)
    # The workers' prometheus files (memory-mapped: never on the data volume, where a full disk
    # would kill the workers with SIGBUS). Default: a private directory in /dev/shm, made at start
    # and removed at exit.
    metrics_dir: Path | None = None
    # Slow and hostile clients (docs/configuration.md): a request head must arrive within this
    # (a new connection, or a kept-alive one waiting for its next request, is closed after it);
    header_read_timeout: float = setting(30.0, positive=True, maximum=3600)
    # a request body must bring body_min_rate bytes/s over each such span of waiting for it
    # (408, connection closed);
    body_read_timeout: float = setting(30.0, positive=True, maximum=3600)
    # a response may wait at most this long for the client to take more bytes (connection dropped);
    send_timeout: float = setting(60.0, positive=True, maximum=3600)
    # connections a worker holds at once; more wait in the listen backlog until one closes.
    max_connections: int = setting(2048, minimum=16)
    body_min_rate: int = setting(1024, minimum=0)  # bytes per second; see body_read_timeout


@dataclass(frozen=True, slots=True)
class S3Config:
    endpoint: str | None = None  # default: AWS; e.g. http://127.0.0.1:7480 for radosgw
    region: str = "us-east-1"
    bucket: str = "dockyard"
    prefix: str = ""
    access_key: str | None = None  # default: the standard AWS environment variables and files
    secret_key: str | None = None
    path_style: bool = True
    redirect: bool = True
    redirect_expiry_seconds: int = setting(300, minimum=1, maximum=7 * 24 * 3600)
    # A store that is down, hangs or fails costs a request at most about
    # max_attempts x (connect_timeout + read_timeout) plus backoff, then it answers 503.
    connect_timeout: float = setting(5.0, positive=True, maximum=300)
    read_timeout: float = setting(30.0, positive=True, maximum=3600)
    max_attempts: int = setting(3, minimum=1, maximum=10)  # per S3 request, the first included
    retry_mode: Literal["standard", "adaptive"] = "standard"


@dataclass(frozen=True, slots=True)
class StorageConfig:
    driver: Literal["filesystem", "memory", "s3"] = "filesystem"
    root: Path | None = None  # default: <data_dir>/storage
    fsync: bool = True
    s3: S3Config = field(default_factory=S3Config)


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str | None = None  # default: SQLite in <data_dir>/dockyard.db
    pool_size: int = setting(10, minimum=1)
    max_overflow: int = setting(10, minimum=0)
    pool_timeout: float = setting(30.0, positive=True)
    statement_timeout_ms: int = setting(30000, minimum=0)
    echo: bool = False
    auto_migrate: bool = True
    # PostgreSQL: seconds to open a connection, and for an answer to any query (a server that
    # stopped answering is not stopped by statement_timeout_ms, which the server itself enforces).
    connect_timeout: float = setting(5.0, positive=True)
    command_timeout: float = setting(40.0, positive=True)
    busy_timeout_ms: int = setting(30000, minimum=0)  # SQLite: how long a writer waits for the lock


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    manifest_max_bytes: int = setting(4 * 1024 * 1024, minimum=1024)
    list_page_max: int = setting(1000, minimum=1)
    manifest_cache_entries: int | None = setting(None, minimum=0)  # deprecated: manifest_cache_bytes
    upload_expiry_seconds: int = setting(24 * 3600, minimum=60)
    upload_purge_interval_seconds: int = setting(600, minimum=1)
    # Per worker: uploads (POST/PATCH/PUT under /blobs/uploads) served at once; more get 503 + Retry-After.
    max_uploads_in_flight: int = setting(64, minimum=1)
    manifest_cache_bytes: int = setting(2 * 1024 * 1024, minimum=0)  # per worker


@dataclass(frozen=True, slots=True)
class AuthConfig:
    # The token endpoint's absolute URL sent in every challenge (never taken from Host).
    # Default: http://<server.host>:<server.port>/token; set it when clients reach the registry
    # through another name (a load balancer, TLS in front).
    realm: str | None = None
    service: str = "dockyard"  # the token audience clients send as ?service=
    issuer: str = "dockyard"
    algorithm: Literal["ES256", "RS256"] = "ES256"
    key_file: Path | None = None  # a PEM private key shared by every node; default: kept in the database
    token_lifetime_seconds: int = setting(300, minimum=60, maximum=3600)
    refresh_token_lifetime_seconds: int = setting(30 * 24 * 3600, minimum=300)
    users_create_projects: bool = False  # a user's first push into a new project creates it
    login_failure_limit: int = setting(10, minimum=1)  # per user, per window
    login_failure_address_limit: int = setting(30, minimum=1)  # per client address, per window
    # Short, so a locked-out user (or a flood of bad guesses at a name) waits a minute, not hours.
    login_failure_window_seconds: int = setting(60, minimum=1)
    # One of OWASP's equivalent argon2id settings (7 MiB, 5 passes): each check holds the memory,
    # and every worker that checks a password keeps that high-water mark.
    argon2_time_cost: int = setting(5, minimum=1)
    argon2_memory_kib: int = setting(7168, minimum=1024)
    argon2_parallelism: int = setting(1, minimum=1, maximum=16)
    credential_cache_seconds: int = setting(60, minimum=0, maximum=3600)
    # Take the client address (for rate limits and the audit log) from X-Forwarded-For's last
    # hop; only behind a proxy that sets it.
    trust_forwarded_for: bool = False
    token_cache_bytes: int = setting(2 * 1024 * 1024, minimum=0)  # verified tokens, per worker


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True


@dataclass(frozen=True, slots=True)
class GcConfig:
    """Online garbage collection (docs/lifecycle.md)."""

    # How long something stays after it became unreferenced before the collector may remove it.
    grace_period: timedelta = timedelta(hours=24)
    interval: timedelta = timedelta(hours=1)  # how often the scheduled collector runs


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    # How long a tag that a retention run deleted can be restored (its content is kept as long).
    restore_window: timedelta = timedelta(days=14)
    interval: timedelta = timedelta(minutes=1)  # how often the scheduler looks for policies due


@dataclass(frozen=True, slots=True)
class ScrubConfig:
    rate_mb_per_s: float = setting(50.0, positive=True)  # re-hashing speed limit, MB (10^6 bytes)/s
    interval: timedelta = timedelta(days=7)  # how often the scheduled scrub runs


@dataclass(frozen=True, slots=True)
class ClamdConfig:
    # clamd's Unix socket path, or tcp://HOST:PORT; unset: no malware scan (docs/supply-chain.md).
    socket: str | None = None
    timeout: timedelta = timedelta(seconds=60)  # one layer's files streamed to clamd at most this long


@dataclass(frozen=True, slots=True)
class VulnDbConfig:
    # Where ``dockyard vulndb sync`` downloads OSV's per-ecosystem zips ({url}/{ecosystem}/all.zip).
    url: str = "https://osv-vulnerabilities.storage.googleapis.com"
    # The ecosystems sync downloads, comma-separated (OSV's names: "Debian", "Alpine", "PyPI", "npm", ...).
    ecosystems: str = "Debian,Ubuntu,Alpine,Red Hat,Rocky Linux,AlmaLinux,PyPI,npm,Go"


@dataclass(frozen=True, slots=True)
class ScanConfig:
    """Supply-chain scanning: inventory, vulnerabilities, secrets, malware (docs/supply-chain.md)."""

    enabled: bool = True  # scan every pushed image, from the event outbox, after the push
    workers: int = setting(2, minimum=1, maximum=64)  # concurrent scans on each node
    interval: timedelta = timedelta(seconds=2)  # how often a node looks for pushes to scan
    # How long a manifest PUT that a push policy checks waits for the scan of that image; past it
    # the push is refused with 503 (the scan goes on, and a retry uses its result).
    push_timeout: timedelta = timedelta(seconds=60)
    secret_max_file_bytes: int = setting(1024 * 1024, minimum=1)  # larger files are not searched for secrets
    sbom: bool = True  # attach each inventory to the image as a CycloneDX referrer
    clamd: ClamdConfig = field(default_factory=ClamdConfig)
    vulndb: VulnDbConfig = field(default_factory=VulnDbConfig)


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("data")
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    log: LogConfig = field(default_factory=LogConfig)
    gc: GcConfig = field(default_factory=GcConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    scrub: ScrubConfig = field(default_factory=ScrubConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)

    @property
    def storage_root(self) -> Path:
        return self.storage.root or self.data_dir / "storage"

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{(self.data_dir / 'dockyard.db').resolve()}"

    @property
    def token_realm(self) -> str:
        if self.auth.realm:
            return self.auth.realm
        host = "127.0.0.1" if self.server.host in ("0.0.0.0", "::", "") else self.server.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.server.port}/token"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (paths as strings) that ``build_config`` turns back into this tree."""
        return typing.cast(dict[str, Any], json.loads(self.to_json()))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=_plain)

    def with_overrides(self, **sections: Any) -> Config:
        """A copy with some keys replaced, validated again (CLI flags use this)."""
        return build_config(merge(self.to_dict(), sections))


def _plain(value: Any) -> str:
    """JSON for what is not JSON already: durations as seconds ("90s"), paths as strings."""
    if isinstance(value, timedelta):
        return format_duration(value)
    return str(value)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``24h``, ``90m``, ``2s``, ``0s``, ``14d``, ``1w``, ``1h30m``, or a plain number of seconds."""
    raw = text.strip().lower()
    if raw.replace(".", "", 1).isdigit():
        return timedelta(seconds=float(raw))
    total, number = 0.0, ""
    for char in raw:
        if char.isdigit() or char == ".":
            number += char
        elif char in _UNITS and number and number.count(".") <= 1:
            total += float(number) * _UNITS[char]
            number = ""
        else:
            raise ValueError(f"must be a duration like 24h, 90m, 2s, 0s or 14d, not {text[:40]!r}")
    if number or not raw:
        raise ValueError(f"must be a duration like 24h, 90m, 2s, 0s or 14d, not {text[:40]!r}")
    if total > 100 * 365 * 86400:
        raise ValueError("must be at most 100 years")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling: 86400 s is ``1d``, 5400 s ``90m``, 2.5 s ``2.5s``."""
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# -- validation ------------------------------------------------------------------------------


def build_config(data: Mapping[str, Any]) -> Config:
    """Validate plain data (from TOML, the environment, JSON) into the tree."""
    errors: list[str] = []
    config = _build(Config, data, "", errors)
    if errors:
        raise ConfigError("; ".join(errors))
    return config


def _build(cls: type[T], data: Any, prefix: str, errors: list[str]) -> T:
    if not isinstance(data, Mapping):
        errors.append(f"{prefix.rstrip('.') or 'configuration'}: must be a table of settings")
        return cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            errors.append(f"{prefix}{key}: unknown setting (check the spelling in docs/configuration.md)")
    values = {}
    for name, spec in fields.items():
        if name in data:
            values[name] = _convert(hints[name], data[name], f"{prefix}{name}", spec.metadata, errors)
    return cls(**values)


def _convert(kind: Any, raw: Any, key: str, bounds: Mapping[str, Any], errors: list[str]) -> Any:
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _build(kind, raw, f"{key}.", errors)
    options = typing.get_args(kind)
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        if raw is None:
            return None
        kind = next(option for option in options if option is not type(None))
        options = typing.get_args(kind)
    try:
        if typing.get_origin(kind) is Literal:
            if raw not in options:
                raise ValueError(f"must be one of {', '.join(repr(o) for o in options)}")
            return raw
        value = _scalar(kind, raw)
    except ValueError as exc:
        errors.append(f"{key}: {exc}")
        return None
    problem = _out_of_bounds(value, bounds)
    if problem:
        errors.append(f"{key}: {problem}")
    return value


def _scalar(kind: Any, raw: Any) -> Any:
    """Convert a TOML value, or an environment variable's string, to ``kind``."""
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in _TRUE | _FALSE:
            return raw.lower() in _TRUE
        raise ValueError("must be true or false")
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lstrip("+-").isdigit():
            return int(raw)
        raise ValueError("must be a whole number")
    if kind is float:
        number = None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            number = float(raw)
        elif isinstance(raw, str):
            with contextlib.suppress(ValueError):
                number = float(raw)
        if number is None or not math.isfinite(number):
            raise ValueError("must be a number")
        return number
    if kind is Path:
        if isinstance(raw, str | Path) and str(raw):
            return Path(raw)
        raise ValueError("must be a path")
    if kind is timedelta:
        if isinstance(raw, timedelta):
            return raw
        if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw) and raw >= 0:
            return timedelta(seconds=raw)
        if isinstance(raw, str):
            return parse_duration(raw)
        raise ValueError("must be a duration like 24h, 90m, 2s, 0s or 14d")
    if kind is str:
        if isinstance(raw, str):
            return raw
        raise ValueError("must be a string")
    raise ValueError(f"unsupported setting type {kind!r}")


def _out_of_bounds(value: Any, bounds: Mapping[str, Any]) -> str | None:
    if value is None:
        return None
    if bounds.get("minimum") is not None and value < bounds["minimum"]:
        return f"must be at least {bounds['minimum']}"
    if bounds.get("maximum") is not None and value > bounds["maximum"]:
        return f"must be at most {bounds['maximum']}"
    if bounds.get("positive") and value <= 0:
        return "must be greater than 0"
    return None


# -- sources ---------------------------------------------------------------------------------


def setting_paths(cls: type[Any] = Config, prefix: str = "") -> list[str]:
    """Every setting's dotted key (the documentation test walks these)."""
    paths: list[str] = []
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[spec.name]):
            paths += setting_paths(hints[spec.name], f"{prefix}{spec.name}.")
        else:
            paths.append(f"{prefix}{spec.name}")
    return paths


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``DOCKYARD_A__B=v`` variables into the nested mapping ``{"a": {"b": "v"}}``."""
    sections = {spec.name for spec in dataclasses.fields(Config)}
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "DOCKYARD_CONFIG":
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        if not all(path) or path[0] not in sections:
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
