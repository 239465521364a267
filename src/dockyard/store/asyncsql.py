"""SQLAlchemy's asyncio engine, loaded without SQLAlchemy's ORM.

dockyard speaks SQLAlchemy Core only. The package ``sqlalchemy.ext.asyncio`` also imports, from its
``__init__``, the asyncio ORM session and with it all of ``sqlalchemy.orm``: about 7 MB of code
objects in every granian worker, for nothing (measured with ``/proc/self/status``; the peak
resident memory of the whole server is a benchmark floor, see docs/benchmarks.md).

This module imports the package's ``engine`` submodule under a package module whose
``__init__`` has not run yet. The first time anybody asks that package for any other name
(``AsyncSession``, say, from alembic or a test), the real ``__init__`` runs into the same module
object and answers: every other importer sees the package SQLAlchemy ships. If the package was
already imported, or SQLAlchemy's layout ever changes, the normal import is used.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any

_PACKAGE = "sqlalchemy.ext.asyncio"
_lock = threading.Lock()


def _deferred_package() -> ModuleType | None:
    """The package module with its ``__init__`` deferred to the first unknown attribute."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return None
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def complete(name: str) -> Any:
        # ``from . import exc`` inside the package asks for a submodule first: not a reason to
        # run ``__init__`` (AttributeError makes the import system load the submodule itself).
        if importlib.util.find_spec(f"{_PACKAGE}.{name}") is not None:
            raise AttributeError(name)
        with _lock:
            if package.__dict__.get("__getattr__") is complete:
                del package.__dict__["__getattr__"]
                loader.exec_module(package)
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {_PACKAGE!r} has no attribute {name!r}") from None

    package.__dict__["__getattr__"] = complete
    return package


def _engine_module() -> ModuleType:
    with _lock:
        if _PACKAGE not in sys.modules:
            package = _deferred_package()
            if package is not None:
                sys.modules[_PACKAGE] = package
                # What the import system does for a submodule it loads itself.
                vars(sys.modules["sqlalchemy.ext"])["asyncio"] = package
    try:
        return importlib.import_module(f"{_PACKAGE}.engine")
    except ImportError:  # a future SQLAlchemy laid out differently: take the whole package
        sys.modules.pop(_PACKAGE, None)
        return importlib.import_module(_PACKAGE)


if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
else:
    _engine = _engine_module()
    AsyncConnection = _engine.AsyncConnection
    AsyncEngine = _engine.AsyncEngine
    create_async_engine = _engine.create_async_engine

__all__ = ["AsyncConnection", "AsyncEngine", "create_async_engine"]
