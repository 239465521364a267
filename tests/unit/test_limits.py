"""Every bounded column of the schema has a check at the edge that refuses a longer value with a 4xx
(PostgreSQL would refuse it with an error, a 500; SQLite would store it), or a stated reason why no
client chooses its value. Adding a bounded column without either fails here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from dockyard.auth.principals import ROLES
from dockyard.errors import ConfigError, RegistryError
from dockyard.oci import mediatypes as mt
from dockyard.oci.digests import MAX_DIGEST_LENGTH, parse_digest
from dockyard.oci.manifests import parse_manifest
from dockyard.oci.names import validate_name, validate_tag
from dockyard.policy.admission import CHECKS, MODES, STAGES, allow_entry, vulnerability_id
from dockyard.policy.checks import check_cron, check_glob, check_pattern
from dockyard.scan.report import SEVERITIES
from dockyard.services.access import ROBOT_PREFIX
from dockyard.services.accounts import check_account_name, check_project_name, robot_login
from dockyard.storage import layout
from dockyard.store import limits
from dockyard.store.schema import metadata


@dataclass(frozen=True)
class EdgeCheck:
    """How a client-supplied column value is checked: ``longest`` is the longest value the check
    lets through (it must fit the column); the same value one character longer must be refused."""

    check: Callable[[str], object]
    longest: str
    longer: str


def _oci_manifest(**fields: object) -> bytes:
    config = {"mediaType": mt.OCI_CONFIG, "digest": "sha256:" + "a" * 64, "size": 2}
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config, "layers": [],
                       **fields}).encode()


def _artifact_type(value: str) -> object:
    return parse_manifest(_oci_manifest(artifactType=value), mt.OCI_MANIFEST)


def _config_media_type(value: str) -> object:
    """A manifest without artifactType reports its config's mediaType as its artifactType."""
    body = json.loads(_oci_manifest())
    body["config"]["mediaType"] = value
    return parse_manifest(json.dumps(body).encode(), mt.OCI_MANIFEST)


def _robot(login: str) -> object:
    return robot_login(None, login.removeprefix(ROBOT_PREFIX))


LONGEST_MEDIA_TYPE = "application/" + "x" * (limits.MEDIA_TYPE - len("application/"))
LONGEST_DIGEST = "sha512:" + "a" * 128
LONGEST_ROBOT = ROBOT_PREFIX + "r" * (limits.ROBOT_NAME - len(ROBOT_PREFIX))
NAME = EdgeCheck(validate_name, "a" * limits.REPOSITORY_NAME, "a" * (limits.REPOSITORY_NAME + 1))
PROJECT = EdgeCheck(check_project_name, "p" * limits.PROJECT_NAME, "p" * (limits.PROJECT_NAME + 1))
TAG = EdgeCheck(validate_tag, "t" * limits.TAG, "t" * (limits.TAG + 1))
DIGEST = EdgeCheck(parse_digest, LONGEST_DIGEST, LONGEST_DIGEST + "a")
ARTIFACT_TYPE = EdgeCheck(_artifact_type, LONGEST_MEDIA_TYPE, LONGEST_MEDIA_TYPE + "x")
# Users and robots act, create projects and hold refresh tokens; a robot's login is the longest.
PRINCIPAL = EdgeCheck(_robot, LONGEST_ROBOT, LONGEST_ROBOT + "r")

GLOB = EdgeCheck(lambda v: check_glob("glob", v), "g" * limits.GLOB, "g" * (limits.GLOB + 1))
PATTERN = EdgeCheck(lambda v: check_pattern("pattern", v), "p" * limits.PATTERN, "p" * (limits.PATTERN + 1))

EDGE_CHECKS: dict[str, EdgeCheck] = {
    "repositories.name": NAME,
    "events.repository": NAME,
    "projects.name": PROJECT,
    "events.project": PROJECT,
    "tags.name": TAG,
    "events.tag": TAG,
    "blobs.digest": DIGEST,
    "repository_blobs.digest": DIGEST,
    "manifests.digest": DIGEST,
    "manifests.subject_digest": DIGEST,
    "manifest_references.digest": DIGEST,
    "events.digest": DIGEST,
    "manifests.artifact_type": ARTIFACT_TYPE,
    "users.name": EdgeCheck(lambda v: check_account_name("user", v), "u" * limits.ACCOUNT_NAME,
                            "u" * (limits.ACCOUNT_NAME + 1)),
    "teams.name": EdgeCheck(lambda v: check_account_name("team", v), "t" * limits.ACCOUNT_NAME,
                            "t" * (limits.ACCOUNT_NAME + 1)),
    "robots.name": PRINCIPAL,
    "events.actor": PRINCIPAL,
    "projects.created_by": PRINCIPAL,
    "refresh_tokens.subject": PRINCIPAL,
    "immutable_rules.created_by": PRINCIPAL,
    "deleted_tags.name": TAG,
    "immutable_rules.repository_glob": GLOB,
    "immutable_rules.tag_glob": GLOB,
    "retention_policies.repository_glob": GLOB,
    "retention_policies.keep_tags": PATTERN,
    "projects.repository_pattern": PATTERN,
    "projects.tag_pattern": PATTERN,
    "retention_policies.schedule": EdgeCheck(check_cron, "0 3 * * *" + " " * (limits.CRON - 9),
                                             "0 3 * * *" + " " * (limits.CRON - 8)),
    "vuln_allowlist.vulnerability": EdgeCheck(vulnerability_id, "C" * limits.VULN_ID, "C" * (limits.VULN_ID + 1)),
    "vuln_allowlist.reason": EdgeCheck(lambda v: allow_entry({"id": "CVE-1", "reason": v}),
                                       "r" * limits.ALLOW_REASON, "r" * (limits.ALLOW_REASON + 1)),
    "vuln_allowlist.created_by": PRINCIPAL,
}

# Columns whose values the registry makes itself, and why each fits (checked below where it can be).
MADE_BY_THE_REGISTRY: dict[str, str] = {
    "manifests.media_type": "one of the four manifest media types the registry accepts",
    "uploads.id": "a random token the registry generates",
    "events.name": "an event's fixed dotted name",
    "events.address": "the peer's IP address, or X-Forwarded-For cut to its size (http/auth.py)",
    "job_leases.name": "a job's fixed name",
    "job_leases.holder": "<hostname>:<pid> of the node",
    "manifest_references.kind": "'blob' or 'manifest'",
    "project_members.principal": "'user:<id>' or 'team:<id>'",
    "project_members.role": "a role from ROLES, checked against it",
    "users.password_hash": "an argon2 hash",
    "robots.secret_hash": "a SHA-256 digest of the secret",
    "refresh_tokens.token_hash": "a SHA-256 digest of the token",
    "signing_keys.kid": "a key's thumbprint",
    "signing_keys.algorithm": "ES256 or RS256",
    "login_failures.key": "'user:' + a login name that fits a robot's, or 'addr:' + an address",
    "deleted_tags.digest": "the digest of a stored manifest",
    "gc_candidates.kind": "'manifest', 'link' or 'blob'",
    "gc_candidates.reason": "an event's fixed name",
    "gc_candidates.digest": "the digest of a stored manifest or blob",
    "blob_pins.upload_id": "an upload's id (a random token the registry generates)",
    "blob_pins.digest": "a digest the upload's bytes were verified to have",
    "blob_deletions.digest": "the digest of a stored blob",
    "job_runs.job": "a job's fixed name",
    "job_runs.node": "<hostname>:<pid> of the node",
    "job_runs.outcome": "'running', 'ok' or 'failed'",
    "job_state.name": "a job's fixed name",
    "retention_plans.fingerprint": "a hex SHA-256 digest",
    # OSV imports: store/vulndb.fit refuses an advisory whose id does not fit, and skips an affected
    # entry whose ecosystem or package name does not (counted in the import report).
    "vuln_advisories.id": "an OSV id, refused by store/vulndb.fit when over the column",
    "vuln_advisories.severity": "one of report.SEVERITIES (scan/severity.py)",
    "vuln_advisories.vector": "a CVSS vector the cvss library scored, dropped by fit when over the column",
    "vuln_affected.advisory_id": "the id of a stored advisory",
    "vuln_affected.ecosystem": "an OSV ecosystem, the entry skipped by store/vulndb.fit when over the column",
    "vuln_affected.package": "an OSV package name, the entry skipped by store/vulndb.fit when over the column",
    "vuln_affected.severity": "one of report.SEVERITIES (scan/severity.py)",
    "vulndb_revisions.source": "the path or URL an import read, cut to the column by store/vulndb.add_revision",
    # Admission rules: policy/admission.parse_rules accepts only its own words for these.
    "admission_rules.stage": "'push' or 'pull' (policy/admission.STAGES)",
    "admission_rules.check": "a check name from policy/admission.CHECKS",
    "admission_rules.mode": "'enforce' or 'warn' (policy/admission.MODES)",
    "admission_rules.severity": "one of report.SEVERITIES",
    # Scans (store/scans.py): one row per stored manifest's digest, written by the scanner only.
    "scans.digest": "the digest of a stored (or verified, being pushed) manifest",
    "scans.status": "'queued', 'running', 'done' or 'failed'",
    "scans.claimed_by": "<hostname>:<pid> of the node",
    "scans.scanner_version": "report.SCANNER_VERSION",
    "scans.error": "a failure's message, cut to the column by store/scans.fail",
}


def bounded_columns() -> dict[str, sa.Column[object]]:
    found = {}
    for table in metadata.sorted_tables:
        for column in table.columns:
            if getattr(column.type, "length", None) is not None:
                found[f"{table.name}.{column.name}"] = column
    return found


def test_every_bounded_column_is_checked_at_the_edge_or_made_by_the_registry() -> None:
    """A new bounded column must say how its values are kept within it."""
    columns = set(bounded_columns())
    accounted = set(EDGE_CHECKS) | set(MADE_BY_THE_REGISTRY)
    assert columns - accounted == set(), "bounded columns with no edge check (add one, and a row here)"
    assert accounted - columns == set(), "rows here for columns the schema no longer has"
    assert not set(EDGE_CHECKS) & set(MADE_BY_THE_REGISTRY)


@pytest.mark.parametrize("column", sorted(EDGE_CHECKS))
def test_edge_check_refuses_one_character_more_than_it_lets_through(column: str) -> None:
    """The longest value the check accepts fits the column; one character more is a 4xx."""
    edge = EDGE_CHECKS[column]
    size = bounded_columns()[column].type.length  # type: ignore[attr-defined]
    assert len(edge.longest) <= size
    edge.check(edge.longest)
    with pytest.raises(RegistryError) as refused:
        edge.check(edge.longer)
    assert 400 <= refused.value.status < 500
    assert refused.value.code in {"NAME_INVALID", "MANIFEST_INVALID", "DIGEST_INVALID", "INVALID_REQUEST"}


def test_config_media_type_is_checked_like_artifact_type() -> None:
    """A manifest's config mediaType becomes its artifactType in the referrers column."""
    _config_media_type(LONGEST_MEDIA_TYPE)
    for bad in (LONGEST_MEDIA_TYPE + "x", "application/a\x00b", "application/\ud800"):
        with pytest.raises(RegistryError) as refused:
            _config_media_type(bad)
        assert refused.value.code == "MANIFEST_INVALID"


def test_values_the_registry_makes_fit_their_columns() -> None:
    """What can be computed of MADE_BY_THE_REGISTRY: the longest such value fits."""
    columns = bounded_columns()

    def size(name: str) -> int:
        return int(columns[name].type.length)  # type: ignore[attr-defined]

    assert max(len(m) for m in mt.MANIFESTS) <= size("manifests.media_type")
    assert max(len(r) for r in ROLES) <= size("project_members.role")
    assert len(f"team:{2**63}") <= size("project_members.principal")
    assert len("user:") + limits.ROBOT_NAME <= size("login_failures.key")
    assert len("addr:") + limits.ADDRESS <= size("login_failures.key")
    assert limits.ROBOT_NAME <= limits.PRINCIPAL_NAME
    assert MAX_DIGEST_LENGTH <= limits.DIGEST
    assert len("manifest") <= size("manifest_references.kind")
    assert max(len(stage) for stage in STAGES) <= size("admission_rules.stage")
    assert max(len(check) for checks in CHECKS.values() for check in checks) <= size("admission_rules.check")
    assert max(len(mode) for mode in MODES) <= size("admission_rules.mode")
    assert max(len(severity) for severity in SEVERITIES) <= size("admission_rules.severity")


def test_can_hold_refuses_what_postgresql_cannot_store() -> None:
    """Longer than the column, a NUL character, a lone surrogate: none fit on every backend."""
    assert limits.can_hold("a" * 10, 10)
    assert limits.can_hold("ünïcödé", 10)
    assert not limits.can_hold("a" * 11, 10)
    assert not limits.can_hold("a\x00b", 10)
    assert not limits.can_hold("a\ud800", 10)


def test_s3_key_prefix_leaves_room_for_every_layout_path() -> None:
    """S3 keys are at most 1024 bytes: a prefix that would push a layout path past it is refused at start-up."""
    room = layout.MAX_KEY_BYTES - layout.LONGEST_PATH - 1
    layout.check_key_prefix("p" * room)
    layout.check_key_prefix("/" + "p" * room + "/")  # the slashes are stripped, as the driver does
    with pytest.raises(ConfigError, match=r"storage\.s3\.prefix"):
        layout.check_key_prefix("p" * (room + 1))
    with pytest.raises(ConfigError, match="bytes"):
        layout.check_key_prefix("é" * (room // 2 + 1))  # two UTF-8 bytes each
    longest_blob = layout.blob_path(LONGEST_DIGEST)
    assert len(longest_blob) <= layout.LONGEST_PATH
    assert len(f"{'p' * room}/{longest_blob}".encode()) <= layout.MAX_KEY_BYTES


def test_documented_limits_are_the_enforced_ones() -> None:
    """docs/api.md and docs/configuration.md state the sizes the code enforces."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    api = (docs / "api.md").read_text()
    for line in (f"| repository name (all components and slashes) | {limits.REPOSITORY_NAME} characters |",
                 f"| tag | {limits.TAG} characters |", f"| user and team names | {limits.ACCOUNT_NAME} characters |",
                 f"| {limits.ROBOT_NAME} characters |", f"| {limits.MEDIA_TYPE} printable characters |"):
        assert line in api
    room = layout.MAX_KEY_BYTES - layout.LONGEST_PATH - 1
    assert f"| `storage.s3.prefix` | {room} bytes |" in api
    assert f"At most {room} bytes" in (docs / "configuration.md").read_text()
