"""The push and pull rules as tables: every rule, enforce and warn, pass and fail, the allow-list (ids,
aliases, expiry), the exact messages, which manifests are gated, and the value checks."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from dockyard.errors import RequestInvalid
from dockyard.oci.manifests import parse_manifest
from dockyard.policy.admission import (
    Facts,
    ScanFacts,
    Verdict,
    allow_entry,
    allow_view,
    evaluate,
    header_value,
    is_gated,
    parse_rules,
    refusal,
    rules_view,
    warning,
)
from dockyard.scan.report import MalwareFinding, SecretFinding, Vulnerability
from dockyard.store.admission import AdmissionRule, AllowEntry

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LAYER = "sha256:" + "ab12cd34ef56" + "0" * 52
DIGEST = "sha256:" + "9" * 64


def vuln(id_: str, severity: str, package: str = "openssl", installed: str = "3.0.9-1", fixed: str | None = "3.0.11-1",
         aliases: tuple[str, ...] = ()) -> Vulnerability:
    return Vulnerability(id_, aliases, package, "Debian:12", installed, fixed, severity)


AWS = SecretFinding(LAYER, "root/.aws/credentials", "aws-access-key-id", 2, "AKIA****", removed=True)
PEM = SecretFinding(LAYER, "etc/ssl/private/key.pem", "private-key", 1, "----****")
ENV = SecretFinding("sha256:" + "c" * 64, "config:Env", "github-token", 3, "ghp_****")
EICAR = MalwareFinding(LAYER, "tmp/eicar.com", "Eicar-Signature")


def facts(**changes: object) -> Facts:
    base: dict[str, object] = {"project": "team-a", "digest": DIGEST, "scan": ScanFacts(), "now": NOW}
    return Facts(**{**base, **changes})  # type: ignore[arg-type]


def one(rule: AdmissionRule, given: Facts) -> Verdict:
    (verdict,) = evaluate([rule], given)
    return verdict


TWO_CRITICAL = ScanFacts(vulnerabilities=(vuln("CVE-2023-1234", "critical"),
                                          vuln("CVE-2023-5678", "critical", "zlib", "1:1.2.13", None),
                                          vuln("CVE-2023-0001", "high")))

CASES: list[tuple[str, AdmissionRule, Facts, bool, str]] = [
    ("secrets pass", AdmissionRule("push", "secrets", "enforce"), facts(), True, "no secrets found"),
    ("secrets removed", AdmissionRule("push", "secrets", "enforce"), facts(scan=ScanFacts(secrets=(AWS,))), False,
     "1 secret found: aws-access-key-id in /root/.aws/credentials line 2 (layer sha256:ab12cd34ef56…, removed but "
     "still downloadable): remove it from the layer that added it and rebuild"),
    ("secrets several", AdmissionRule("push", "secrets", "warn"), facts(scan=ScanFacts(secrets=(AWS, PEM, ENV))),
     False, "3 secrets found: private-key in /etc/ssl/private/key.pem line 1 (layer sha256:ab12cd34ef56…); "
            "github-token in the image config's Env (entry 3); aws-access-key-id in "
            "/root/.aws/credentials line 2 (layer sha256:ab12cd34ef56…, removed but still downloadable): remove "
            "them from the layer or Dockerfile instruction that added them and rebuild"),
    ("vulns critical", AdmissionRule("push", "vulnerabilities", "enforce", severity="critical"),
     facts(scan=TWO_CRITICAL), False,
     "2 critical vulnerabilities: CVE-2023-1234 in openssl 3.0.9-1 (fixed in 3.0.11-1), CVE-2023-5678 in zlib "
     "1:1.2.13 (no fix yet); allow-list or rebuild"),
    ("vulns high", AdmissionRule("pull", "vulnerabilities", "warn", severity="high"), facts(scan=TWO_CRITICAL),
     False, "2 critical and 1 high vulnerabilities: CVE-2023-1234 in openssl 3.0.9-1 (fixed in 3.0.11-1), "
            "CVE-2023-5678 in zlib 1:1.2.13 (no fix yet), CVE-2023-0001 in openssl 3.0.9-1 (fixed in 3.0.11-1); "
            "allow-list or rebuild"),
    ("vulns capped", AdmissionRule("push", "vulnerabilities", "enforce", severity="low"),
     facts(scan=ScanFacts(vulnerabilities=tuple(vuln(f"CVE-2024-000{i}", "low") for i in range(5)))), False,
     "5 low vulnerabilities: CVE-2024-0000 in openssl 3.0.9-1 (fixed in 3.0.11-1), CVE-2024-0001 in openssl "
     "3.0.9-1 (fixed in 3.0.11-1), CVE-2024-0002 in openssl 3.0.9-1 (fixed in 3.0.11-1) and 2 more; allow-list "
     "or rebuild"),
    ("vulns below", AdmissionRule("push", "vulnerabilities", "enforce", severity="critical"),
     facts(scan=ScanFacts(vulnerabilities=(vuln("CVE-2023-0001", "high"),))), True, "no critical vulnerabilities"),
    ("vulns unknown below low", AdmissionRule("push", "vulnerabilities", "enforce", severity="low"),
     facts(scan=ScanFacts(vulnerabilities=(vuln("CVE-2023-0002", "unknown"),))), True,
     "no vulnerabilities at or above low"),
    ("malware", AdmissionRule("push", "malware", "enforce"), facts(scan=ScanFacts(malware=(EICAR,))), False,
     "1 malware detection: Eicar-Signature in /tmp/eicar.com (layer sha256:ab12cd34ef56…): remove the files and "
     "rebuild"),
    ("malware pass", AdmissionRule("push", "malware", "warn"), facts(), True, "no malware found"),
    ("malware no engine", AdmissionRule("push", "malware", "enforce"), facts(scan=ScanFacts(malware_checked=False)),
     False, "no malware engine looked at this image (scan.clamd.socket is not set): configure clamd or remove the "
            "malware rule"),
    ("labels missing", AdmissionRule("push", "labels", "enforce",
                                     labels=("org.opencontainers.image.source", "team")),
     facts(labels=frozenset({"team"})), False, "missing required labels: org.opencontainers.image.source"),
    ("labels present", AdmissionRule("push", "labels", "warn", labels=("team",)), facts(labels=frozenset({"team"})),
     True, "has the required labels: team"),
    ("labels need no scan", AdmissionRule("push", "labels", "enforce", labels=("team",)),
     facts(scan=None, labels=frozenset({"team"})), True, "has the required labels: team"),
    ("signed", AdmissionRule("pull", "signed", "enforce"), facts(signed=True), True,
     "signed by a key project team-a trusts"),
    ("unsigned", AdmissionRule("pull", "signed", "enforce"),
     facts(trusted_keys=(("ci-key", "f00d" * 16),)), False,
     "not signed by a key project team-a trusts (trusted: ci-key sha256:f00df00df00d…); sign it with dockyard "
     "sign or cosign sign --key"),
    ("unsigned no keys", AdmissionRule("pull", "signed", "warn"), facts(), False,
     "not signed by a key project team-a trusts (project team-a trusts no key yet: add one with dockyard key "
     "add); sign it with dockyard sign or cosign sign --key"),
    ("scanned", AdmissionRule("pull", "scanned", "enforce"), facts(), True, "scanned"),
    ("not scanned", AdmissionRule("pull", "scanned", "warn"), facts(scan=None), False,
     "not scanned yet; retry shortly"),
    ("pull vulns not scanned", AdmissionRule("pull", "vulnerabilities", "enforce", severity="high"),
     facts(scan=None), False, "not scanned yet, so its vulnerabilities are unknown; retry shortly"),
    ("push scan timed out", AdmissionRule("push", "secrets", "enforce"),
     facts(scan=None, scan_pending=f"scan of {DIGEST} still running after 60s"), False,
     f"scan of {DIGEST} still running after 60s; push again shortly — the result is kept"),
    ("push scan failed", AdmissionRule("push", "vulnerabilities", "enforce", severity="high"),
     facts(scan=None, scan_failed=f"scan of {DIGEST} failed (layer 2 is not a readable tar archive)"), False,
     f"scan of {DIGEST} failed (layer 2 is not a readable tar archive): the image cannot be checked; fix it and "
     "push again"),
    ("push rule explained unscanned", AdmissionRule("push", "malware", "warn"), facts(scan=None), False,
     "not scanned yet (a push waits for its scan, up to scan.push_timeout)"),
]


@pytest.mark.parametrize(("rule", "given", "passed", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_says_why(rule: AdmissionRule, given: Facts, passed: bool, message: str) -> None:
    verdict = one(rule, given)
    assert (verdict.rule, verdict.mode, verdict.passed, verdict.message) == (rule.name, rule.mode, passed, message)
    assert verdict.refuses == (not passed and rule.mode == "enforce")
    assert verdict.warns == (not passed and rule.mode == "warn")
    assert verdict.to_json()["outcome"] == ("pass" if passed else "refuse" if rule.mode == "enforce" else "warn")


def test_only_a_missing_push_scan_asks_for_a_retry() -> None:
    waiting = facts(scan=None, scan_pending="scan of x still running after 60s")
    assert one(AdmissionRule("push", "vulnerabilities", "enforce", severity="high"), waiting).retry
    assert not one(AdmissionRule("pull", "vulnerabilities", "enforce", severity="high"), waiting).retry
    assert not one(AdmissionRule("push", "labels", "enforce", labels=("a",)), waiting).retry
    assert not one(AdmissionRule("push", "secrets", "enforce"), facts(scan=None, scan_failed="scan of x failed")).retry


ALLOWED = (vuln("DSA-5500-1", "critical", aliases=("CVE-2023-1234",)), vuln("CVE-2023-9999", "critical"))
ALLOW_CASES = [
    ("by id", (AllowEntry("DSA-5500-1", "r"), AllowEntry("CVE-2023-9999", "r")), True,
     "no critical vulnerabilities (2 allow-listed: CVE-2023-9999, DSA-5500-1)"),
    ("by alias, any case", (AllowEntry("cve-2023-1234", "r"), AllowEntry("CVE-2023-9999", "r")), True,
     "no critical vulnerabilities (2 allow-listed: CVE-2023-9999, DSA-5500-1)"),
    ("one left", (AllowEntry("CVE-2023-1234", "r"),), False,
     "1 critical vulnerability: CVE-2023-9999 in openssl 3.0.9-1 (fixed in 3.0.11-1); allow-list or rebuild"),
    ("expired entry does not count", (AllowEntry("CVE-2023-1234", "r", NOW), AllowEntry("CVE-2023-9999", "r")),
     False, "1 critical vulnerability: DSA-5500-1 in openssl 3.0.9-1 (fixed in 3.0.11-1); allow-list or rebuild"),
    ("entry expiring later counts", (AllowEntry("CVE-2023-1234", "r", datetime(2027, 1, 31, tzinfo=UTC)),
                                     AllowEntry("CVE-2023-9999", "r")), True,
     "no critical vulnerabilities (2 allow-listed: CVE-2023-9999, DSA-5500-1)"),
]


@pytest.mark.parametrize(("allowlist", "passed", "message"), [c[1:] for c in ALLOW_CASES],
                         ids=[c[0] for c in ALLOW_CASES])
def test_the_allow_list_matches_ids_and_aliases_until_it_expires(allowlist: tuple[AllowEntry, ...], passed: bool,
                                                                 message: str) -> None:
    rule = AdmissionRule("pull", "vulnerabilities", "enforce", severity="critical")
    verdict = one(rule, facts(scan=ScanFacts(vulnerabilities=ALLOWED), allowlist=allowlist))
    assert (verdict.passed, verdict.message) == (passed, message)


def test_the_same_vulnerability_in_two_children_counts_once() -> None:
    rule = AdmissionRule("push", "vulnerabilities", "enforce", severity="critical")
    twice = ScanFacts(vulnerabilities=(vuln("CVE-2023-1234", "critical"), vuln("CVE-2023-1234", "critical")))
    assert one(rule, facts(scan=twice)).message.startswith("1 critical vulnerability: CVE-2023-1234")


def test_refusal_and_warning_join_the_failed_rules() -> None:
    verdicts = evaluate([AdmissionRule("pull", "signed", "enforce"), AdmissionRule("pull", "scanned", "warn"),
                         AdmissionRule("pull", "vulnerabilities", "enforce", severity="critical")],
                        facts(scan=None, signed=False))
    assert refusal(verdicts) == (
        "not signed by a key project team-a trusts (project team-a trusts no key yet: add one with dockyard key "
        "add); sign it with dockyard sign or cosign sign --key | not scanned yet, so its vulnerabilities are "
        "unknown; retry shortly")
    assert warning(verdicts) == "not scanned yet; retry shortly"
    assert refusal(evaluate([AdmissionRule("pull", "scanned", "warn")], facts())) is None
    assert header_value("a — b sha256:ab12…\nc é") == "a - b sha256:ab12... c ?"
    assert len(header_value("x" * 5000)) == 2048


def _manifest(**parts: object) -> bytes:
    import json

    document = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 2},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": DIGEST,
                            "size": 2}]}
    document.update(parts)
    return json.dumps(document).encode()


GATED = [
    ("image", _manifest(), None, True),
    ("zstd and docker layers", _manifest(layers=[
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": DIGEST, "size": 1},
        {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": DIGEST, "size": 1}]),
     "latest", True),
    ("cosign signature", _manifest(layers=[
        {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": DIGEST, "size": 1}]),
     None, False),
    ("signature tag", _manifest(), "sha256-" + "9" * 64 + ".sig", False),
    ("referrer", _manifest(subject={"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST,
                                    "size": 1}), None, False),
    ("artifact type", _manifest(artifactType="application/vnd.cyclonedx+json"), None, False),
    ("other config", _manifest(config={"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": DIGEST,
                                       "size": 1}), None, False),
    ("index of images", b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":'
                        b'[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"' + DIGEST.encode()
                        + b'","size":1}]}', None, True),
    ("empty index", b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}',
     None, False),
]


@pytest.mark.parametrize(("body", "reference", "gated"), [c[1:] for c in GATED], ids=[c[0] for c in GATED])
def test_rules_apply_to_images_and_indexes_not_artifacts(body: bytes, reference: str | None, gated: bool) -> None:
    assert is_gated(parse_manifest(body, ""), reference) is gated


def test_rules_parse_from_the_shapes_the_file_and_api_use() -> None:
    push = parse_rules("push", {"secrets": "enforce", "malware": {"mode": "warn"},
                                "vulnerabilities": {"severity": "critical", "mode": "enforce"},
                                "labels": {"required": ["org.opencontainers.image.source"]}})
    pull = parse_rules("pull", {"signed": "enforce", "scanned": "warn",
                                "vulnerabilities": {"severity": "high", "mode": "warn"}})
    assert rules_view(push + pull) == {
        "push": {"labels": {"required": ["org.opencontainers.image.source"], "mode": "enforce"},
                 "malware": "warn", "secrets": "enforce",
                 "vulnerabilities": {"severity": "critical", "mode": "enforce"}},
        "pull": {"scanned": "warn", "signed": "enforce", "vulnerabilities": {"severity": "high", "mode": "warn"}}}


BAD_RULES = [
    ("push", {"signed": "enforce"}, "push.signed", "unknown push rule 'signed'; push rules are secrets, "
                                                   "vulnerabilities, malware, labels"),
    ("push", {"secrets": "block"}, "push.secrets.mode", "push.secrets.mode must be \"enforce\" or \"warn\", not "
                                                        "'block'"),
    ("push", {"secrets": 1}, "push.secrets", "push.secrets must be \"enforce\", \"warn\" or a table with mode"),
    ("pull", {"vulnerabilities": "enforce"}, "pull.vulnerabilities.severity",
     "pull.vulnerabilities needs severity, one of critical, high, medium, low, unknown: vulnerabilities = { "
     "severity = \"critical\", mode = \"enforce\" }"),
    ("pull", {"vulnerabilities": {"severity": "severe"}}, "pull.vulnerabilities.severity", "needs severity"),
    ("push", {"labels": {"required": []}}, "push.labels.required", "push.labels needs required, a list of 1 to 32"),
    ("push", {"labels": {"required": ["bad key"]}}, "push.labels.required", "'bad key' is not a label key"),
    ("push", {"secrets": {"mode": "warn", "severity": "high"}}, "push.secrets",
     "unknown key 'severity' in push.secrets; allowed: mode"),
    ("push", ["secrets"], "push", "push must be a table of rules"),
]


@pytest.mark.parametrize(("stage", "table", "field", "says"), BAD_RULES)
def test_bad_rules_name_the_field(stage: str, table: object, field: str, says: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse_rules(stage, table)
    assert caught.value.detail == {"field": field}
    assert says in caught.value.message


def test_allow_entries_check_their_values() -> None:
    entry = allow_entry({"id": "CVE-2023-1234", "reason": " not reachable ", "expires": "2027-01-31"})
    assert entry == AllowEntry("CVE-2023-1234", "not reachable", datetime(2027, 1, 31, tzinfo=UTC))
    assert allow_entry({"id": "GHSA-abcd-1234-efgh", "reason": "r", "expires": date(2027, 1, 31)}) == AllowEntry(
        "GHSA-abcd-1234-efgh", "r", datetime(2027, 1, 31, tzinfo=UTC))
    assert allow_view(entry) == {"id": "CVE-2023-1234", "reason": "not reachable", "expires": "2027-01-31"}
    for fields, field, says in [
            ({"id": "CVE 1", "reason": "r"}, "id", "id must be a vulnerability id"),
            ({"id": "CVE-1", "reason": ""}, "reason", "reason must say why"),
            ({"id": "CVE-1", "reason": "r", "expires": "next year"}, "expires", "expires must be a date such as"),
            ({"id": "CVE-1", "reason": "r", "until": "2027-01-01"}, "until", "unknown key 'until'")]:
        with pytest.raises(RequestInvalid) as caught:
            allow_entry(fields)
        assert caught.value.detail == {"field": field}
        assert says in caught.value.message
