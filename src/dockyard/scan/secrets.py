"""Finding credentials left in an image: in its layers' text files and in its config.

Each rule has a stable id (the ``rule`` of a ``SecretFinding``, what reports and policies name):

    aws-access-key-id      AKIA…/ASIA… followed by 16 of [A-Z2-7]
    aws-secret-access-key  40 base64 characters after ``aws_secret_access_key =`` / ``SecretAccessKey:``
    gcp-service-account    a JSON document with ``"type": "service_account"`` and a ``private_key``
    azure-connection-string  ``AccountKey=``/``SharedAccessKey=`` with a 64- or 32-byte base64 key
    azure-client-secret    ``AZURE_CLIENT_SECRET``/``ARM_CLIENT_SECRET`` = 24+ characters
    private-key            PEM ``-----BEGIN [RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP ]PRIVATE KEY-----``
                           followed by at least 64 characters of base64 body
    github-token           ghp_/gho_/ghu_/ghs_/ghr_ + 36, github_pat_ + 22 + _ + 59
    gitlab-token           glpat-/gldt-/glrt- + 20 or more
    slack-token            xoxb-/xoxp-/xoxa-/xoxr-/xoxs- + digits + 20 or more
    slack-webhook          https://hooks.slack.com/services/T…/B…/…
    npm-token              npm_ + 36
    npmrc-auth             ``//registry…/:_authToken=…``, ``_auth=``, ``_password=`` (16+ token characters)
    pypi-token             pypi-AgEIcHlwaS5vcmc… (and TestPyPI's pypi-AgENdGVzdC5weXBpLm9yZw…)
    netrc-password         ``password X`` in ``.netrc``/``_netrc``
    docker-config-auth     ``auths.*.auth`` (user:password), ``identitytoken``, ``registrytoken``,
                           ``password`` in ``.docker/config.json``, ``containers/auth.json``, ``.dockercfg``
    git-credentials        ``scheme://user:password@host`` lines in ``.git-credentials``
    pgpass-password        the fifth field of ``.pgpass`` lines
    env-secret             ``KEY=VALUE`` in ``.env`` files, the config's Env and assignments in
                           Cmd/Entrypoint/history, when KEY names a password, secret, token or key
    label-secret           a config label whose name does

A value that is an obvious placeholder is never reported (``is_placeholder``): variable references
(``$X``, ``${X}``, ``{{ x }}``), ``<password>``, ``changeme``, runs of one or two characters
(``xxxx…``), and anything containing ``example`` — which includes AWS's documentation key pair
AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY: it is printed in AWS's docs and
shipped in the awscli/botocore documentation and tests of many images, and grants nothing.

Speed: a rule's regular expression runs only on a file that contains one of its literal needles
(``in`` on the decoded text, or on its lower-cased copy for the case-insensitive rules), so most
files cost a few substring searches. Binaries (a NUL byte in the first 8 KiB, or not UTF-8) and
files over the size limit are counted and skipped. Every pattern is linear in the text (possessive
quantifiers where a pattern could otherwise backtrack), since the layers come from whoever pushes.

The secret itself never leaves this module: a finding keeps ``report.mask`` of it (at most its
first four characters), and nothing here logs or raises with file contents.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import logging
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.scan.layers import History, LayerFile
from dockyard.scan.report import SecretFinding, mask

log = logging.getLogger(__name__)

BINARY_SNIFF_BYTES = 8192
# A file full of keys (a test vector, a crafted layer) reports this many: enough to act on, and
# the search of one file stays linear in its size.
MAX_FINDINGS_PER_TEXT = 100

# (where the finding starts: its line is reported, secret start, secret end, secret)
Match = tuple[int, int, int, str]
Finder = Callable[[str], Iterator[Match]]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    needles: tuple[str, ...]  # the file must contain one of these before ``find`` runs
    find: Finder
    folded: bool = False  # needles are lower-case and searched in the lower-cased text


@dataclass(frozen=True, slots=True)
class _Hit:
    rule: str
    at: int
    start: int
    end: int
    secret: str


# ---- placeholders ----------------------------------------------------------------------------

_PLACEHOLDER_WORDS = frozenset({
    "password", "passwd", "pass", "secret", "token", "changeme", "none", "null", "nil", "undefined",
    "true", "false", "yes", "no", "on", "off", "test", "testing", "dummy", "fake", "sample", "default",
    "redacted", "hidden", "masked", "empty", "todo", "fixme", "unset", "required", "optional",
})
_PLACEHOLDER_PARTS = (
    "changeme", "change_me", "change-me", "changethis", "example", "placeholder", "xxxx", "****", "....",
    "${", "{{", "$(", "%(", "your_", "your-", "yourpass", "yoursecret", "replace_me", "replaceme",
    "insert_", "dummy", "redacted", "mytoken", "mysecret", "mypassword", "%s",
)
# Published keys that open nothing: the Azure storage emulator's (Azurite's) account key.
_PUBLIC_KEYS = frozenset({
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
})


def is_placeholder(value: str) -> bool:
    """Whether ``value`` is obviously not a real secret (documented, templated or filler)."""
    v = value.strip().strip("\"'").lower()
    if not v or v in _PLACEHOLDER_WORDS or v.startswith("$") or value.strip() in _PUBLIC_KEYS:
        return True
    if v[0] + v[-1] in ("<>", "{}", "[]", "()"):  # a template's slot: "<password>", "{password}", "[TOKEN]"
        return True
    if len(set(v.replace("-", "").replace("_", ""))) <= 2:  # "xxxxxxxx", "00000000", "abababab"
        return True
    head = v[:96]  # a long random body (a PEM key) could contain "xxxx" by chance; its start won't
    return any(part in head for part in _PLACEHOLDER_PARTS)


# ---- rules that apply to any text --------------------------------------------------------------

def _regex(pattern: str, flags: int = 0, *, group: int = 1) -> Finder:
    compiled = re.compile(pattern, flags)

    def find(text: str) -> Iterator[Match]:
        for m in compiled.finditer(text):
            yield m.start(), m.start(group), m.end(group), m.group(group)
    return find


_B64 = "A-Za-z0-9+/"
_PEM = re.compile(
    r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[ \t\r\n]|\\[rn])++"
    # PEM/PGP headers (Proc-Type, DEK-Info, Version), each with the blank space after it
    r"(?:[A-Za-z][A-Za-z0-9-]*+:[^\r\n\\]*+(?:\r?\n|\\r?\\n)(?:[ \t\r\n]|\\[rn])*+)*+"
    rf"([{_B64}=]{{16}}(?:[{_B64}=]|[ \t\r\n]|\\[rn]){{48,}}+)")
_GCP_TYPE = re.compile(r'"type"\s*:\s*"service_account"')
_GCP_KEY = re.compile(r'"private_key"\s*+:\s*+"-----BEGIN (?:[A-Z]{1,16} )?PRIVATE KEY-----(?:\\n|\s)*+'
                      rf'([{_B64}=][^"]{{63,}}+)"')


def _private_keys(text: str) -> Iterator[Match]:
    for m in _PEM.finditer(text):
        body = m.group(1)
        yield m.start(), m.start(1), m.end(1), body.rstrip()


def _gcp_service_account(text: str) -> Iterator[Match]:
    if _GCP_TYPE.search(text) is None:
        return
    for m in _GCP_KEY.finditer(text):
        yield m.start(), m.start(1), m.end(1), m.group(1)


def _boundary(body: str) -> str:
    """``body`` not glued to more token characters on either side."""
    return rf"(?<![A-Za-z0-9_-])({body})(?![A-Za-z0-9_-])"


TEXT_RULES: tuple[Rule, ...] = (
    Rule("gcp-service-account", ("service_account",), _gcp_service_account),
    Rule("private-key", ("PRIVATE KEY",), _private_keys),
    Rule("aws-access-key-id", ("AKIA", "ASIA"),
         _regex(r"(?<![A-Za-z0-9])((?:AKIA|ASIA)[A-Z2-7]{16})(?![A-Za-z0-9])")),
    Rule("aws-secret-access-key", ("secret_access_key", "secretaccesskey"),
         _regex(rf"secret_?access_?key[\"']?\s*+[:=]\s*+[\"']?([{_B64}]{{40}})(?![{_B64}=])", re.I), folded=True),
    Rule("azure-connection-string", ("AccountKey", "SharedAccessKey"),
         _regex(rf"(?:AccountKey|SharedAccessKey)\s*+=\s*+([{_B64}]{{86}}==|[{_B64}]{{43}}=)(?![{_B64}=])")),
    Rule("azure-client-secret", ("_client_secret",),
         _regex(r"(?:AZURE|ARM)_CLIENT_SECRET[\"']?\s*+[:=]\s*+[\"']?([A-Za-z0-9_~.+/=-]{24,}+)", re.I), folded=True),
    Rule("github-token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
         _regex(_boundary(r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}"))),
    Rule("gitlab-token", ("glpat-", "gldt-", "glrt-"),
         _regex(_boundary(r"(?:glpat|gldt|glrt)-[A-Za-z0-9_-]{20,}+(?:\.[A-Za-z0-9_-]++)*+"))),
    Rule("slack-token", ("xox",),
         _regex(_boundary(r"xox[bpars]-[0-9]++-[0-9A-Za-z-]{20,}+"))),
    Rule("slack-webhook", ("hooks.slack.com",),
         _regex(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/(T[A-Z0-9]{6,}+/[A-Za-z0-9/]{20,}+)")),
    Rule("npm-token", ("npm_",), _regex(_boundary(r"npm_[A-Za-z0-9]{36}"))),
    Rule("npmrc-auth", ("_auth", "_password"),
         _regex(r"(?:^|:)(?:_authToken|_auth|_password)[ \t]*+=[ \t]*+[\"']?([A-Za-z0-9+/=._~-]{16,}+)(?![^\s\"'])",
                re.M)),
    Rule("pypi-token", ("pypi-AgE",),
         _regex(_boundary(r"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,}+"))),
)


# ---- well-known credential files -------------------------------------------------------------

_NETRC = _regex(r"(?<!\S)password[ \t\r\n]++(\S++)")  # starts at the word: its line is the line reported
_GIT_CREDENTIALS = _regex(r"^[ \t]*+[A-Za-z][A-Za-z0-9+.-]*+://[^:/@\s]*+:([^@\s]++)@\S", re.M)
_DOCKER_FIELDS = ("auth", "identitytoken", "registrytoken", "password")


def _docker_config(text: str) -> Iterator[Match]:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return
    if not isinstance(doc, dict):
        return
    auths = doc.get("auths", doc)  # .dockercfg has the registries at the top
    if not isinstance(auths, dict):
        return
    for entry in auths.values():
        if not isinstance(entry, dict):
            continue
        for name in _DOCKER_FIELDS:
            value = entry.get(name)
            if not isinstance(value, str) or not value or (name == "auth" and not _basic_auth_password(value)):
                continue
            start = text.find(f'"{value}"') + 1
            yield start, start, start + len(value), value


def _basic_auth_password(value: str) -> bool:
    """Whether a docker ``auth`` (base64 of ``user:password``) holds a non-placeholder password."""
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    _, sep, password = decoded.partition(":")
    return bool(sep) and not is_placeholder(password)


def _pgpass(text: str) -> Iterator[Match]:
    offset = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if body.strip() and not body.lstrip().startswith("#"):
            colons = [i for i, c in enumerate(body) if c == ":" and not _escaped(body, i)]
            if len(colons) >= 4 and colons[3] + 1 < len(body):
                start = offset + colons[3] + 1
                yield offset, start, offset + len(body), body[colons[3] + 1:].replace("\\:", ":")
        offset += len(line)


def _escaped(text: str, i: int) -> bool:
    backslashes = 0
    while i - backslashes > 0 and text[i - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


_ENV_LINE = re.compile(r"^[ \t]*+(?:export[ \t]++)?([A-Za-z_][A-Za-z0-9_.-]*+)[ \t]*+=[ \t]*+([^\r\n]*+)", re.M)


def _env_file(text: str) -> Iterator[Match]:
    for m in _ENV_LINE.finditer(text):
        if is_secret_name(m.group(1)):
            value, shift = _unquoted(m.group(2))
            if _looks_like_value(value):
                yield m.start(), m.start(2) + shift, m.start(2) + shift + len(value), value


def _unquoted(raw: str) -> tuple[str, int]:
    """A shell/dotenv value without its quotes or trailing comment, and where it starts in ``raw``."""
    raw = raw.rstrip()
    if raw[:1] in ("'", '"') and raw.find(raw[0], 1) > 0:
        return raw[1:raw.find(raw[0], 1)], 1
    return raw.split(" #", 1)[0].rstrip(), 0


FILE_RULES: dict[str, tuple[Rule, ...]] = {
    "netrc": (Rule("netrc-password", ("password",), _NETRC),),
    "docker-config": (Rule("docker-config-auth", ('"',), _docker_config),),
    "git-credentials": (Rule("git-credentials", ("@",), _GIT_CREDENTIALS),),
    "pgpass": (Rule("pgpass-password", (":",), _pgpass),),
    "env": (Rule("env-secret", ("=",), _env_file),),
}
_ENV_TEMPLATES = frozenset({".env.example", ".env.sample", ".env.template", ".env.dist", ".env.defaults"})


def file_kind(path: str) -> str | None:
    """Which well-known credential file ``path`` is (a key of ``FILE_RULES``), if any."""
    name = posixpath.basename(path)
    if name in (".netrc", "_netrc"):
        return "netrc"
    if name == ".git-credentials" or path.endswith(".config/git/credentials"):
        return "git-credentials"
    if name in (".pgpass", "pgpass.conf"):
        return "pgpass"
    if name == ".dockercfg" or path.endswith((".docker/config.json", "containers/auth.json")):
        return "docker-config"
    if name == ".env" or (name.startswith(".env.") and name not in _ENV_TEMPLATES):
        return "env"
    return None


# ---- names that say "secret" -------------------------------------------------------------------

_SECRET_WORDS = frozenset({
    "password", "passwd", "pass", "pwd", "passphrase", "secret", "secrets", "token", "apikey", "credential",
    "credentials", "secretkey", "accesskey", "privatekey", "authtoken", "clientsecret",
})
_SECRET_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"), ("auth", "token"),
                           ("signing", "key"), ("encryption", "key"), ("master", "key")})
# A name ending in one of these holds something about the secret, not the secret: DB_PASSWORD_FILE.
_NOT_SECRET_SUFFIXES = frozenset({
    "file", "path", "dir", "url", "uri", "endpoint", "name", "user", "username", "type", "length", "len",
    "ttl", "expiry", "expires", "expiration", "timeout", "id", "header", "field", "env", "var", "mode",
    "policy", "min", "max", "count", "size", "prefix", "suffix", "algorithm", "method", "enabled", "enable",
    "required", "host", "port", "days", "age", "format", "version", "store", "command", "cmd",
})
_SECRET_ENDINGS = ("password", "passwd", "secret", "token", "apikey")  # PGPASSWORD, BEARERTOKEN
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def is_secret_name(name: str) -> bool:
    """Whether a variable or label name says it holds a password, secret, token or key."""
    words = [w.lower() for w in _WORD.findall(name)]
    if not words or words[-1] in _NOT_SECRET_SUFFIXES:
        return False
    return (any(w in _SECRET_WORDS or w.endswith(_SECRET_ENDINGS) for w in words)
            or any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words)))


def _looks_like_value(value: str) -> bool:
    """A non-empty value that is not a placeholder, a short number or a path."""
    if is_placeholder(value) or (value.isdigit() and len(value) < 8):
        return False
    return re.fullmatch(r"\.?/[\w.-]+(?:/[\w.-]+)+", value) is None


# ---- searching one text ------------------------------------------------------------------------

def _search(text: str, rules: Sequence[Rule]) -> list[_Hit]:
    """Every rule's hits in ``text``, without placeholders and without a second rule's hit on the
    same characters (rules are ordered most specific first)."""
    hits: list[_Hit] = []
    lowered: str | None = None
    for rule in rules:
        if rule.folded:
            lowered = text.lower() if lowered is None else lowered
            haystack = lowered
        else:
            haystack = text
        if not any(needle in haystack for needle in rule.needles):
            continue
        for at, start, end, secret in rule.find(text):
            if is_placeholder(secret) or any(h.start < end and start < h.end for h in hits):
                continue
            hits.append(_Hit(rule.id, at, start, end, secret))
            if len(hits) >= MAX_FINDINGS_PER_TEXT:
                return hits
    return hits


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


@dataclass(frozen=True, slots=True)
class _Found:
    index: int
    layer: str
    path: str
    rule: str
    line: int
    masked: str


class SecretVisitor:
    """A ``layers.Visitor`` that searches every text file up to ``max_file_bytes`` for credentials."""

    def __init__(self, max_file_bytes: int) -> None:
        self.max_file_bytes = max_file_bytes
        self.files_scanned = 0
        self.skipped_large = 0
        self.skipped_binary = 0
        self._found: list[_Found] = []

    def wants(self, entry: LayerFile) -> int:
        if entry.size > self.max_file_bytes:
            self.skipped_large += 1
            return 0
        if entry.size == 0:
            self.files_scanned += 1
            return 0
        return entry.size

    def visit(self, entry: LayerFile, data: bytes) -> None:
        if b"\0" in data[:BINARY_SNIFF_BYTES]:
            self.skipped_binary += 1
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self.skipped_binary += 1
            return
        self.files_scanned += 1
        kind = file_kind(entry.path)
        rules = TEXT_RULES + FILE_RULES[kind] if kind else TEXT_RULES
        for hit in _search(text, rules):
            self._found.append(_Found(entry.index, entry.layer, entry.path, hit.rule, _line(text, hit.at),
                                      mask(hit.secret)))

    def findings(self, history: History) -> list[SecretFinding]:
        """What was found, each marked ``removed`` when the image's final filesystem no longer has
        that file (a later layer deleted or replaced it) though its layer still holds it."""
        log.debug("secret scan: %d files searched, %d binary and %d large skipped, %d findings",
                  self.files_scanned, self.skipped_binary, self.skipped_large, len(self._found))
        return [SecretFinding(f.layer, f.path, f.rule, f.line, f.masked, removed=not history.present(f.index, f.path))
                for f in sorted(self._found, key=lambda f: (f.index, f.path, f.line, f.rule))]


# ---- the image config --------------------------------------------------------------------------

_ASSIGNMENT = re.compile(r"(?<![\w.])(?:--?)?([A-Za-z_][A-Za-z0-9_.-]*+)="
                         r"(\"(?:[^\"\\]|\\.)*+\"|'[^']*+'|[^\s\"';&|)]++)")


def _assignments(text: str) -> Iterator[Match]:
    """``NAME=value`` and ``--name=value`` with a secret-looking name, anywhere in a command line."""
    for m in _ASSIGNMENT.finditer(text):
        if is_secret_name(m.group(1)):
            value, shift = _unquoted(m.group(2))
            if _looks_like_value(value):
                yield m.start(), m.start(2) + shift, m.start(2) + shift + len(value), value


def _pair(rule_id: str) -> Rule:
    def find(text: str) -> Iterator[Match]:
        name, sep, value = text.partition("=")
        if sep and is_secret_name(name) and _looks_like_value(value.strip()):
            yield 0, len(name) + 1, len(text), value.strip()
    return Rule(rule_id, ("",), find)


_ENV_RULES = (*TEXT_RULES, _pair("env-secret"))
_LABEL_RULES = (*TEXT_RULES, _pair("label-secret"))
_COMMAND_RULES = (*TEXT_RULES, Rule("env-secret", ("=",), _assignments))


def config_secrets(config: Mapping[str, Any], config_digest: str) -> list[SecretFinding]:
    """Credentials in an image config: Env, Labels, Cmd, Entrypoint and history ``created_by``
    (``line`` is the entry's 1-based index in its list)."""
    body = config.get("config")
    body = body if isinstance(body, Mapping) else {}
    labels = body.get("Labels")
    history = config.get("history")
    sources: list[tuple[str, Sequence[Rule], list[str]]] = [
        ("config:Env", _ENV_RULES, _strings(body.get("Env"))),
        ("config:Labels", _LABEL_RULES,
         [f"{k}={v}" for k, v in labels.items() if isinstance(v, str)] if isinstance(labels, Mapping) else []),
        ("config:Cmd", _COMMAND_RULES, _strings(body.get("Cmd"))),
        ("config:Entrypoint", _COMMAND_RULES, _strings(body.get("Entrypoint"))),
        ("config:history", _COMMAND_RULES,
         [h.get("created_by", "") if isinstance(h, Mapping) else "" for h in history]
         if isinstance(history, list) else []),
    ]
    found = []
    for path, rules, entries in sources:
        for index, entry in enumerate(entries, start=1):
            for hit in _search(entry if isinstance(entry, str) else "", rules):
                found.append(SecretFinding(config_digest, path, hit.rule, index, mask(hit.secret)))
    return found


def _strings(value: object) -> list[str]:
    return [v if isinstance(v, str) else "" for v in value] if isinstance(value, list) else []
