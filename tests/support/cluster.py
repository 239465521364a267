"""A real dockyard cluster on one machine: three `dockyard serve` nodes behind nginx.

Every node shares one PostgreSQL database and one blob storage root (a directory on this
filesystem stands in for the object store), and each has its own data directory for its runtime
files. nginx balances round-robin over the nodes with no upstream keepalive, so consecutive
requests land on different nodes::

    client -> nginx (127.0.0.1:P) -> node 1 | node 2 | node 3 -> PostgreSQL + shared storage
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from tests.support.server import ManagedProcess, ServerProcess

NODES = 3


def _dsn(url: str, database: str | None = None) -> str:
    """The asyncpg DSN of a SQLAlchemy URL, optionally pointed at another database."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """Create `dockyard_cluster_<random>` next to `admin_url`'s database; yield its SQLAlchemy URL."""
    name = f"dockyard_cluster_{secrets.token_hex(4)}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def fetch(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    """Run one query against the database at `url` (a SQLAlchemy URL)."""
    conn = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {root}/access.log;
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
        proxy_read_timeout 60s;
        location / {{
            proxy_pass http://dockyard;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


@dataclass
class Nginx(ManagedProcess):
    """nginx in the foreground, round-robin over `upstreams` (`host:port` strings)."""

    upstreams: list[str] = field(default_factory=list)

    def start(self, timeout: float = 15.0) -> Nginx:
        root = self.data_dir.resolve()
        root.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(f"        server {upstream} max_fails=1 fail_timeout=2s;"
                            for upstream in self.upstreams)
        user = "user root;" if os.geteuid() == 0 else ""
        conf = root / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=root, servers=servers, port=self.port, user=user))
        self._launch("nginx", ["nginx", "-c", str(conf), "-p", str(root), "-e", str(root / "error.log")],
                     "/readyz", timeout)
        return self

    def error_log(self) -> str:
        path = self.data_dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Cluster:
    """Three nodes on one database and one storage root, with nginx in front."""

    root: Path
    database_url: str
    nodes: list[ServerProcess] = field(default_factory=list)
    balancer: Nginx | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def storage_root(self) -> Path:
        return self.root / "shared-storage"

    @property
    def env(self) -> dict[str, str]:
        return {
            "DOCKYARD_DATABASE__URL": self.database_url,
            "DOCKYARD_DATABASE__AUTO_MIGRATE": "false",
            "DOCKYARD_STORAGE__ROOT": str(self.storage_root),
            **self.extra_env,
        }

    @property
    def lb(self) -> Nginx:
        assert self.balancer is not None, "the cluster is not started"
        return self.balancer

    def migrate(self) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "dockyard", "migrate", "--data-dir", str(self.root / "migrate")],
            env={**os.environ, **self.env}, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"dockyard migrate exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def start(self) -> Cluster:
        self.storage_root.mkdir(parents=True, exist_ok=True)
        self.migrate()
        # The balancer's port is chosen now, so every node can name its token endpoint as the realm
        # of its challenges: clients only know the balancer.
        balancer = Nginx(data_dir=self.root / "nginx")
        env = {"DOCKYARD_AUTH__REALM": f"{balancer.url}/token", **self.env}
        try:
            # Every node gets the same DOCKYARD_ADMIN_PASSWORD (ServerProcess's default); they share
            # one database, so the first node to start creates `admin` and the others find it.
            for index in range(NODES):
                node = ServerProcess(data_dir=self.root / f"node{index + 1}" / "data", workers=1, env=env)
                self.nodes.append(node)
                node.start()
            balancer.upstreams = [node.host for node in self.nodes]
            self.balancer = balancer.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.balancer is not None:
            self.balancer.stop()
        for node in self.nodes:
            node.stop()

    def logs(self, tail: int = 60) -> str:
        parts = []
        for node in self.nodes:
            lines = node.log().splitlines()[-tail:]
            parts.append(f"--- {node.log_path}\n" + "\n".join(lines))
        if self.balancer is not None:
            parts.append("--- nginx error.log\n" + "\n".join(self.balancer.error_log().splitlines()[-tail:]))
        return "\n".join(parts)

    def group_pids(self, node: ServerProcess) -> set[int]:
        """Every live pid in `node`'s process group (the server and its granian workers)."""
        return node.group_pids()
