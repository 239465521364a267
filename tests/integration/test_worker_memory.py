"""What a granian worker loads: the app as ``dockyard serve`` starts it, in a fresh interpreter.

The peak memory of the server is a benchmark floor (docs/benchmarks.md); most of a worker's
memory is the code it imports. SQLAlchemy's ORM alone is about 7 MB per worker, and dockyard uses
only SQLAlchemy Core: these tests keep it out of the workers, and show that anybody who does ask
``sqlalchemy.ext.asyncio`` for its ORM parts still gets them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dockyard.serving import EFFECTIVE_CONFIG

START_A_WORKER = """
import asyncio, json, os, sys
from dockyard.config import build_config
from dockyard.serving import EFFECTIVE_CONFIG, build_app
app = build_app(build_config(json.loads(os.environ[EFFECTIVE_CONFIG])))
loop = asyncio.new_event_loop()
loop.run_until_complete(app.startup())
loaded = sorted(name for name in sys.modules if name.split(".")[:2] == ["sqlalchemy", "orm"])
loop.run_until_complete(app.shutdown())
print(json.dumps(loaded))
"""


def _python(code: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_started_worker_has_not_loaded_the_orm(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    migrated = subprocess.run([sys.executable, "-m", "dockyard", "migrate", "--data-dir", str(data_dir)],
                              capture_output=True, text=True, timeout=120, check=False)
    assert migrated.returncode == 0, migrated.stderr
    config = {"data_dir": str(data_dir), "log": {"access_log": False}, "server": {"interface": "rsgi"}}
    loaded = json.loads(_python(START_A_WORKER, {EFFECTIVE_CONFIG: json.dumps(config)}))
    assert loaded == []


def test_the_deferred_package_still_serves_every_name() -> None:
    code = """
import json, sys
from dockyard.store import asyncsql
before = "sqlalchemy.orm" in sys.modules
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
import sqlalchemy.ext.asyncio as package
try:
    package.no_such_name
    missing = "no error"
except AttributeError as exc:
    missing = str(exc)
print(json.dumps({
    "orm_before": before, "orm_after": "sqlalchemy.orm" in sys.modules,
    "same_class": package.AsyncConnection is asyncsql.AsyncConnection,
    "session": AsyncSession.__name__, "maker": async_sessionmaker.__name__, "missing": missing,
}))
"""
    answer = json.loads(_python(code))
    assert answer == {
        "orm_before": False, "orm_after": True, "same_class": True, "session": "AsyncSession",
        "maker": "async_sessionmaker",
        "missing": "module 'sqlalchemy.ext.asyncio' has no attribute 'no_such_name'",
    }


def test_an_already_imported_package_is_used_as_it_is() -> None:
    code = """
import json, sys
import sqlalchemy.ext.asyncio as package
from dockyard.store import asyncsql
print(json.dumps({"same": asyncsql.AsyncEngine is package.AsyncEngine,
                  "module": type(sys.modules["sqlalchemy.ext.asyncio"].__dict__.get("__getattr__")).__name__}))
"""
    assert json.loads(_python(code)) == {"same": True, "module": "NoneType"}
