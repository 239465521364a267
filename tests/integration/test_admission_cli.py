"""The admission rules through the real CLI (click's runner, in-process) on SQLite and PostgreSQL: the
policy file's push/pull/allow keys (diff, apply, diff again, errors naming key and line),
``dockyard allowlist add|list|remove`` and ``dockyard policy explain``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dockyard.cli import main
from tests.integration.conftest import make_config, open_registry
from tests.integration.test_admission import SOURCE, labelled_image
from tests.integration.test_cli_access import CHEAP
from tests.support.content import Image, make_artifact, push_image

POLICY_FILE = """
[projects.team-a]

[projects.team-a.push]
secrets = "enforce"
vulnerabilities = { severity = "critical", mode = "enforce" }
labels = { required = ["org.opencontainers.image.source"], mode = "warn" }

[projects.team-a.pull]
scanned = "warn"

[[projects.team-a.allow]]
id = "CVE-2023-4863"
reason = "no image decoding"
expires = 2027-01-31

[[projects.team-a.allow]]
id = "GHSA-aaaa-bbbb-cccc"
reason = "dev dependency only"
"""


@pytest.fixture
def dockyard(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for key, value in {**CHEAP, "DOCKYARD_DATABASE__URL": database_url}.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> Result:
        result = runner.invoke(main, [*args, "--data-dir", str(tmp_path / "data")])
        assert (result.exit_code == 0) is ok, (args, result.output)
        assert "Traceback" not in result.output
        return result
    return run


def as_json(result: Result) -> Any:
    return json.loads(result.output)


def test_policy_file_diff_apply_and_diff_again(dockyard, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dockyard("project", "add", "team-a")
    file = tmp_path / "policies.toml"
    file.write_text(POLICY_FILE)
    assert dockyard("policy", "diff", str(file)).output.splitlines() == [
        "+ team-a push.labels: required=['org.opencontainers.image.source'] mode='warn'",
        "+ team-a push.secrets: enforce",
        "+ team-a push.vulnerabilities: severity='critical' mode='enforce'",
        "+ team-a pull.scanned: warn",
        "+ team-a allow CVE-2023-4863: reason='no image decoding' expires='2027-01-31'",
        "+ team-a allow GHSA-aaaa-bbbb-cccc: reason='dev dependency only'",
        "6 change(s) in 1 of 1 project(s)"]
    assert dockyard("policy", "apply", str(file)).output.splitlines()[-1] == "applied 6 change(s)"
    assert dockyard("policy", "diff", str(file)).output.splitlines() == [
        f"no changes: 1 project(s) match {file}"]
    listed = as_json(dockyard("allowlist", "list", "team-a", "--json"))
    assert [(e["id"], e["expires"], e["created_by"]) for e in listed] == [
        ("CVE-2023-4863", "2027-01-31", "admin"), ("GHSA-aaaa-bbbb-cccc", None, "admin")]

    file.write_text(POLICY_FILE.replace('secrets = "enforce"', 'secrets = "warn"')
                    .replace('scanned = "warn"\n', ""))
    changes = as_json(dockyard("policy", "apply", str(file), "--json"))
    assert [(c["change"], c["kind"], c["key"], c["old"], c["new"]) for c in changes] == [
        ("change", "admission", "push.secrets", "enforce", "warn"),
        ("remove", "admission", "pull.scanned", "warn", None)]
    file.write_text("[projects.team-a]\n")  # everything goes
    assert len(as_json(dockyard("policy", "apply", str(file), "--json"))) == 5
    assert "has no allow-list entry" in dockyard("allowlist", "list", "team-a").output
    audit = as_json(dockyard("audit", "--project", "team-a", "--action", "policy.*", "--json"))
    assert {e["action"] for e in audit} == {"policy.admission.set", "policy.admission.deleted",
                                            "policy.allowlist.added", "policy.allowlist.deleted"}


@pytest.mark.parametrize(("text", "says"), [
    ("[projects.team-a.push]\nsigned = 'enforce'\n",
     "[projects.team-a]: unknown key 'signed' in push (line 2); allowed: secrets, vulnerabilities, malware, labels"),
    ("[projects.team-a.pull]\nscanned = 'warn'\nvulnerabilities = { mode = 'warn' }\n",
     "[projects.team-a]: pull.vulnerabilities needs severity, one of critical, high, medium, low, unknown: "
     "vulnerabilities = { severity = \"critical\", mode = \"warn\" } (line 3)"),
    ("[projects.team-a.push]\nsecrets = 'refuse'\n",
     "[projects.team-a]: push.secrets.mode must be \"enforce\" or \"warn\", not 'refuse' (line 2)"),
    ("[projects.team-a]\n[[projects.team-a.allow]]\nid = 'CVE-1'\nreason = 'r'\n[[projects.team-a.allow]]\n"
     "id = 'CVE-2'\nreason = 'r'\nexpires = 'whenever'\n",
     "[projects.team-a]: allow #2: expires must be a date such as 2027-01-31 (the entry stops counting at its "
     "start, UTC), or left out for no expiry (line 8)"),
    ("[[projects.team-a.allow]]\nid = 'CVE-1'\nwhy = 'r'\n",
     "[projects.team-a]: unknown key 'why' in allow #1 (line 3); allowed: id, reason, expires"),
    ("[[projects.team-a.allow]]\nid = 'CVE-1'\nreason = 'a'\n[[projects.team-a.allow]]\nid = 'CVE-1'\nreason = 'b'\n",
     "[projects.team-a]: two allow-list entries for 'CVE-1': give each once"),
])
def test_bad_policy_files_name_the_key_and_line(dockyard, tmp_path: Path, text: str,  # type: ignore[no-untyped-def]
                                                says: str) -> None:
    dockyard("project", "add", "team-a")
    file = tmp_path / "bad.toml"
    file.write_text(text)
    assert f"{file}: {says}" in dockyard("policy", "diff", str(file), ok=False).output


def test_allowlist_commands(dockyard) -> None:  # type: ignore[no-untyped-def]
    dockyard("project", "add", "team-a")
    said = dockyard("allowlist", "add", "team-a", "CVE-2023-4863", "--reason", "no image decoding",
                    "--expires", "2027-01-31").output
    assert said.strip() == "allowed CVE-2023-4863 in team-a until 2027-01-31: no image decoding"
    table = dockyard("allowlist", "list", "team-a").output.splitlines()
    assert table[0].split() == ["ID", "REASON", "EXPIRES", "EXPIRED", "CREATED_BY"]
    assert table[1].split()[:1] == ["CVE-2023-4863"]
    assert "expires must be a date" in dockyard("allowlist", "add", "team-a", "CVE-1", "--reason", "r",
                                                "--expires", "later", ok=False).output
    assert dockyard("allowlist", "remove", "team-a", "CVE-2023-4863").output.strip() == (
        "removed CVE-2023-4863 from the allow-list of team-a")
    assert "has no allow-list entry 'CVE-2023-4863'" in dockyard("allowlist", "remove", "team-a", "CVE-2023-4863",
                                                                 ok=False).output


async def push_and_set_rules(tmp_path: Path, database_url: str) -> tuple[Image, Image]:
    async with open_registry(make_config(tmp_path, database_url)) as registry:
        api = registry.client
        assert (await api.post("/api/v1/projects", json={"name": "team-a"})).status_code == 201
        image = labelled_image({"team": "a"})
        await push_image(api, "team-a/app", image, "v1")
        signature = make_artifact(image, "application/vnd.example.sig")
        await push_image(api, "team-a/app", signature)
        put = await api.put("/api/v1/projects/team-a/admission", json={
            "push": {"labels": {"required": [SOURCE, "team"], "mode": "warn"}, "secrets": "enforce"},
            "pull": {"scanned": "enforce", "signed": "warn"}})
        assert put.status_code == 200, put.text
    return image, signature


def test_explain_prints_every_rule_and_why(dockyard, tmp_path: Path,  # type: ignore[no-untyped-def]
                                           database_url: str) -> None:
    image, signature = asyncio.run(push_and_set_rules(tmp_path, database_url))
    assert dockyard("policy", "explain", "localhost:5000/team-a/app:v1").output.splitlines() == [
        f"team-a/app:v1 ({image.digest})",
        f"  push.labels   warn     warn    missing required labels: {SOURCE}",
        "  push.secrets  enforce  refuse  not scanned yet (a push waits for its scan, up to scan.push_timeout)",
        "  pull.scanned  enforce  refuse  not scanned yet; retry shortly",
        "  pull.signed   warn     warn    not signed by a key project team-a trusts (project team-a trusts no key "
        "yet: add one with dockyard key add); sign it with dockyard sign or cosign sign --key"]
    explained = as_json(dockyard("policy", "explain", f"team-a/app@{image.digest}", "--json"))
    assert (explained["digest"], explained["gated"]) == (image.digest, True)
    assert [(v["rule"], v["outcome"]) for v in explained["verdicts"]] == [
        ("push.labels", "warn"), ("push.secrets", "refuse"), ("pull.scanned", "refuse"), ("pull.signed", "warn")]
    artifact = dockyard("policy", "explain", f"team-a/app@{signature.digest}").output.splitlines()
    assert artifact[1] == "  an artifact (signature, SBOM or other non-image manifest): no rule applies"
    assert "team-a/app:v9 not found" in dockyard("policy", "explain", "team-a/app:v9", ok=False).output
