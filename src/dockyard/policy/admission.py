"""Push admission and pull gating: which images a project lets in and out, and why (pure).

A project's rules, each ``enforce`` (refuse) or ``warn`` (let through, with an audit event and a
``Dockyard-Policy-Warning`` header):

    push.secrets          any secret finding, also one a later layer removed (still downloadable)
    push.vulnerabilities  a vulnerability at or above ``severity``, minus the allow-list
    push.malware          any malware detection
    push.labels           a required key missing from the image config's Labels and the annotations
    pull.signed           not signed by a key the project trusts
    pull.scanned          no current scan result
    pull.vulnerabilities  as on push (an image not scanned yet counts as failing: unknown is not clean)

``evaluate`` turns the rules and the plain facts about one image (``Facts``) into one ``Verdict``
per rule, each with a message a developer can act on. ``parse_rules`` / ``allow_entry`` check the
values the API, the CLI and the policy file give, with errors that name the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from dockyard.errors import RequestInvalid
from dockyard.oci import mediatypes as mt
from dockyard.oci.manifests import Manifest
from dockyard.scan.report import SEVERITIES, MalwareFinding, SecretFinding, Vulnerability, at_least
from dockyard.store.admission import AdmissionRule, AllowEntry

STAGES = ("push", "pull")
CHECKS: dict[str, tuple[str, ...]] = {"push": ("secrets", "vulnerabilities", "malware", "labels"),
                                      "pull": ("signed", "scanned", "vulnerabilities")}
MODES = ("enforce", "warn")
SCAN_CHECKS = frozenset({"secrets", "vulnerabilities", "malware", "scanned"})  # read a scan result
SHOWN = 3  # items a message lists before "and N more"
MAX_LABELS = 32
MAX_LABEL_KEY = 255
MAX_ID = 128  # store/limits.py VULN_ID
MAX_REASON = 500  # store/limits.py ALLOW_REASON
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]*")
_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
SIGNATURE_TAG = re.compile(r"sha256-[0-9a-f]{64}(\.[a-z]+)?")  # cosign's .sig / .att / .sbom tags
_TAR_LAYER = re.compile(r"application/vnd\.(oci\.image\.layer\.v1\.tar|docker\.image\.rootfs\.(diff|foreign\.diff)"
                        r"\.tar|oci\.image\.layer\.nondistributable\.v1\.tar)(\+\w+|\.\w+)?")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one rule says about one image."""

    rule: str  # "push.secrets", "pull.signed", ...
    mode: str  # "enforce" or "warn"
    passed: bool
    message: str
    retry: bool = False  # failed only because the scan is not done: an enforce rule answers 503, not 403

    @property
    def refuses(self) -> bool:
        return not self.passed and self.mode == "enforce"

    @property
    def warns(self) -> bool:
        return not self.passed and self.mode == "warn"

    def to_json(self) -> dict[str, Any]:
        outcome = "pass" if self.passed else "refuse" if self.mode == "enforce" else "warn"
        return {"rule": self.rule, "mode": self.mode, "passed": self.passed, "outcome": outcome,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class ScanFacts:
    """What a scan of the image (all children, for an index) found."""

    vulnerabilities: tuple[Vulnerability, ...] = ()
    secrets: tuple[SecretFinding, ...] = ()
    malware: tuple[MalwareFinding, ...] = ()
    malware_checked: bool = True  # False: no malware engine looked at it (scan.clamd.socket unset)


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the rules read about one image."""

    project: str
    digest: str
    scan: ScanFacts | None = None  # None: no current scan result
    scan_pending: str | None = None  # at push, why there is none: "scan of sha256:… still running after 60s"
    scan_failed: str | None = None  # at push, the scan ended without a result: "scan of sha256:… failed (…)"
    labels: frozenset[str] = frozenset()  # label keys of the config, and annotation keys
    signed: bool = False
    trusted_keys: tuple[tuple[str, str], ...] = ()  # (name, hex fingerprint) the project trusts
    allowlist: tuple[AllowEntry, ...] = ()
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


# -- which manifests the rules look at ---------------------------------------------------------


def is_gated(manifest: Manifest, reference: str | None = None) -> bool:
    """Whether rules apply: an image manifest or an index, not an artifact (a manifest with a subject,
    an artifactType, a non-image config or non-tar layers: signatures, SBOMs, attestations)."""
    if reference is not None and SIGNATURE_TAG.fullmatch(reference):
        return False
    if manifest.subject is not None or manifest.artifact_type:
        return False
    if manifest.is_index:
        return any(child.media_type in mt.IMAGE_MANIFESTS and not child.artifact_type for child in manifest.manifests)
    if manifest.config is None or manifest.config.media_type not in (mt.OCI_CONFIG, mt.DOCKER_CONFIG):
        return False
    return all(_TAR_LAYER.fullmatch(layer.media_type) for layer in manifest.layers)


def image_children(manifest: Manifest) -> list[str]:
    """The digests of an index's image manifests (artifacts and nested indexes aside)."""
    return [c.digest for c in manifest.manifests if c.media_type in mt.IMAGE_MANIFESTS and not c.artifact_type]


def needs_scan(rules: Iterable[AdmissionRule]) -> bool:
    return any(rule.check in SCAN_CHECKS for rule in rules)


# -- the evaluator -----------------------------------------------------------------------------


def evaluate(rules: Sequence[AdmissionRule], facts: Facts) -> list[Verdict]:
    """One verdict per rule, in the order given."""
    return [_verdict(rule, facts) for rule in rules]


def _verdict(rule: AdmissionRule, facts: Facts) -> Verdict:
    passed, message, retry = True, "", False
    if rule.check in SCAN_CHECKS and rule.check != "scanned" and facts.scan is None:
        if rule.stage == "push" and facts.scan_failed is not None:
            passed, message = False, f"{facts.scan_failed}: the image cannot be checked; fix it and push again"
        elif rule.stage == "push" and facts.scan_pending is not None:
            passed, message, retry = False, f"{facts.scan_pending}; push again shortly — the result is kept", True
        elif rule.stage == "push":  # explain: no push waits here
            passed, message = False, "not scanned yet (a push waits for its scan, up to scan.push_timeout)"
        else:
            passed, message = False, "not scanned yet, so its vulnerabilities are unknown; retry shortly"
    elif rule.check == "scanned":
        passed = facts.scan is not None
        message = "scanned" if passed else "not scanned yet; retry shortly"
    elif rule.check == "secrets":
        assert facts.scan is not None
        passed, message = _secrets(facts.scan.secrets)
    elif rule.check == "malware":
        assert facts.scan is not None
        passed, message = _malware(facts.scan)
    elif rule.check == "vulnerabilities":
        assert facts.scan is not None
        passed, message = _vulnerabilities(facts.scan.vulnerabilities, rule.severity or "critical",
                                           facts.allowlist, facts.now)
    elif rule.check == "labels":
        missing = [key for key in rule.labels if key not in facts.labels]
        passed = not missing
        message = (f"missing required labels: {', '.join(missing)}" if missing
                   else f"has the required labels: {', '.join(rule.labels)}")
    elif rule.check == "signed":
        passed = facts.signed
        message = f"signed by a key project {facts.project} trusts" if passed else _unsigned(facts)
    return Verdict(rule.name, rule.mode, passed, message, retry)


def _more(items: list[str], total: int) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {total - SHOWN} more" if total > SHOWN else "")


def short_digest(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}…" if len(hexpart) > 12 else digest


def _where(layer: str, path: str, removed: bool) -> str:
    if path.startswith("config:"):
        return "the image config"
    return f"layer {short_digest(layer)}" + (", removed but still downloadable" if removed else "")


def _secret(found: SecretFinding) -> str:
    if found.path.startswith("config:"):
        return f"{found.rule} in the image config's {found.path.removeprefix('config:')} (entry {found.line})"
    return (f"{found.rule} in /{found.path.lstrip('/')} line {found.line} "
            f"({_where(found.layer, found.path, found.removed)})")


def _secrets(secrets: Sequence[SecretFinding]) -> tuple[bool, str]:
    if not secrets:
        return True, "no secrets found"
    secrets = list({(s.layer, s.path, s.rule, s.line): s for s in secrets}.values())  # children share layers
    ordered = sorted(secrets, key=lambda s: (s.removed, s.layer, s.path, s.line))
    listed = [_secret(s) for s in ordered[:SHOWN]]
    more = f" and {len(secrets) - SHOWN} more" if len(secrets) > SHOWN else ""
    noun = "secret" if len(secrets) == 1 else "secrets"
    pronoun = "it" if len(secrets) == 1 else "them"
    source = ("the layer or Dockerfile instruction" if any(s.path.startswith("config:") for s in secrets)
              else "the layer")
    return False, (f"{len(secrets)} {noun} found: {'; '.join(listed)}{more}: remove {pronoun} from {source} "
                   f"that added {pronoun} and rebuild")


def _malware(scan: ScanFacts) -> tuple[bool, str]:
    if not scan.malware_checked:
        return False, ("no malware engine looked at this image (scan.clamd.socket is not set): configure clamd "
                       "or remove the malware rule")
    if not scan.malware:
        return True, "no malware found"
    unique = {(m.layer, m.path, m.signature): m for m in scan.malware}
    found = sorted(unique.values(), key=lambda m: (m.removed, m.layer, m.path))
    listed = [f"{m.signature} in /{m.path.lstrip('/')} ({_where(m.layer, m.path, m.removed)})" for m in found]
    noun = "malware detection" if len(found) == 1 else "malware detections"
    return False, f"{len(found)} {noun}: {'; '.join(listed[:SHOWN])}" + (
        f" and {len(found) - SHOWN} more" if len(found) > SHOWN else "") + ": remove the files and rebuild"


def allowed_by(vulnerability: Vulnerability, allowlist: Iterable[AllowEntry], now: datetime) -> AllowEntry | None:
    """The allow-list entry that covers the vulnerability (its id or any alias), if one counts now."""
    names = {name.casefold() for name in vulnerability.names()}
    return next((entry for entry in allowlist if entry.vulnerability.casefold() in names
                 and (entry.expires_at is None or now < entry.expires_at)), None)


def _vulnerabilities(found: Sequence[Vulnerability], threshold: str, allowlist: Sequence[AllowEntry],
                     now: datetime) -> tuple[bool, str]:
    unique = {(v.id, v.package, v.installed): v for v in found if at_least(v.severity, threshold)}
    ordered = sorted(unique.values(), key=lambda v: (_rank(v.severity), v.id, v.package))
    counted = [v for v in ordered if allowed_by(v, allowlist, now) is None]
    allowed = sorted({v.id for v in ordered} - {v.id for v in counted})
    scope = (f"no {threshold} vulnerabilities" if threshold == "critical"
             else f"no vulnerabilities at or above {threshold}")
    if not counted:
        note = f" ({len(allowed)} allow-listed: {_more(allowed, len(allowed))})" if allowed else ""
        return True, scope + note
    per = [f"{sum(1 for v in counted if v.severity == s)} {s}" for s in SEVERITIES
           if any(v.severity == s for v in counted)]
    head = per[0] if len(per) == 1 else ", ".join(per[:-1]) + " and " + per[-1]
    noun = "vulnerability" if len(counted) == 1 else "vulnerabilities"
    listed = [f"{v.id} in {v.package} {v.installed} " + (f"(fixed in {v.fixed})" if v.fixed else "(no fix yet)")
              for v in counted]
    return False, f"{head} {noun}: {_more(listed, len(listed))}; allow-list or rebuild"


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _unsigned(facts: Facts) -> str:
    if facts.trusted_keys:
        keys = [f"{name} sha256:{fingerprint[:12]}…" for name, fingerprint in facts.trusted_keys]
        trusted = f"trusted: {_more(keys, len(keys))}"
    else:
        trusted = f"project {facts.project} trusts no key yet: add one with dockyard key add"
    return (f"not signed by a key project {facts.project} trusts ({trusted}); "
            "sign it with dockyard sign or cosign sign --key")


# -- decisions ---------------------------------------------------------------------------------


def refusal(verdicts: Iterable[Verdict]) -> str | None:
    """The message of every enforce rule that failed, or None."""
    messages = [v.message for v in verdicts if v.refuses]
    return " | ".join(messages) if messages else None


def warning(verdicts: Iterable[Verdict]) -> str | None:
    messages = [v.message for v in verdicts if v.warns]
    return " | ".join(messages) if messages else None


def header_value(message: str, limit: int = 2048) -> str:
    """A warning as an HTTP header value: ASCII (…, — spelled out), one line, bounded."""
    text = message.replace("…", "...").replace("—", "-").replace("\r", " ").replace("\n", " ")
    text = text.encode("ascii", "replace").decode("ascii")
    return text if len(text) <= limit else text[:limit - 3] + "..."


# -- values (the API, the CLI and the policy file) ---------------------------------------------


def _invalid(name: str, message: str) -> RequestInvalid:
    return RequestInvalid(message, detail={"field": name})


def _mode(name: str, value: object) -> str:
    if value not in MODES:
        raise _invalid(name, f"{name} must be \"enforce\" or \"warn\", not {str(value)[:40]!r}")
    return str(value)


def parse_rules(stage: str, table: object) -> tuple[AdmissionRule, ...]:
    """A stage's rules from ``{check: "enforce"|"warn"|{mode=…, severity=…, required=[…]}}``."""
    if stage not in STAGES:
        raise _invalid(stage, f"unknown stage {stage[:40]!r}: rules are for push or pull")
    if table is None:
        return ()
    if not isinstance(table, Mapping):
        raise _invalid(stage, f"{stage} must be a table of rules: {stage} = {{ {CHECKS[stage][0]} = \"enforce\" }}")
    rules = []
    for check, value in table.items():
        name = f"{stage}.{check}"
        if check not in CHECKS[stage]:
            raise _invalid(name, f"unknown {stage} rule {str(check)[:40]!r}; {stage} rules are "
                                 f"{', '.join(CHECKS[stage])}")
        rules.append(_rule(stage, check, value))
    return tuple(sorted(rules, key=lambda r: r.check))


def _rule(stage: str, check: str, value: object) -> AdmissionRule:
    name = f"{stage}.{check}"
    if isinstance(value, str):
        value = {"mode": value}
    if not isinstance(value, Mapping):
        raise _invalid(name, f"{name} must be \"enforce\", \"warn\" or a table with mode")
    allowed = {"vulnerabilities": ("mode", "severity"), "labels": ("mode", "required")}.get(check, ("mode",))
    unknown = [key for key in value if key not in allowed]
    if unknown:
        raise _invalid(name, f"unknown key {str(unknown[0])[:40]!r} in {name}; allowed: {', '.join(allowed)}")
    mode = _mode(f"{name}.mode", value.get("mode", "enforce"))
    if check == "vulnerabilities":
        severity = value.get("severity")
        if severity not in SEVERITIES:
            raise _invalid(f"{name}.severity", f"{name} needs severity, one of {', '.join(SEVERITIES)}: "
                                               f"{check} = {{ severity = \"critical\", mode = \"{mode}\" }}")
        return AdmissionRule(stage, check, mode, severity=str(severity))
    if check == "labels":
        return AdmissionRule(stage, check, mode, labels=_labels(name, value.get("required")))
    return AdmissionRule(stage, check, mode)


def _labels(name: str, value: object) -> tuple[str, ...]:
    if (not isinstance(value, list) or not value or len(value) > MAX_LABELS
            or not all(isinstance(key, str) for key in value)):
        raise _invalid(f"{name}.required", f"{name} needs required, a list of 1 to {MAX_LABELS} label keys: "
                                           "required = [\"org.opencontainers.image.source\"]")
    for key in value:
        if len(key) > MAX_LABEL_KEY or not _LABEL_KEY.fullmatch(key):
            raise _invalid(f"{name}.required", f"{name}: {key[:60]!r} is not a label key (letters, digits, "
                                               ". _ / -, such as org.opencontainers.image.source)")
    return tuple(dict.fromkeys(value))


def rule_view(rule: AdmissionRule) -> str | dict[str, Any]:
    """A rule as the policy file and the API write it."""
    if rule.check == "vulnerabilities":
        return {"severity": rule.severity, "mode": rule.mode}
    if rule.check == "labels":
        return {"required": list(rule.labels), "mode": rule.mode}
    return rule.mode


def rules_view(rules: Iterable[AdmissionRule]) -> dict[str, dict[str, Any]]:
    view: dict[str, dict[str, Any]] = {stage: {} for stage in STAGES}
    for rule in rules:
        view[rule.stage][rule.check] = rule_view(rule)
    return view


def vulnerability_id(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID or not _ID.fullmatch(value):
        raise _invalid("id", f"id must be a vulnerability id or alias such as CVE-2023-4863 or GHSA-…, "
                             f"at most {MAX_ID} characters")
    return value


def expiry(value: object) -> datetime | None:
    """A date (``2027-01-31``: the entry stops counting at its start, UTC) or an ISO time, or None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    if isinstance(value, str) and len(value) <= 40:
        try:
            found = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return found if found.tzinfo else found.replace(tzinfo=UTC)
    raise _invalid("expires", "expires must be a date such as 2027-01-31 (the entry stops counting at its "
                              "start, UTC), or left out for no expiry")


def allow_entry(fields: Mapping[str, object]) -> AllowEntry:
    """An allow-list entry from ``id``, ``reason`` and an optional ``expires``."""
    unknown = sorted(set(fields) - {"id", "reason", "expires"})
    if unknown:
        raise _invalid(unknown[0], f"unknown key {unknown[0][:40]!r} in an allow-list entry; allowed: id, reason, "
                                   "expires")
    reason = fields.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON or not reason.isprintable():
        raise _invalid("reason", f"reason must say why the vulnerability is accepted: one line of text, 1 to "
                                 f"{MAX_REASON} characters")
    return AllowEntry(vulnerability_id(fields.get("id")), reason.strip(), expiry(fields.get("expires")))


def expiry_text(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.date().isoformat() if moment.time() == time() else moment.isoformat()


def allow_view(entry: AllowEntry, now: datetime | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {"id": entry.vulnerability, "reason": entry.reason,
                            "expires": expiry_text(entry.expires_at)}
    if now is not None:
        view["expired"] = entry.expires_at is not None and now >= entry.expires_at
        view["created_at"] = entry.created_at.isoformat() if entry.created_at else None
        view["created_by"] = entry.created_by
    return view
