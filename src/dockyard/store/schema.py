"""Tables. The database is the single source of truth (DESIGN.md decision 1).

Alembic migrations in ``store/migrations`` create exactly this schema; a test compares them. Column
sizes come from ``store/limits.py``, which the checks at the edge use too.
"""

from __future__ import annotations

import sqlalchemy as sa

from dockyard.store import limits

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


def _ascii_string(length: int) -> sa.types.TypeEngine[str]:
    """A string compared and sorted byte-wise on every backend (tag lists are ASCII-sorted)."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


Timestamp = sa.DateTime(timezone=True)

repositories = sa.Table(
    "repositories", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", _ascii_string(limits.REPOSITORY_NAME), nullable=False, unique=True),
    sa.Column("created_at", Timestamp, nullable=False),
)

blobs = sa.Table(
    "blobs", metadata,
    sa.Column("digest", sa.String(limits.DIGEST), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    # issue 12: the last scrub that re-hashed the bytes, and when one found them corrupt (never served again)
    sa.Column("verified_at", Timestamp, nullable=True),
    sa.Column("corrupt_at", Timestamp, nullable=True),
)

repository_blobs = sa.Table(
    "repository_blobs", metadata,
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("digest", sa.String(limits.DIGEST), sa.ForeignKey("blobs.digest"), primary_key=True, index=True),
    sa.Column("created_at", Timestamp, nullable=False),
)

manifests = sa.Table(
    "manifests", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("digest", sa.String(limits.DIGEST), nullable=False),
    sa.Column("media_type", sa.String(limits.MEDIA_TYPE), nullable=False),
    sa.Column("artifact_type", sa.String(limits.MEDIA_TYPE), nullable=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("subject_digest", sa.String(limits.DIGEST), nullable=True),
    sa.Column("annotations", sa.JSON, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    # issue 12: written in batches by the pull flusher (never on the GET itself), for retention
    sa.Column("last_pulled_at", Timestamp, nullable=True),
    sa.UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_digest"),
    sa.Index("ix_manifests_subject", "repository_id", "subject_digest"),
)

manifest_references = sa.Table(
    "manifest_references", metadata,
    sa.Column("manifest_id", sa.Integer, sa.ForeignKey("manifests.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("kind", sa.String(limits.REFERENCE_KIND), primary_key=True),  # "blob" or "manifest"
    sa.Column("digest", sa.String(limits.DIGEST), primary_key=True, index=True),
)

tags = sa.Table(
    "tags", metadata,
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("name", _ascii_string(limits.TAG), primary_key=True),
    sa.Column("manifest_id", sa.Integer, sa.ForeignKey("manifests.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("updated_at", Timestamp, nullable=False),
)

uploads = sa.Table(
    "uploads", metadata,
    sa.Column("id", sa.String(limits.UPLOAD_ID), primary_key=True),
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False, index=True),
    # The running SHA-256 of the first hash_offset bytes, so any node can take the next chunk.
    sa.Column("hash_offset", sa.BigInteger, nullable=True),
    sa.Column("hash_state", sa.LargeBinary, nullable=True),
    # The storage driver's own state (an S3 multipart upload's id, parts and tail), if it has one.
    sa.Column("storage_state", sa.LargeBinary, nullable=True),
)

events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("created_at", Timestamp, nullable=False, index=True),
    sa.Column("name", sa.String(limits.EVENT_NAME), nullable=False),
    sa.Column("repository", sa.String(limits.REPOSITORY_NAME), nullable=True),
    sa.Column("digest", sa.String(limits.DIGEST), nullable=True),
    sa.Column("tag", sa.String(limits.TAG), nullable=True),
    sa.Column("actor", sa.String(limits.PRINCIPAL_NAME), nullable=True),
    sa.Column("detail", sa.JSON, nullable=True),
    sa.Column("project", sa.String(limits.PROJECT_NAME), nullable=True, index=True),
    sa.Column("address", sa.String(limits.ADDRESS), nullable=True),
)

job_leases = sa.Table(
    "job_leases", metadata,
    sa.Column("name", sa.String(limits.JOB_NAME), primary_key=True),
    sa.Column("holder", sa.String(limits.LEASE_HOLDER), nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
)

# --- Accounts and access (issue 4) -----------------------------------------------------------

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", _ascii_string(limits.ACCOUNT_NAME), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(limits.PASSWORD_HASH), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

projects = sa.Table(
    "projects", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", _ascii_string(limits.PROJECT_NAME), nullable=False, unique=True),
    sa.Column("public", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(limits.PRINCIPAL_NAME), nullable=True),
    # issue 12: the project's storage quota (None: none) and naming rules (None: any valid name)
    sa.Column("quota_bytes", sa.BigInteger, nullable=True),
    sa.Column("repository_pattern", sa.String(limits.PATTERN), nullable=True),
    sa.Column("tag_pattern", sa.String(limits.PATTERN), nullable=True),
)

teams = sa.Table(
    "teams", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", _ascii_string(limits.ACCOUNT_NAME), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("project_id", "name", name="uq_teams_project_name"),
)

team_members = sa.Table(
    "team_members", metadata,
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True,
              index=True),
)

# A role in a project, held by a user or a team (exactly one of the two ids is set; ``principal``
# is "user:<id>" or "team:<id>", so each holds one role per project even under concurrent grants).
project_members = sa.Table(
    "project_members", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("principal", sa.String(limits.MEMBER_PRINCIPAL), nullable=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True,
              index=True),
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=True,
              index=True),
    sa.Column("role", sa.String(limits.ROLE), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("project_id", "principal", name="uq_project_members_principal"),
)

robots = sa.Table(
    "robots", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", _ascii_string(limits.ROBOT_NAME), nullable=False, unique=True),  # the login name
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=True),
    sa.Column("secret_hash", sa.String(limits.SECRET_HASH), nullable=False),
    sa.Column("actions", sa.JSON, nullable=False),
    sa.Column("repositories", sa.JSON, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=True),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
    sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("rotated_at", Timestamp, nullable=True),
)

refresh_tokens = sa.Table(
    "refresh_tokens", metadata,
    sa.Column("token_hash", sa.String(limits.TOKEN_HASH), primary_key=True),  # SHA-256 of the token; never the token
    sa.Column("subject", sa.String(limits.PRINCIPAL_NAME), nullable=False, index=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
)

signing_keys = sa.Table(
    "signing_keys", metadata,
    sa.Column("kid", sa.String(limits.KEY_ID), primary_key=True),
    sa.Column("algorithm", sa.String(limits.KEY_ALGORITHM), nullable=False),
    sa.Column("private_pem", sa.LargeBinary, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("retired_at", Timestamp, nullable=True),
)

# Failed logins in the current window, per user and per client address, shared by every node.
login_failures = sa.Table(
    "login_failures", metadata,
    sa.Column("key", sa.String(limits.LOGIN_FAILURE_KEY), primary_key=True),
    sa.Column("window_start", Timestamp, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
)

# --- Image lifecycle (issue 12) ---------------------------------------------------------------
# Projects carry their naming rules and storage quota; manifests the time they were last pulled
# (written in batches by the pull flusher, never on the GET itself); blobs what the scrub found.

# (the columns they add to projects, manifests and blobs are in those tables above, marked "issue 12").

# What may have become garbage, and from when the collector may look at it (grace period).
# kind "manifest": (repository_id, digest) a manifest; "link": a repository's link to a blob;
# "blob": a blob's bytes, once nothing links it. Rows are hints: the collector re-checks each.
gc_candidates = sa.Table(
    "gc_candidates", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(limits.CANDIDATE_KIND), nullable=False),
    sa.Column("repository_id", sa.Integer, nullable=True),  # no FK: the repository may be gone
    # indexed: a push forgets its manifest's rows, the collector drops each candidate's rows
    sa.Column("digest", sa.String(limits.DIGEST), nullable=False, index=True),
    sa.Column("reason", sa.String(limits.CANDIDATE_REASON), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("due_at", Timestamp, nullable=False, index=True),
)

# A blob an upload is about to publish: the collector never deletes the bytes of a pinned digest.
blob_pins = sa.Table(
    "blob_pins", metadata,
    sa.Column("upload_id", sa.String(limits.UPLOAD_ID), sa.ForeignKey("uploads.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("digest", sa.String(limits.DIGEST), nullable=False, index=True),
    sa.Column("created_at", Timestamp, nullable=False),
)

# A blob whose row the collector removed and whose bytes it is deleting (a tombstone): an upload
# of the same digest waits until it is gone before it puts bytes in place.
blob_deletions = sa.Table(
    "blob_deletions", metadata,
    sa.Column("digest", sa.String(limits.DIGEST), primary_key=True),
    sa.Column("started_at", Timestamp, nullable=False),
)

# Tags a retention run deleted, restorable until expires_at; the collector keeps their manifests.
deleted_tags = sa.Table(
    "deleted_tags", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", _ascii_string(limits.TAG), nullable=False),
    sa.Column("digest", sa.String(limits.DIGEST), nullable=False),
    sa.Column("deleted_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False, index=True),
    sa.Column("run_id", sa.Integer, nullable=True),  # the job run that deleted it
    sa.UniqueConstraint("repository_id", "name", name="uq_deleted_tags_repository_name"),
)

retention_policies = sa.Table(
    "retention_policies", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("repository_glob", sa.String(limits.GLOB), nullable=False),  # "*": every repository
    sa.Column("keep_last", sa.Integer, nullable=True),
    sa.Column("keep_days", sa.Integer, nullable=True),
    sa.Column("keep_pulled_days", sa.Integer, nullable=True),
    sa.Column("keep_tags", sa.String(limits.PATTERN), nullable=True),
    sa.Column("keep_tags_invert", sa.Boolean, nullable=False, default=False),  # keep all but those
    sa.Column("untagged_days", sa.Integer, nullable=True),
    sa.Column("schedule", sa.String(limits.CRON), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("last_run_at", Timestamp, nullable=True),
    sa.UniqueConstraint("project_id", "repository_glob", name="uq_retention_policies_project_glob"),
)

# A printed retention plan; apply carries it out only if the state still has its fingerprint.
retention_plans = sa.Table(
    "retention_plans", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("fingerprint", sa.String(limits.FINGERPRINT), nullable=False),
    sa.Column("plan", sa.JSON, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("applied_at", Timestamp, nullable=True),
)

immutable_rules = sa.Table(
    "immutable_rules", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("repository_glob", sa.String(limits.GLOB), nullable=False),
    sa.Column("tag_glob", sa.String(limits.GLOB), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(limits.PRINCIPAL_NAME), nullable=True),
    sa.UniqueConstraint("project_id", "repository_glob", "tag_glob", name="uq_immutable_rules_patterns"),
)

# Every run of a background job (GC, retention, scrub, upload purge), by hand or scheduled.
job_runs = sa.Table(
    "job_runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(limits.JOB_NAME), nullable=False),
    sa.Column("node", sa.String(limits.LEASE_HOLDER), nullable=False),
    sa.Column("started_at", Timestamp, nullable=False, index=True),
    sa.Column("ended_at", Timestamp, nullable=True),
    sa.Column("outcome", sa.String(limits.JOB_OUTCOME), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False, default=False),
    sa.Column("examined", sa.BigInteger, nullable=False, default=0),
    sa.Column("removed", sa.BigInteger, nullable=False, default=0),
    sa.Column("bytes_freed", sa.BigInteger, nullable=False, default=0),
    sa.Column("detail", sa.JSON, nullable=True),
)

# Where a resumable job stopped (the scrub's last digest), and other per-job state.
job_state = sa.Table(
    "job_state", metadata,
    sa.Column("name", sa.String(limits.JOB_NAME), primary_key=True),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

# Supply chain (docs/supply-chain.md). One scan per image manifest digest, shared by every
# repository holding it: queued from the event outbox, claimed by one node (claimed_by/until), and
# re-matched (not re-read) when the vulnerability database changes.
scans = sa.Table(
    "scans", metadata,
    sa.Column("digest", sa.String(limits.DIGEST), primary_key=True),
    sa.Column("status", sa.String(limits.SCAN_STATUS), nullable=False, index=True),
    sa.Column("queued_at", Timestamp, nullable=False),
    sa.Column("started_at", Timestamp, nullable=True),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.Column("claimed_by", sa.String(limits.LEASE_HOLDER), nullable=True),
    sa.Column("claimed_until", Timestamp, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("scanner_version", sa.String(limits.SCANNER_VERSION), nullable=True),
    sa.Column("inventory", sa.JSON, nullable=True),  # scan/report.py Inventory.to_json()
    sa.Column("findings", sa.JSON, nullable=True),  # secrets (masked), malware, skipped counts
    sa.Column("vulnerabilities", sa.JSON, nullable=True),  # matched at vulndb_revision
    sa.Column("vulndb_revision", sa.Integer, nullable=True),
    sa.Column("error", sa.String(limits.SCAN_ERROR), nullable=True),
)

# OSV advisories; vuln_affected holds one row per (advisory, ecosystem, package) for the lookup.
vuln_advisories = sa.Table(
    "vuln_advisories", metadata,
    sa.Column("id", sa.String(limits.VULN_ID), primary_key=True),
    sa.Column("modified", Timestamp, nullable=True),
    sa.Column("aliases", sa.JSON, nullable=False),
    sa.Column("summary", sa.Text, nullable=True),
    sa.Column("severity", sa.String(limits.SEVERITY), nullable=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("vector", sa.String(limits.CVSS_VECTOR), nullable=True),
    sa.Column("withdrawn", sa.Boolean, nullable=False, default=False),
)

vuln_affected = sa.Table(
    "vuln_affected", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("advisory_id", sa.String(limits.VULN_ID),
              sa.ForeignKey("vuln_advisories.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("ecosystem", sa.String(limits.ECOSYSTEM), nullable=False),
    sa.Column("package", sa.String(limits.PACKAGE_NAME), nullable=False),
    sa.Column("ranges", sa.JSON, nullable=False),  # OSV "ranges" (type, events)
    sa.Column("versions", sa.JSON, nullable=False),  # OSV "versions": explicitly affected
    sa.Column("severity", sa.String(limits.SEVERITY), nullable=True),  # its database_specific one
    sa.Index("ix_vuln_affected_ecosystem_package", "ecosystem", "package"),
)

# Each import or sync of the vulnerability database; the highest id is the current revision.
vulndb_revisions = sa.Table(
    "vulndb_revisions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("imported_at", Timestamp, nullable=False),
    sa.Column("source", sa.String(limits.VULNDB_SOURCE), nullable=False),
    sa.Column("added", sa.Integer, nullable=False, default=0),
    sa.Column("updated", sa.Integer, nullable=False, default=0),
    sa.Column("unchanged", sa.Integer, nullable=False, default=0),
)

# Vulnerabilities a project accepts, each with a reason and an optional expiry.
vuln_allowlist = sa.Table(
    "vuln_allowlist", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("vulnerability", sa.String(limits.VULN_ID), nullable=False),
    sa.Column("reason", sa.String(limits.ALLOW_REASON), nullable=False),
    sa.Column("expires_at", Timestamp, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(limits.PRINCIPAL_NAME), nullable=True),
    sa.UniqueConstraint("project_id", "vulnerability", name="uq_vuln_allowlist_project_vulnerability"),
)

# Public keys (PEM) a project trusts for cosign signatures.
trusted_keys = sa.Table(
    "trusted_keys", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(limits.KEY_NAME), nullable=False),
    sa.Column("public_key", sa.String(limits.PUBLIC_KEY), nullable=False),
    sa.Column("fingerprint", sa.String(limits.FINGERPRINT), nullable=False),  # hex SHA-256 of the DER key
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(limits.PRINCIPAL_NAME), nullable=True),
    sa.UniqueConstraint("project_id", "name", name="uq_trusted_keys_project_name"),
)

# Push and pull admission rules per project: one row per (stage, check), enforce or warn.
admission_rules = sa.Table(
    "admission_rules", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    sa.Column("stage", sa.String(limits.RULE_STAGE), nullable=False),
    sa.Column("check", sa.String(limits.RULE_CHECK), nullable=False),
    sa.Column("mode", sa.String(limits.RULE_MODE), nullable=False),
    sa.Column("severity", sa.String(limits.SEVERITY), nullable=True),  # vulnerabilities: the threshold
    sa.Column("labels", sa.JSON, nullable=True),  # labels: the required label/annotation keys
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.UniqueConstraint("project_id", "stage", "check", name="uq_admission_rules_project_stage_check"),
)
