"""The opt-in "dockyard scale-out" table (``BENCH_SCALEOUT=1``): dockyard on S3 + PostgreSQL, 1 vs 3 nodes.

Measures the same metrics as the main table (``bench.suite``) for three setups, interleaved per
repetition, each on fresh state (a new PostgreSQL database and a new S3 key prefix):

* ``fs + SQLite, 1 node``: ``python -m dockyard serve`` with its defaults, the reference;
* ``S3 + PG, 1 node``: one node (a worker per core) on Ceph radosgw S3 + PostgreSQL;
* ``S3 + PG, 3 nodes``: three nodes (``--workers 1`` each) on the same bucket and database, behind
  nginx round-robin (no request or response buffering, no upstream keepalive).

The S3 nodes run with ``storage.s3.redirect=true``: a blob GET answers 307 to a presigned radosgw URL,
so the pulls of this table follow redirects (curl ``-L``) and include that extra round trip.
Ceph (``ci/s3/start.sh``, memstore: data in RAM) is started once for the whole table on free
loopback ports and stopped at the end; its memory is not in the RSS row, which sums dockyard's
process trees (and nginx's). PostgreSQL must already be running: ``BENCH_PG_URL`` (default
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``) names a database to connect to for
``CREATE DATABASE``/``DROP DATABASE``; the role needs the right to create databases.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.config import Config

from bench.registries import Dockyard, Registry, RegistryError, free_port
from bench.report import format_number, format_ratio, markdown_table
from bench.settings import Settings
from bench.suite import Log, Metric, run_pass_at
from bench.testdata import BigBlob, SmallImage

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

REPO = Path(__file__).resolve().parent.parent
CEPH_SCRIPTS = REPO / "ci" / "s3"
CEPH_START_TIMEOUT = 180
BUCKET = "bench"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
NODES = 3

# command -> the Debian package that provides it (on top of the main benchmark's)
REQUIRED_TOOLS = {
    "ceph-mon": "ceph-mon", "monmaptool": "ceph-mon", "ceph-osd": "ceph-osd", "ceph": "ceph-common",
    "radosgw": "radosgw", "radosgw-admin": "radosgw", "uuidgen": "uuid-runtime",
    "nginx": "nginx", "psql": "postgresql-client",
}

FS_1, S3_1, S3_3 = "fs + SQLite, 1 node", "S3 + PG, 1 node", f"S3 + PG, {NODES} nodes + nginx"
SETUPS = (FS_1, S3_1, S3_3)


def prefixed(log: Log, prefix: str) -> Log:
    """A log that starts every line with ``prefix``."""
    return lambda line: log(prefix + line)


def missing_packages() -> list[str]:
    """The Debian packages whose commands the scale-out table needs and are not on PATH."""
    return sorted({package for command, package in REQUIRED_TOOLS.items() if shutil.which(command) is None})


# -- Ceph S3 -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S3Endpoint:
    url: str
    access_key: str
    secret_key: str
    region: str

    def delete_prefix(self, bucket: str, prefix: str) -> None:
        """Delete every object and abort every multipart upload below ``prefix`` (frees memstore RAM)."""
        client = boto3.client(
            "s3", endpoint_url=self.url, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        for listing in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys: list[ObjectIdentifierTypeDef] = [{"Key": item["Key"]} for item in listing.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        for uploads in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
            for upload in uploads.get("Uploads", []):
                client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def _key_values(output: str) -> dict[str, str]:
    values = {}
    for line in output.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.isupper():
            values[key] = value
    return values


@contextmanager
def ceph_s3(base: Path, log: Log) -> Iterator[S3Endpoint]:
    """Single-node Ceph + radosgw (``ci/s3/start.sh``) in ``base`` on free ports; stopped on exit."""
    env = {**os.environ, "BASE": str(base), "RGW_PORT": str(free_port()),
           "MON_V2": str(free_port()), "MON_V1": str(free_port())}
    for key in ("S3_ACCESS_KEY", "S3_SECRET_KEY"):  # start.sh's own defaults, not the caller's
        env.pop(key, None)
    try:
        log(f"starting Ceph S3 in {base}")
        try:
            done = subprocess.run(["bash", str(CEPH_SCRIPTS / "start.sh")], env=env, capture_output=True,
                                  text=True, timeout=CEPH_START_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise RegistryError(f"ci/s3/start.sh did not finish within {CEPH_START_TIMEOUT}s") from None
        values = _key_values(done.stdout)
        needed = ("S3_ENDPOINT_URL", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_REGION")
        if done.returncode != 0 or not all(values.get(key) for key in needed):
            raise RegistryError(f"ci/s3/start.sh failed (exit {done.returncode}):\n"
                                f"{done.stderr[-3000:]}{done.stdout[-1000:]}")
        log(f"Ceph S3 ready at {values['S3_ENDPOINT_URL']}")
        yield S3Endpoint(values["S3_ENDPOINT_URL"], values["S3_ACCESS_KEY"], values["S3_SECRET_KEY"],
                         values["S3_REGION"])
    finally:
        subprocess.run(["bash", str(CEPH_SCRIPTS / "stop.sh")], env={**os.environ, "BASE": str(base)},
                       capture_output=True, timeout=120, check=False)
        shutil.rmtree(base, ignore_errors=True)


# -- PostgreSQL ----------------------------------------------------------------------------------


def _with_database(url: str, database: str, scheme: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit((scheme or parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def _psql(admin_url: str, sql: str) -> None:
    libpq = _with_database(admin_url, urlsplit(admin_url).path.lstrip("/") or "postgres", "postgresql")
    done = subprocess.run(["psql", "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "-c", sql, libpq],
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RegistryError(f"psql {sql!r} failed: {done.stderr.strip()}")


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """Create ``bench_<random>`` on the server of ``admin_url``; yield its URL; drop it (FORCE) on exit."""
    name = f"bench_{secrets.token_hex(4)}"
    _psql(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin_url, name)
    finally:
        _psql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- dockyard nodes and nginx --------------------------------------------------------------------


class DockyardNode(Dockyard):
    """``python -m dockyard serve`` with extra ``DOCKYARD_*`` settings and an optional worker count."""

    def __init__(self, workdir: Path, name: str, env: dict[str, str], workers: int | None = None) -> None:
        super().__init__(workdir)
        self.name = name
        self._env = env
        self._workers = workers

    def environment(self) -> dict[str, str]:
        return {**super().environment(), **self._env}

    def command(self) -> list[str]:
        workers = [] if self._workers is None else ["--workers", str(self._workers)]
        return [*super().command(), *workers]


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream dockyard {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        proxy_read_timeout 300s;
        location / {{
            proxy_pass http://dockyard;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


class NginxBalancer(Registry):
    """nginx in the foreground, round-robin over dockyard nodes; ready once a node answers ``/readyz``."""

    name = "nginx"
    ready_path = "/readyz"

    def __init__(self, workdir: Path, upstreams: Sequence[str]) -> None:
        super().__init__(workdir)
        self.upstreams = list(upstreams)

    def command(self) -> list[str]:
        root = self.workdir.resolve()
        servers = "\n".join(f"        server {upstream};" for upstream in self.upstreams)
        user = "user root;" if os.geteuid() == 0 else ""  # workers must reach the temp dirs we own
        conf = root / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=root, servers=servers, port=self.port, user=user))
        return ["nginx", "-c", str(conf), "-p", str(root), "-e", str(root / "error.log")]


# -- the setups ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Running:
    """A started setup: where clients go, the process trees to sum for RSS, whether blobs redirect, and
    the credentials clients get their token with (every node of a setup has the same admin)."""

    url: str
    root_pids: list[int]
    follow_redirects: bool
    credentials: tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class Shared:
    """What every S3 setup of one run shares: the endpoint, the PostgreSQL admin URL and a run id."""

    s3: S3Endpoint
    admin_url: str
    run_id: str


def _migrate(database_url: str, workdir: Path) -> None:
    env = {**os.environ, "DOCKYARD_DATABASE__URL": database_url}
    done = subprocess.run([sys.executable, "-m", "dockyard", "migrate", "--data-dir", str(workdir / "migrate")],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RegistryError(f"dockyard migrate exited {done.returncode}:\n{done.stdout}\n{done.stderr}")


@contextmanager
def _filesystem_setup(workdir: Path, shared: Shared) -> Iterator[Running]:
    with Dockyard(workdir) as registry:
        yield Running(registry.url, [registry.pid], follow_redirects=False, credentials=registry.credentials)


@contextmanager
def _s3_setup(workdir: Path, shared: Shared, nodes: int) -> Iterator[Running]:
    prefix = f"{shared.run_id}/{workdir.name}"
    with ExitStack() as stack:
        stack.callback(shared.s3.delete_prefix, BUCKET, prefix)
        database_url = stack.enter_context(fresh_database(shared.admin_url))
        _migrate(database_url, workdir)
        env = {
            "DOCKYARD_DATABASE__URL": database_url,
            "DOCKYARD_DATABASE__AUTO_MIGRATE": "false",
            "DOCKYARD_STORAGE__DRIVER": "s3",
            "DOCKYARD_STORAGE__S3__ENDPOINT": shared.s3.url,
            "DOCKYARD_STORAGE__S3__ACCESS_KEY": shared.s3.access_key,
            "DOCKYARD_STORAGE__S3__SECRET_KEY": shared.s3.secret_key,
            "DOCKYARD_STORAGE__S3__REGION": shared.s3.region,
            "DOCKYARD_STORAGE__S3__BUCKET": BUCKET,
            "DOCKYARD_STORAGE__S3__PREFIX": prefix,
            "DOCKYARD_STORAGE__S3__REDIRECT": "true",
        }
        if nodes == 1:
            node = stack.enter_context(DockyardNode(workdir / "node1", "dockyard-s3", env))
            yield Running(node.url, [node.pid], follow_redirects=True, credentials=node.credentials)
            return
        started = [stack.enter_context(DockyardNode(workdir / f"node{i}", f"dockyard-s3-node{i}", env, workers=1))
                   for i in range(1, nodes + 1)]
        balancer = stack.enter_context(NginxBalancer(workdir / "nginx", [f"127.0.0.1:{n.port}" for n in started]))
        yield Running(balancer.url, [*(n.pid for n in started), balancer.pid], follow_redirects=True,
                      credentials=started[0].credentials)


def _start(name: str, workdir: Path, shared: Shared) -> AbstractContextManager[Running]:
    if name == FS_1:
        return _filesystem_setup(workdir, shared)
    return _s3_setup(workdir, shared, 1 if name == S3_1 else NODES)


# -- results -------------------------------------------------------------------------------------


class ScaleoutResults:
    """Every repetition's value of every metric, per setup."""

    def __init__(self, setups: Sequence[str] = SETUPS) -> None:
        self.setups = list(setups)
        self._samples: dict[str, dict[str, list[float]]] = {setup: {} for setup in self.setups}

    def record(self, setup: str, values: dict[str, float]) -> None:
        for key, value in values.items():
            self._samples[setup].setdefault(key, []).append(value)

    def samples(self, setup: str, key: str) -> list[float]:
        return list(self._samples[setup].get(key, []))

    def median(self, setup: str, key: str) -> float | None:
        values = [v for v in self._samples[setup].get(key, []) if not math.isnan(v)]
        return statistics.median(values) if values else None


def scaleout_metrics(metrics: Sequence[Metric]) -> tuple[Metric, ...]:
    """The main table's rows, with the memory rows relabelled: they are summed over every node (and nginx)."""
    labels = {"peak_rss": "peak RSS, summed over nodes + nginx (MB, lower is better)",
              "peak_pss": "peak PSS, summed over nodes + nginx, sampled (MB, lower is better)"}
    return tuple(Metric(m.key, labels[m.key], m.decimals, m.lower_is_better) if m.key in labels else m
                 for m in metrics)


def scaleout_table(results: ScaleoutResults, metrics: Sequence[Metric]) -> str:
    """Medians per setup and the ratio 3 nodes / 1 node (both on S3 + PostgreSQL)."""
    header = ["metric", *(f"{setup} (median)" for setup in results.setups), f"ratio {NODES}-node/1-node"]
    rows = []
    for metric in metrics:
        medians = [results.median(setup, metric.key) for setup in results.setups]
        ratio = format_ratio(results.median(S3_3, metric.key), results.median(S3_1, metric.key))
        rows.append([metric.label, *(format_number(value, metric.decimals) for value in medians), ratio])
    return markdown_table(header, rows)


def scaleout_samples_table(results: ScaleoutResults, metrics: Sequence[Metric]) -> str:
    header = ["metric", *results.setups]
    rows = [[metric.label, *(", ".join(format_number(v, metric.decimals) for v in results.samples(s, metric.key))
                             for s in results.setups)] for metric in metrics]
    return markdown_table(header, rows)


# -- the run -------------------------------------------------------------------------------------


def run_scaleout(settings: Settings, blob: BigBlob, image: SmallImage, log: Log,
                 admin_url: str | None = None) -> ScaleoutResults:
    """Start Ceph once, then run ``settings.reps`` interleaved repetitions of the three setups."""
    admin_url = admin_url or os.environ.get("BENCH_PG_URL", "").strip() or DEFAULT_PG_URL
    results = ScaleoutResults()
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-scaleout-") as tmp:
        root = Path(tmp)
        with ceph_s3(root / "ceph", prefixed(log, "[scale-out] ")) as s3:
            shared = Shared(s3, admin_url, f"bench-{secrets.token_hex(4)}")
            for rep in range(1, settings.reps + 1):
                for index, setup in enumerate(SETUPS):
                    pass_log = prefixed(log, f"[scale-out {rep}/{settings.reps} {setup}] ")
                    workdir = root / f"rep{rep}-setup{index}"
                    with _start(setup, workdir, shared) as running:
                        pass_log(f"ready at {running.url}")
                        values = run_pass_at(running.url, running.root_pids, blob, image, settings, pass_log,
                                             running.follow_redirects, running.credentials)
                    shutil.rmtree(workdir, ignore_errors=True)
                    results.record(setup, values)
    return results
