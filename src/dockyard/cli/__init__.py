"""The ``dockyard`` command line."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import click

from dockyard.cli import access, gc, policies, retention, scan, scrub, signing, usage, vulndb
from dockyard.cli.options import config_options, load, make_data_dir, run_on_database
from dockyard.config import Config, build_config, load_config
from dockyard.errors import ConfigError
from dockyard.storage.layout import check_key_prefix


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dockyard")
def main() -> None:
    """dockyard: a self-hosted OCI / Docker container registry.

    Start with `dockyard serve`; see docs/configuration.md for every setting.
    """


@main.command()
@config_options
@click.option("--host", help="address to listen on (default 127.0.0.1)")
@click.option("--port", type=int, help="port to listen on (default 5000)")
@click.option("--workers", type=click.IntRange(min=0), help="worker processes (default: one per CPU core)")
def serve(config_file: Path | None, data_dir: Path | None, host: str | None, port: int | None,
          workers: int | None) -> None:
    """Serve the registry API under granian until SIGTERM or Ctrl-C.

    The schema is migrated first (unless database.auto_migrate is false, in which case a stale
    schema is refused). SIGTERM finishes requests in flight, then exits.
    """
    from dockyard.serving import EFFECTIVE_CONFIG, configure_logging

    config = load(config_file, data_dir, host=host, port=port, workers=workers)
    configure_logging(config)
    _check_address_free(config.server.host, config.server.port)
    make_data_dir(config)
    os.environ[EFFECTIVE_CONFIG] = config.to_json()
    _prepare_database(config)
    _prepare_metrics_dir(config)
    count = config.server.workers or os.cpu_count() or 1
    if config.auth.realm is None and config.server.host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: auth.realm is not set, so clients are sent to {config.token_realm} for tokens; "
                   "set auth.realm (DOCKYARD_AUTH__REALM) to the token URL they can reach", err=True)
    click.echo(f"dockyard listening on http://{config.server.host}:{config.server.port} "
               f"({count} worker(s), data in {config.data_dir.resolve()})")
    sys.stdout.flush()
    # Become the granian supervisor: a fresh, lean image (see dockyard/supervisor.py), same PID.
    os.execv(sys.executable, [sys.executable, "-m", "dockyard.supervisor"])  # noqa: S606 - our own module


def _check_address_free(host: str, port: int) -> None:
    """Refuse to start where something already listens.

    granian binds with SO_REUSEPORT, so a second server on a taken port would not fail: the
    kernel would share the connections between the two, and clients would see two registries
    at random. A plain bind (SO_REUSEADDR, as a restart needs, but not SO_REUSEPORT) fails
    where any listener is, so it is tried first, then closed for granian to bind.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:  # socket.gaierror (a name that does not resolve) too
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"{host}:{port} is already in use (another dockyard, or another server, listens "
                "there): stop it, or choose another --port (server.port)") from None
        if exc.errno == errno.EACCES:
            raise click.ClickException(f"not allowed to listen on {host}:{port}: ports below 1024 need "
                                       "root or CAP_NET_BIND_SERVICE; choose --port 1024 or above") from None
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}; "
                                   "set --host (server.host) to an address of this machine") from None


def _prepare_database(config: Config) -> None:
    """Migrate (or check) in a child process, so this supervisor, whose memory every forked
    worker starts from, never loads SQLAlchemy and Alembic."""
    from dockyard.serving import EFFECTIVE_CONFIG

    command = [sys.executable, "-m", "dockyard", "migrate", "--effective-config"]
    if not config.database.auto_migrate:
        command.append("--check")
    env = {**os.environ, EFFECTIVE_CONFIG: config.to_json()}
    if subprocess.run(command, env=env, check=False).returncode != 0:
        raise click.ClickException("the database is not ready; see the message above")


def _prepare_metrics_dir(config: Config) -> None:
    """Give the workers' prometheus_client files a directory off the data volume.

    The library memory-maps them, and a write to a mapped page that the filesystem has no block
    for kills the process with SIGBUS: on the data volume, a full disk killed every worker, and
    each new one at once. By default they go to a private directory (0700) on tmpfs (``/dev/shm``,
    else ``$XDG_RUNTIME_DIR``, else the temporary directory), which the supervisor removes at
    exit; the workers also allocate the files ahead of use (``http/metrics.py``). With
    ``server.metrics_dir`` they go there instead, emptied of old files first.
    """
    from dockyard.supervisor import OWNED_METRICS_DIR

    if config.server.metrics_dir is not None:
        metrics_dir = config.server.metrics_dir.resolve()
        try:
            metrics_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            for stale in metrics_dir.glob("*.db"):
                stale.unlink()
        except OSError as exc:
            raise click.ClickException(f"server.metrics_dir {metrics_dir}: {exc.strerror}; choose a "
                                       "directory this user may write, on tmpfs if possible") from None
    else:
        base = _runtime_base()
        _remove_abandoned_metrics_dirs(base)
        metrics_dir = Path(tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{os.getpid()}-", dir=base))
        os.environ[OWNED_METRICS_DIR] = str(metrics_dir)  # the supervisor (this PID after execv) removes it
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)


METRICS_DIR_PREFIX = "dockyard-metrics-"


def _runtime_base() -> Path:
    """A directory on tmpfs (memory, never the data volume) this user may write."""
    for candidate in ("/dev/shm", os.environ.get("XDG_RUNTIME_DIR")):  # noqa: S108 - mkdtemp: private
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return Path(candidate)
    return Path(tempfile.gettempdir())


def _remove_abandoned_metrics_dirs(base: Path) -> None:
    """Remove this user's metrics directories whose server is gone (killed before it could)."""
    for path in base.glob(f"{METRICS_DIR_PREFIX}*-*"):
        pid = path.name[len(METRICS_DIR_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or path.is_symlink() or path.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue  # alive under another user (EPERM), or gone already


@main.command()
@config_options
@click.option("--check", is_flag=True, help="change nothing; exit 1 if the schema is not current")
@click.option("--effective-config", is_flag=True, hidden=True,
              help="read the configuration `serve` resolved from DOCKYARD_EFFECTIVE_CONFIG")
def migrate(config_file: Path | None, data_dir: Path | None, check: bool, effective_config: bool) -> None:
    """Bring the database schema up to date (safe to run again, and from several nodes)."""
    from dockyard.store import migrate as migrations
    from dockyard.store.db import Database

    if effective_config:
        from dockyard.serving import EFFECTIVE_CONFIG
        config = build_config(json.loads(os.environ[EFFECTIVE_CONFIG]))
    else:
        config = load(config_file, data_dir)
    make_data_dir(config)

    async def run() -> tuple[str | None, str]:
        db = Database(config.database_url, config.database)
        try:
            if check:
                return await migrations.current_revision(db), migrations.head_revision()
            return await migrations.upgrade(db)
        finally:
            await db.dispose()

    before, after = run_on_database(config, run())
    if check:
        if before != after:
            click.echo(f"the database schema is at {before or 'nothing'}, this dockyard needs {after}: "
                       "run `dockyard migrate`", err=True)
            sys.exit(1)
        click.echo(f"schema at {after}: current")
    else:
        click.echo(f"schema at {after}" + ("" if before == after else f" (was {before or 'empty'})"))
    if effective_config:
        _start_accounts(config)


def _start_accounts(config: Config) -> None:
    """On `serve`'s first start: the signing key and the admin account, made here rather than in
    a worker, so no worker ever holds the memory of hashing the admin's password."""
    from dockyard.app import build_components, start_accounts

    parts = build_components(config)

    async def run() -> None:
        try:
            await start_accounts(parts)
        finally:
            await parts.db.dispose()

    run_on_database(config, run())


@main.group()
def config() -> None:
    """Inspect and validate configuration."""


@config.command("check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def config_check(file: Path) -> None:
    """Validate FILE (with DOCKYARD_* overrides applied); name the bad key if any."""
    try:
        checked = load_config(file)
        if checked.storage.driver == "s3":
            check_key_prefix(checked.storage.s3.prefix)
    except ConfigError as exc:
        click.echo(f"{file}: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{file}: ok")


@config.command("show")
@config_options
def config_show(config_file: Path | None, data_dir: Path | None) -> None:
    """Print the effective configuration as JSON."""
    click.echo(json.dumps(load(config_file, data_dir).to_dict(), indent=2))


@main.group()
def uploads() -> None:
    """Manage in-flight blob uploads."""


@uploads.command("purge")
@config_options
@click.option("--dry-run", is_flag=True, help="report what would be removed, remove nothing")
@click.option("--older-than", type=click.IntRange(0, 10 * 365 * 86400),  # 10 years: no OverflowError, no negative
              help="seconds since last activity (default registry.upload_expiry_seconds)")
def uploads_purge(config_file: Path | None, data_dir: Path | None, dry_run: bool, older_than: int | None) -> None:
    """Remove abandoned upload sessions and their bytes now."""
    from dockyard.app import build_components
    from dockyard.jobs.runs import recorded_run, tally_report
    from dockyard.jobs.uploads_purge import purge_uploads

    config = load(config_file, data_dir)
    make_data_dir(config)
    parts = build_components(config)
    expiry = timedelta(seconds=older_than if older_than is not None else config.registry.upload_expiry_seconds)

    async def run() -> str:
        try:
            async with recorded_run(parts.db, "uploads-purge", dry_run=dry_run) as tally:
                report = await purge_uploads(parts.db, parts.store, expiry=expiry, dry_run=dry_run)
                tally_report(tally, report)
            return report.summary()
        finally:
            await parts.db.dispose()

    click.echo(run_on_database(config, run()))


for group in [*access.COMMANDS, *gc.COMMANDS, *retention.COMMANDS, *policies.COMMANDS, *scrub.COMMANDS,
              *usage.COMMANDS, *signing.COMMANDS, *scan.COMMANDS, *vulndb.COMMANDS]:
    main.add_command(group)
