"""200,000 advisories and a 500-package inventory, on SQLite and PostgreSQL: matching gives exactly
the expected vulnerabilities. The times are printed (``pytest -s``), never asserted; the figures
are in docs/supply-chain.md.

The set is generated straight into the store in batches (as an import does after parsing), plus
the 26 real test advisories of tests/data/osv imported from their files. Of the 200,000: half
Debian:12 (5,000 source packages, 20 each), 20% Alpine:v3.18, 15% PyPI, 15% npm. The inventory:
the 13 minbase packages of tests/unit/test_matching.py, 337 generated Debian packages, 75 PyPI
and 75 npm ones, each with 20 advisories of which those fixed above the installed version match.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dockyard.config import DatabaseConfig, VulnDbConfig
from dockyard.scan.report import Inventory, Package
from dockyard.services.vulndb import VulnDbService
from dockyard.store import migrate
from dockyard.store import vulndb as rows
from dockyard.store.db import Database
from tests.integration.test_vulndb import EXPECTED_ROWS
from tests.unit.test_matching import DEBIAN_12, MINBASE

DATA = Path(__file__).parents[1] / "data" / "osv" / "debian"
TOTAL = 200_000
NAMES = {"Debian:12": 5000, "Alpine:v3.18": 2000, "PyPI": 1500, "npm": 1500}
SHARE = [("Debian:12", 10), ("Alpine:v3.18", 4), ("PyPI", 3), ("npm", 3)]  # of every 20 advisories
BATCH = 5000


def fixed_version(ecosystem: str, k: int) -> str:
    minor = k % 40
    return {"Debian:12": f"2.{minor}-1", "Alpine:v3.18": f"2.{minor}-r0"}.get(ecosystem, f"2.{minor}.0")


INSTALLED = {"Debian:12": "2.20-1", "PyPI": "2.20.0", "npm": "2.20.0"}  # minor 20: fixed 21..39 match


def generated() -> Iterator[rows.AdvisoryRow]:
    n = 0
    seen = dict.fromkeys(NAMES, 0)
    while n < TOTAL:
        for ecosystem, share in SHARE:
            for _ in range(share):
                j = seen[ecosystem]
                seen[ecosystem] += 1
                package = f"gen-{ecosystem.split(':')[0].lower()}-{j % NAMES[ecosystem]}"
                # each package's 20 advisories have fixed versions spread over 2.0 ... 2.39
                fixed = fixed_version(ecosystem, (j // NAMES[ecosystem]) * 7 + j)
                ranges = [{"type": "SEMVER" if ecosystem == "npm" else "ECOSYSTEM",
                           "events": [{"introduced": "0"}, {"fixed": fixed}]}]
                yield rows.AdvisoryRow(f"GEN-{n:06d}", None, False, (f"CVE-2099-{n:06d}",), f"generated {n}",
                                       ("critical", "high", "medium", "low")[n % 4], None, None,
                                       (rows.AffectedRow(ecosystem, package, ranges, (), None),))
                n += 1


def inventory() -> tuple[Inventory, set[tuple[str, str]]]:
    """The 500 packages, and the (advisory id, package) pairs expected to match among the generated."""
    packages = list(MINBASE)
    wanted = {"Debian:12": 337, "PyPI": 75, "npm": 75}
    kinds = {"Debian:12": "deb", "PyPI": "pypi", "npm": "npm"}
    for ecosystem, count in wanted.items():
        for i in range(count):
            name = f"gen-{ecosystem.split(':')[0].lower()}-{i}"
            packages.append(Package(name, INSTALLED[ecosystem], kinds[ecosystem], f"pkg:{kinds[ecosystem]}/{name}",
                                    "sha256:l", "p"))
    assert len(packages) == 500
    names = {p.name for p in packages}
    expected = set()
    for advisory in generated():
        entry = advisory.affected[0]
        if entry.package in names and entry.ecosystem in wanted:
            minor = int(entry.ranges[0]["events"][1]["fixed"].split(".")[1].split("-")[0])
            if minor > 20:
                expected.add((advisory.id, entry.package))
    return Inventory(DEBIAN_12, tuple(packages)), expected


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, DatabaseConfig())
    await migrate.upgrade(database)
    yield database
    await database.dispose()


async def test_500_packages_against_200000_advisories(db: Database, database_url: str) -> None:
    started = time.monotonic()
    batch: list[rows.AdvisoryRow] = []
    for advisory in generated():
        batch.append(advisory)
        if len(batch) == BATCH:
            async with db.write() as conn:
                await rows.upsert(conn, batch)
            batch = []
    loaded = time.monotonic() - started
    vulndb = VulnDbService(db, VulnDbConfig())
    report = await vulndb.import_path(DATA)
    assert (report.added, report.bad) == (26, 0)
    assert (await vulndb.status()).advisories == TOTAL + 26

    packages, expected_generated = inventory()
    timings = []
    for _ in range(3):
        started = time.monotonic()
        revision, vulns = await vulndb.match(packages)
        timings.append(time.monotonic() - started)
    assert revision == report.revision
    generated_found = {(v.id, v.package) for v in vulns if v.id.startswith("GEN-")}
    assert generated_found == expected_generated
    assert len(expected_generated) > 3000
    assert sorted((v.id, v.package, v.fixed, v.severity) for v in vulns if not v.id.startswith("GEN-")) == EXPECTED_ROWS
    print(f"\n{database_url.split(':')[0]}: stored {TOTAL} advisories in {loaded:.1f}s ({TOTAL / loaded:.0f}/s); "
          f"matched 500 packages → {len(vulns)} vulnerabilities in "
          + ", ".join(f"{t * 1000:.0f} ms" for t in timings))
