"""Policies as data: the declarative policy file and the diff between it and the database.

The file is TOML; each ``[projects.NAME]`` table is the whole policy of that project::

    [projects.team-a]
    quota = "10GiB"                        # or a number of bytes, or "none"
    naming = { repository = '^(api|web)(/[a-z0-9-]+)?$', tag = '^v\\d+\\.\\d+\\.\\d+$' }

    [[projects.team-a.retention]]          # one table per repository glob
    repository = "*"
    keep_last = 10
    untagged_days = 7
    schedule = "0 3 * * *"

    [[projects.team-a.immutable]]
    repository = "*"
    tag = "v*"

    [projects.team-a.push]                 # admission rules (policy/admission.py), each enforce or warn
    secrets = "enforce"
    vulnerabilities = { severity = "critical", mode = "enforce" }
    malware = "warn"
    labels = { required = ["org.opencontainers.image.source"], mode = "enforce" }

    [projects.team-a.pull]
    signed = "enforce"
    scanned = "warn"

    [[projects.team-a.allow]]              # the vulnerability allow-list: an id or alias each
    id = "CVE-2023-4863"
    reason = "not reachable: no image decoding"
    expires = 2027-01-31                   # a date (a string works too); the entry stops counting then

A project in the file is made to match it exactly (a key left out means "none": no quota, no
naming rule, no retention policy, no immutable rule, no push or pull rule, an empty allow-list);
projects not in the file are left alone.
Parsing checks every value as the API does (``policy/values.py``); an unknown key is an error that
names it and its line. ``diff`` is pure: the changes that turn one ``ProjectPolicy`` into another.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from dataclasses import dataclass
from typing import Any, Literal

from dockyard.errors import RequestInvalid
from dockyard.policy import admission, values
from dockyard.policy.checks import format_size
from dockyard.store.admission import AdmissionRule, AllowEntry
from dockyard.store.policies import RetentionRules

PROJECT_KEYS = ("quota", "naming", "retention", "immutable", "push", "pull", "allow")
ALLOW_KEYS = ("id", "reason", "expires")
NAMING_KEYS = ("repository", "tag")
IMMUTABLE_KEYS = ("repository", "tag")
MAX_FILE_BYTES = 256 * 1024
MAX_LINE = 4096  # a naming table with two patterns of limits.PATTERN fits with room


@dataclass(frozen=True, slots=True)
class ProjectPolicy:
    """Everything a project's policy holds, in a canonical order (retention by glob, rules by pattern)."""

    quota: int | None = None
    repository_pattern: str | None = None
    tag_pattern: str | None = None
    retention: tuple[RetentionRules, ...] = ()
    immutable: tuple[tuple[str, str], ...] = ()  # (repository glob, tag glob)
    admission: tuple[AdmissionRule, ...] = ()  # push and pull rules, by stage then check
    allow: tuple[AllowEntry, ...] = ()  # the vulnerability allow-list, by id


Sign = Literal["+", "-", "~"]


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """One line of a diff: ``+`` added, ``-`` removed, ``~`` changed."""

    project: str
    sign: Sign
    kind: Literal["quota", "naming.repository", "naming.tag", "retention", "immutable", "admission", "allow"]
    key: str | None  # the retention policy's repository glob; the immutable rule as "REPO:TAG"; the
    # admission rule as "STAGE.CHECK"; the allow-list entry's vulnerability id
    old: Any
    new: Any

    def line(self) -> str:
        if self.kind in ("admission", "allow"):
            return self._entry_line()
        where = f"{self.project} {self.kind}" + (f" {_quote(self.key)}" if self.key is not None else "")
        if self.kind == "quota":
            return f"{self.sign} {where}: {_size(self.old)} -> {_size(self.new)}"
        if self.kind == "retention":
            if self.sign == "~":
                changed = [f"{k} {_text(self.old[k])} -> {_text(self.new[k])}" for k in self.new
                           if self.old[k] != self.new[k]]
                return f"~ {where}: {', '.join(changed)}"
            shown = self.new if self.sign == "+" else self.old
            rules = " ".join(f"{k}={_text(v)}" for k, v in shown.items()
                             if k != "repository" and v is not None and v is not False)
            return f"{self.sign} {where}: {rules}" + (" (not in the file)" if self.sign == "-" else "")
        if self.sign == "+":
            return f"+ {where}" + ("" if self.kind == "immutable" else f": {_text(self.new)}")
        if self.sign == "-":
            return f"- {where}" + ("" if self.kind == "immutable" else f": {_text(self.old)}") + " (not in the file)"
        return f"~ {where}: {_text(self.old)} -> {_text(self.new)}"

    def _entry_line(self) -> str:
        where = f"{self.project} {self.key}" if self.kind == "admission" else f"{self.project} allow {self.key}"
        if self.sign == "~":
            return f"~ {where}: {_entry_text(self.old)} -> {_entry_text(self.new)}"
        shown = self.new if self.sign == "+" else self.old
        return f"{self.sign} {where}: {_entry_text(shown)}" + (" (not in the file)" if self.sign == "-" else "")

    def as_dict(self) -> dict[str, Any]:
        return {"project": self.project, "change": {"+": "add", "-": "remove", "~": "change"}[self.sign],
                "kind": self.kind, "key": self.key, "old": self.old, "new": self.new}


def _size(size: int | None) -> str:
    return "none" if size is None else f"{format_size(size)} ({size} bytes)"


def _text(value: object) -> str:
    return "none" if value is None else _quote(value) if isinstance(value, str) else str(value).lower()


def _entry_text(view: object) -> str:
    """An admission rule or allow-list entry as one line: ``enforce``, ``severity='high' mode='warn'``."""
    if not isinstance(view, dict):
        return str(view)
    parts = []
    for key, value in view.items():
        if key == "id" or value is None:
            continue
        shown = "[" + ", ".join(_quote(v) for v in value) + "]" if isinstance(value, list) else _text(value)
        parts.append(f"{key}={shown}")
    return " ".join(parts)


def _quote(text: str) -> str:
    """A string as TOML writes it: a literal string ('^v\\d+', backslashes as they are) when it can be."""
    return f"'{text}'" if "'" not in text and text.isprintable() else json.dumps(text)


def diff(project: str, current: ProjectPolicy, desired: ProjectPolicy) -> list[PolicyChange]:
    """What turns ``current`` into ``desired``: quota, naming, then retention and immutable rules."""
    changes: list[PolicyChange] = []
    for kind, old, new in (("quota", current.quota, desired.quota),
                           ("naming.repository", current.repository_pattern, desired.repository_pattern),
                           ("naming.tag", current.tag_pattern, desired.tag_pattern)):
        if old != new:
            sign: Sign = "+" if old is None else "-" if new is None else "~"
            changes.append(PolicyChange(project, sign, kind, None, old, new))  # type: ignore[arg-type]
    old_rules = {r.repository_glob: r for r in current.retention}
    new_rules = {r.repository_glob: r for r in desired.retention}
    for glob in sorted(old_rules.keys() | new_rules.keys()):
        before, after = old_rules.get(glob), new_rules.get(glob)
        if before != after:
            sign = "+" if before is None else "-" if after is None else "~"
            changes.append(PolicyChange(project, sign, "retention", glob,
                                        None if before is None else values.retention_view(before),
                                        None if after is None else values.retention_view(after)))
    old_immutable, new_immutable = set(current.immutable), set(desired.immutable)
    for repository, tag in sorted(old_immutable ^ new_immutable):
        pair = {"repository": repository, "tag": tag}
        added = (repository, tag) in new_immutable
        changes.append(PolicyChange(project, "+" if added else "-", "immutable", f"{repository}:{tag}",
                                    None if added else pair, pair if added else None))
    changes += _keyed_changes(project, "admission", {r.name: admission.rule_view(r) for r in current.admission},
                              {r.name: admission.rule_view(r) for r in desired.admission})
    changes += _keyed_changes(project, "allow", {e.vulnerability: admission.allow_view(e) for e in current.allow},
                              {e.vulnerability: admission.allow_view(e) for e in desired.allow})
    return changes


def _keyed_changes(project: str, kind: Literal["admission", "allow"], old: dict[str, Any], new: dict[str, Any]
                   ) -> list[PolicyChange]:
    changes = []
    for key in sorted(old.keys() | new.keys(), key=lambda k: (kind == "admission" and k.startswith("pull."), k)):
        before, after = old.get(key), new.get(key)
        if before != after:
            sign: Sign = "+" if before is None else "-" if after is None else "~"
            changes.append(PolicyChange(project, sign, kind, key, before, after))
    return changes


# -- the file ----------------------------------------------------------------------------------


def parse_document(text: str) -> dict[str, ProjectPolicy]:
    """The projects of a policy file and the policy each must have; RequestInvalid names what is wrong."""
    if len(text.encode()) > MAX_FILE_BYTES:
        raise RequestInvalid(f"the policy file is larger than {MAX_FILE_BYTES} bytes")
    lines = text.splitlines()
    # tomllib's memory grows with the square of a dotted key's depth (a.a.a…): bound it by the line.
    long = next((i for i, line in enumerate(lines) if len(line) > MAX_LINE), None)
    if long is not None:
        raise RequestInvalid(f"line {long + 1} of the policy file is longer than {MAX_LINE} characters")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RequestInvalid(f"the policy file is not valid TOML: {exc}") from None
    except RecursionError:
        raise RequestInvalid("the policy file nests arrays or tables too deeply") from None
    _only(document, ("projects",), "the top level", lines, None)
    projects = document.get("projects", {})
    if not isinstance(projects, dict):
        raise RequestInvalid("projects must be a table: [projects.NAME]")
    return {name: _project(name, table, lines) for name, table in projects.items()}


def _project(name: str, table: object, lines: list[str]) -> ProjectPolicy:
    where = f"[projects.{name}]"
    if not isinstance(table, dict):
        raise RequestInvalid(f"projects.{name} must be a table: {where}")
    _only(table, PROJECT_KEYS, where, lines, f"projects.{_quoted(name)}")
    try:
        naming = table.get("naming", {})
        if not isinstance(naming, dict):
            raise RequestInvalid("naming must be a table: naming = { repository = '…', tag = '…' }",
                                 detail={"field": "naming"})
        _only(naming, NAMING_KEYS, "naming", lines, f"projects.{_quoted(name)}")
        retention = [_retention(entry, i, name, lines) for i, entry in enumerate(_tables(table, "retention"))]
        immutable = [_immutable(entry, i, name, lines) for i, entry in enumerate(_tables(table, "immutable"))]
        policy = ProjectPolicy(values.quota(table.get("quota")),
                               values.pattern("naming.repository", naming.get("repository")),
                               values.pattern("naming.tag", naming.get("tag")),
                               tuple(sorted(retention, key=lambda r: r.repository_glob)),
                               tuple(sorted(immutable)))
        _unique([r.repository_glob for r in retention], "retention policies for repository")
        _unique([f"{r}:{t}" for r, t in immutable], "immutable rules")
        rules = _admission(table, name, lines)
        allow = [_allow(entry, i, name, lines) for i, entry in enumerate(_tables(table, "allow"))]
        _unique([e.vulnerability for e in allow], "allow-list entries for")
        policy = dataclasses.replace(policy, admission=rules,
                                     allow=tuple(sorted(allow, key=lambda e: e.vulnerability)))
    except RequestInvalid as exc:
        raise RequestInvalid(f"{where}: {exc.message}", detail=exc.detail) from None
    return policy


def _tables(table: dict[str, Any], key: str) -> list[dict[str, Any]]:
    found = table.get(key, [])
    if not isinstance(found, list) or not all(isinstance(entry, dict) for entry in found):
        raise RequestInvalid(f"{key} must be an array of tables: [[projects.NAME.{key}]]", detail={"field": key})
    return found


def _retention(entry: dict[str, Any], index: int, project: str, lines: list[str]) -> RetentionRules:
    _only(entry, values.RETENTION_FIELDS, f"retention #{index + 1}", lines,
          f"projects.{_quoted(project)}.retention", index)
    return values.retention_rules(entry)


def _immutable(entry: dict[str, Any], index: int, project: str, lines: list[str]) -> tuple[str, str]:
    _only(entry, IMMUTABLE_KEYS, f"immutable #{index + 1}", lines, f"projects.{_quoted(project)}.immutable", index)
    if "tag" not in entry:
        raise RequestInvalid(f"immutable #{index + 1} needs tag, a glob such as 'v*'", detail={"field": "tag"})
    return values.glob("repository", entry.get("repository", "*")), values.glob("tag", entry["tag"])


def _admission(table: dict[str, Any], project: str, lines: list[str]) -> tuple[AdmissionRule, ...]:
    rules: list[AdmissionRule] = []
    for stage in admission.STAGES:
        header = f"projects.{_quoted(project)}.{stage}"
        stage_table = table.get(stage)
        if isinstance(stage_table, dict):
            _only(stage_table, admission.CHECKS[stage], stage, lines, header)
        try:
            rules += admission.parse_rules(stage, stage_table)
        except RequestInvalid as exc:
            field = str((exc.detail or {}).get("field", stage))
            line = _line_of(field.split(".")[1] if "." in field else stage, lines, header, 0)
            raise RequestInvalid(exc.message + (f" (line {line})" if line else ""), detail=exc.detail) from None
    return tuple(rules)


def _allow(entry: dict[str, Any], index: int, project: str, lines: list[str]) -> AllowEntry:
    header = f"projects.{_quoted(project)}.allow"
    _only(entry, ALLOW_KEYS, f"allow #{index + 1}", lines, header, index)
    try:
        return admission.allow_entry(entry)
    except RequestInvalid as exc:
        field = str((exc.detail or {}).get("field", "id"))
        line = _line_of(field, lines, header, index) if field in entry else None
        raise RequestInvalid(f"allow #{index + 1}: {exc.message}" + (f" (line {line})" if line else ""),
                             detail=exc.detail) from None


def _unique(keys: list[str], what: str) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise RequestInvalid(f"two {what} {key!r}: give each once")
        seen.add(key)


def _only(table: dict[str, Any], allowed: tuple[str, ...], where: str, lines: list[str], header: str | None,
          index: int = 0) -> None:
    """Refuse a key that is not in ``allowed``, naming it and, when it can be found, its line."""
    for key in table:
        if key not in allowed:
            line = _line_of(key, lines, header, index)
            at = f" (line {line})" if line else ""
            raise RequestInvalid(f"unknown key {key!r} in {where}{at}; allowed: {', '.join(allowed)}",
                                 detail={"field": key})


def _quoted(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


def _line_of(key: str, lines: list[str], header: str | None, index: int) -> int | None:
    """The line where ``key = …`` is set after the ``index``-th header ``header`` (best effort:
    TOML parsers give no positions for valid documents)."""
    start = 0
    if header is not None:
        heading = re.compile(rf"^\s*\[\[?\s*{re.escape(header)}\s*\]\]?\s*(#.*)?$")
        found = [i for i, text in enumerate(lines) if heading.match(text)]
        if len(found) > index:
            start = found[index]
    setting = re.compile(rf"(^|[{{,\s]){re.escape(key)}\s*=|(^|[{{,\s])[\"']{re.escape(key)}[\"']\s*=")
    for i in range(start, len(lines)):
        if setting.search(lines[i]):
            return i + 1
    return None
