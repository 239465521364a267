"""How much each bounded column holds: the schema declares its columns with these sizes, and the
checks at the edge use the same constants, so the two cannot drift apart.

SQLite ignores declared lengths; PostgreSQL refuses a longer value with an error. Every value a
client supplies is checked against these at the edge (``oci/names.py``, ``oci/manifests.py``,
the services) and refused there with a 4xx saying the limit, the same on every backend;
``tests/unit/test_limits.py`` walks the schema and fails on a bounded column without such a check.
What still slips through is a 400 at the database's seam (``store/db.py``), never a 500.

Sizes count characters, as both databases do. Text that no column can hold on PostgreSQL (a NUL
character, or a lone surrogate that has no UTF-8 form) is refused at the edge as well:
``can_hold`` says whether a value fits.
"""

from __future__ import annotations

from dockyard.oci.mediatypes import MAX_MEDIA_TYPE_LENGTH
from dockyard.oci.names import MAX_NAME_LENGTH, MAX_TAG_LENGTH

# -- what clients name (checked at the edge) ----------------------------------------------------
REPOSITORY_NAME = MAX_NAME_LENGTH  # distribution's limit, the whole name
PROJECT_NAME = MAX_NAME_LENGTH  # a repository's first component, or a project made on /api/v1
TAG = MAX_TAG_LENGTH
DIGEST = 160  # room for any digest the grammar accepts (MAX_DIGEST_LENGTH)
MEDIA_TYPE = MAX_MEDIA_TYPE_LENGTH  # a manifest's mediaType and artifactType (RFC 6838: 127/127)
ACCOUNT_NAME = 64  # users and teams
ROBOT_NAME = 160  # the whole login: robot+<project>+<name>
# Who did something (an event's actor, a project's creator, a refresh token's subject): a user or
# a robot login, so never longer than ROBOT_NAME.
PRINCIPAL_NAME = 255
ADDRESS = 64  # a client address (IPv6 with a zone fits; X-Forwarded-For is cut to this)
LOGIN_FAILURE_KEY = 320  # "user:<login>" or "addr:<address>"
# Policies (issue 12): glob patterns over repository names (after the project) and tags, regular
# expressions for naming and retention rules, cron schedules.
GLOB = 255
PATTERN = 512
CRON = 128

# -- what the registry makes itself ------------------------------------------------------------
UPLOAD_ID = 64
EVENT_NAME = 64
JOB_NAME = 64
LEASE_HOLDER = 128  # <hostname>:<pid>
REFERENCE_KIND = 16
MEMBER_PRINCIPAL = 32  # "user:<id>" or "team:<id>"
ROLE = 16
PASSWORD_HASH = 255
SECRET_HASH = 128
TOKEN_HASH = 64  # hex SHA-256
KEY_ID = 64
KEY_ALGORITHM = 8
CANDIDATE_KIND = 16  # "manifest", "link" or "blob"
CANDIDATE_REASON = 32  # why something became a GC candidate: "tag.deleted", "upload", ...
JOB_OUTCOME = 16  # "running", "ok", "failed"
FINGERPRINT = 64  # hex SHA-256 of the state a retention plan was made from
SCAN_STATUS = 16  # "queued", "running", "done", "failed"
SCANNER_VERSION = 32
SCAN_ERROR = 1000
VULN_ID = 128  # OSV ids and aliases: "CVE-2023-4863", "GHSA-xxxx-xxxx-xxxx", "DSA-5496-1"
ECOSYSTEM = 64  # OSV's ecosystem names with their release: "Debian:12", "Alpine:v3.18"
PACKAGE_NAME = 255
SEVERITY = 16  # "critical", "high", "medium", "low", "unknown"
CVSS_VECTOR = 255
VULNDB_SOURCE = 255  # the file, zip or URL an import read
ALLOW_REASON = 500
KEY_NAME = 64
PUBLIC_KEY = 4096  # PEM
RULE_STAGE = 8  # "push", "pull"
RULE_CHECK = 16  # "secrets", "vulnerabilities", "malware", "labels", "signed", "scanned"
RULE_MODE = 8  # "enforce", "warn"


def can_hold(value: str, size: int) -> bool:
    """Whether a column of ``size`` characters holds ``value`` on every backend."""
    if len(value) > size or "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate, from a JSON "\\ud800" or a form
        return False
    return True
