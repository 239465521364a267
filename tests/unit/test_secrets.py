"""Secret detection: every rule on realistic but invalid credentials, near-misses, masking, skipping,
whiteouts and the image config. Every credential here is generated at test time (random tokens of
the right shape, throwaway keys from ``cryptography``): none was ever issued."""

from __future__ import annotations

import base64
import functools
import io
import json
import logging
import random
import string
import tarfile
import uuid
from collections.abc import Mapping

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from dockyard.scan.layers import Layer, walk
from dockyard.scan.report import Findings, SecretFinding, mask
from dockyard.scan.secrets import SecretVisitor, config_secrets, is_placeholder, is_secret_name

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
_random = random.Random(20261206)


def rand(n: int, chars: str = ALNUM) -> str:
    return "".join(_random.choice(chars) for _ in range(n))


def b64(nbytes: int) -> str:
    return base64.b64encode(_random.randbytes(nbytes)).decode()


def tar_layer(digest: str, files: Mapping[str, bytes | str]) -> Layer:
    """An uncompressed layer holding ``files`` (``dir/.wh.x`` whites out ``dir/x``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    blob = buffer.getvalue()
    return Layer(digest, "application/vnd.oci.image.layer.v1.tar", lambda: io.BytesIO(blob))


def scan(files: Mapping[str, bytes | str], max_file_bytes: int = 1 << 20) -> list[SecretFinding]:
    visitor = SecretVisitor(max_file_bytes)
    return visitor.findings(walk([tar_layer("sha256:l0", files)], [visitor]))


def found(path: str, content: str) -> list[tuple[str, int, str]]:
    """(rule, line, masked) of each finding in one file."""
    return [(f.rule, f.line, f.masked) for f in scan({path: content})]


# ---- realistic shapes ------------------------------------------------------------------------

AWS_KEY_ID = "AKIA" + rand(16, string.ascii_uppercase + "234567")
AWS_SESSION_KEY_ID = "ASIA" + rand(16, string.ascii_uppercase + "234567")
AWS_SECRET = rand(40, B64)
AZURE_STORAGE_KEY = b64(64)
AZURE_BUS_KEY = b64(32)
AZURE_CLIENT_SECRET = rand(3) + "8Q~" + rand(34, ALNUM + "_~.-")
GITHUB_TOKENS = [prefix + rand(36) for prefix in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")]
GITHUB_PAT = f"github_pat_{rand(22)}_{rand(59)}"
GITLAB_TOKEN = "glpat-" + rand(20, ALNUM + "_-")
SLACK_BOT = f"xoxb-{rand(13, string.digits)}-{rand(13, string.digits)}-{rand(24)}"
DIGITS, UPPER_ALNUM = string.digits, string.ascii_uppercase + string.digits
SLACK_USER = f"xoxp-{rand(10, DIGITS)}-{rand(10, DIGITS)}-{rand(13, DIGITS)}-{rand(32, '0123456789abcdef')}"
SLACK_HOOK = f"T{rand(8, UPPER_ALNUM)}/B{rand(10, UPPER_ALNUM)}/{rand(24)}"
NPM_TOKEN = "npm_" + rand(36)
NPM_UUID = str(uuid.UUID(int=_random.getrandbits(128)))
PYPI_TOKEN = "pypi-AgEIcHlwaS5vcmc" + rand(150, ALNUM + "_-")
PASSWORD = rand(6) + "-" + rand(10, ALNUM + "!%^&*")


@functools.cache
def pem(kind: str) -> str:
    """A throwaway private key, serialised the way ``kind`` names."""
    enc = serialization.Encoding.PEM
    none = serialization.NoEncryption()
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        return key.private_bytes(enc, serialization.PrivateFormat.TraditionalOpenSSL, none).decode()
    if kind == "rsa-legacy-encrypted":
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        return key.private_bytes(enc, serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.BestAvailableEncryption(b"throwaway")).decode()
    if kind == "pkcs8":
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        return key.private_bytes(enc, serialization.PrivateFormat.PKCS8, none).decode()
    if kind == "pkcs8-encrypted":
        key = ec.generate_private_key(ec.SECP256R1())
        return key.private_bytes(enc, serialization.PrivateFormat.PKCS8,
                                 serialization.BestAvailableEncryption(b"throwaway")).decode()
    if kind == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
        return key.private_bytes(enc, serialization.PrivateFormat.TraditionalOpenSSL, none).decode()
    if kind == "dsa":  # cryptography deprecates DSA key generation: the shape is what matters here
        return pem("rsa").replace("RSA PRIVATE KEY", "DSA PRIVATE KEY")
    if kind == "openssh":
        key = ed25519.Ed25519PrivateKey.generate()
        return key.private_bytes(enc, serialization.PrivateFormat.OpenSSH, none).decode()
    raise AssertionError(kind)


def pem_body(text: str) -> str:
    """The first line of a PEM's base64 body (after the BEGIN line and any headers)."""
    lines = [line for line in text.splitlines()[1:] if line and ":" not in line]
    return lines[0]


def gcp_service_account(key: str) -> str:
    return json.dumps({
        "type": "service_account", "project_id": "dockyard-test", "private_key_id": rand(40, "0123456789abcdef"),
        "private_key": key, "client_email": "scanner@dockyard-test.iam.gserviceaccount.com",
        "client_id": rand(21, string.digits), "token_uri": "https://oauth2.googleapis.com/token",
    }, indent=2)


# ---- each rule -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "content", "expected"), [
    ("app/settings.py", f'KEY_ID = "{AWS_KEY_ID}"\n', [("aws-access-key-id", 1, mask(AWS_KEY_ID))]),
    ("app/sts.json", f'{{\n  "AccessKeyId": "{AWS_SESSION_KEY_ID}"\n}}',
     [("aws-access-key-id", 2, mask(AWS_SESSION_KEY_ID))]),
    ("root/.aws/credentials", f"[default]\naws_access_key_id = {AWS_KEY_ID}\naws_secret_access_key = {AWS_SECRET}\n",
     [("aws-access-key-id", 2, mask(AWS_KEY_ID)), ("aws-secret-access-key", 3, mask(AWS_SECRET))]),
    ("etc/profile.d/aws.sh", f"export AWS_SECRET_ACCESS_KEY='{AWS_SECRET}'\n",
     [("aws-secret-access-key", 1, mask(AWS_SECRET))]),
    ("app/creds.json", f'{{"SecretAccessKey": "{AWS_SECRET}"}}', [("aws-secret-access-key", 1, mask(AWS_SECRET))]),
    ("app/storage.conf", f"conn=DefaultEndpointsProtocol=https;AccountName=dockyardtest;AccountKey={AZURE_STORAGE_KEY};"
     "EndpointSuffix=core.windows.net\n", [("azure-connection-string", 1, mask(AZURE_STORAGE_KEY))]),
    ("app/bus.conf", f"Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={AZURE_BUS_KEY}",
     [("azure-connection-string", 1, mask(AZURE_BUS_KEY))]),
    ("app/deploy.sh", f"#!/bin/sh\nexport AZURE_CLIENT_SECRET={AZURE_CLIENT_SECRET}\n",
     [("azure-client-secret", 2, mask(AZURE_CLIENT_SECRET))]),
    ("app/tf.yaml", f"env:\n  arm_client_secret: \"{AZURE_CLIENT_SECRET}\"\n",
     [("azure-client-secret", 2, mask(AZURE_CLIENT_SECRET))]),
    *[(f"app/gh{i}.txt", f"token: {token}\n", [("github-token", 1, mask(token))])
      for i, token in enumerate([*GITHUB_TOKENS, GITHUB_PAT])],
    ("app/.gitlab.yml", f"variables:\n  GL: {GITLAB_TOKEN}\n", [("gitlab-token", 2, mask(GITLAB_TOKEN))]),
    ("app/slack.py", f'BOT = "{SLACK_BOT}"\nUSER = "{SLACK_USER}"\n',
     [("slack-token", 1, mask(SLACK_BOT)), ("slack-token", 2, mask(SLACK_USER))]),
    ("app/notify.sh", f"curl -X POST https://hooks.slack.com/services/{SLACK_HOOK} -d @msg.json\n",
     [("slack-webhook", 1, mask(SLACK_HOOK))]),
    ("root/.npmrc", f"registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken={NPM_TOKEN}\n",
     [("npm-token", 2, mask(NPM_TOKEN))]),
    ("home/ci/.npmrc", f"//npm.internal.example:8080/repo/:_authToken={NPM_UUID}\nalways-auth=true\n",
     [("npmrc-auth", 1, mask(NPM_UUID))]),
    ("home/ci/.npmrc.old", f"_auth = {b64(24)}\n", [("npmrc-auth", 1, "****")]),
    ("root/.pypirc", f"[pypi]\nusername = __token__\npassword = {PYPI_TOKEN}\n", [("pypi-token", 3, mask(PYPI_TOKEN))]),
])
def test_each_token_rule_finds_its_shape(path: str, content: str, expected: list[tuple[str, int, str]]) -> None:
    result = found(path, content)
    if expected[0][2] == "****":  # a value generated in the parameter list: compare all but the masked text
        assert [(r, n) for r, n, _ in result] == [(r, n) for r, n, _ in expected]
    else:
        assert result == expected


@pytest.mark.parametrize("kind", ["rsa", "rsa-legacy-encrypted", "pkcs8", "pkcs8-encrypted", "ec", "dsa", "openssh"])
def test_private_keys_of_every_kind(kind: str) -> None:
    key = pem(kind)
    content = f"# deploy key\n\n{key}"
    assert found("root/.ssh/id_deploy", content) == [("private-key", 3, mask(pem_body(key)))]


def test_a_private_key_escaped_inside_a_json_or_yaml_string() -> None:
    key = pem("pkcs8")
    content = json.dumps({"tls": {"key": key}})
    assert found("app/config.json", content) == [("private-key", 1, mask(pem_body(key)))]


def test_gcp_service_account_is_one_finding_not_two() -> None:
    key = pem("pkcs8")
    content = gcp_service_account(key)
    line = content.splitlines().index(next(x for x in content.splitlines() if '"private_key"' in x)) + 1
    assert found("app/sa.json", content) == [("gcp-service-account", line, mask(pem_body(key)))]


@pytest.mark.parametrize(("path", "content"), [
    ("usr/share/doc/aws/index.txt", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
     "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"),  # AWS's documentation pair
    ("app/a.txt", "AKIA" + rand(15, string.ascii_uppercase)),  # one short
    ("app/b.txt", "AKIA" + rand(16, string.ascii_lowercase)),  # wrong alphabet
    ("app/c.txt", "XAKIA" + rand(16, string.ascii_uppercase) + "Y"),  # inside a longer word
    ("app/d.txt", f"aws_secret_access_key = {rand(39, ALNUM)}\n"),  # 39 characters
    ("app/e.txt", f"some_other_value = {AWS_SECRET}\n"),  # 40 characters without the context
    ("app/f.txt", "aws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}\n"),
    ("app/g.conf", "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
     "K1SZFPTOtr/KBHBeksoGMGw=="),  # Azurite's published emulator key
    ("app/h.conf", f"AccountKey={b64(30)}"),
    ("app/i.sh", "AZURE_CLIENT_SECRET=${{ secrets.AZURE_CLIENT_SECRET }}\nAZURE_CLIENT_ID=" + str(uuid.uuid4())),
    ("app/j.txt", "ghp_" + rand(35)),
    ("app/k.txt", "ghp_" + rand(37)),
    ("app/l.txt", "ghx_" + rand(36)),
    ("app/m.txt", "ghp_" + "x" * 36),
    ("app/n.txt", "glpat-" + rand(19)),
    ("app/o.txt", "glpat-xxxxxxxxxxxxxxxxxxxx"),
    ("app/p.txt", "xoxb-not-a-token and xoxq-1234567890-" + rand(24)),
    ("app/q.txt", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
    ("app/r.txt", "npm_" + rand(35)),
    ("root/.npmrc", "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n"),
    ("app/client.py", "class C:\n    def __init__(self, auth):\n        self._auth = auth_from_environment\n"),
    ("app/settings.py", '_password = _messages.StringField(1)\nNPMRC = "//{registry}:_password=\\"{password}\\""\n'),
    ("usr/share/doc/npmrc.md", "//somewhere-else.com/:_authToken=MYTOKEN1\n"),  # npm's documentation

    ("app/s.txt", "pypi-AgEIcHlwaS5vcmc" + rand(20)),
    ("app/t.txt", "pypi-AgEXample" + rand(80)),
    ("usr/lib/python3/ssl.py", 'PEM_HEADER = "-----BEGIN RSA PRIVATE KEY-----"\nPEM_FOOTER = "-----END"\n'),
    ("usr/share/doc/x.txt", "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n"),
    ("usr/share/doc/y.txt",  # a truncated key in documentation
     "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"),
    ("usr/share/doc/z.txt",
     "-----BEGIN RSA PRIVATE KEY-----\n" + ("X" * 64 + "\n") * 10 + "-----END RSA PRIVATE KEY-----\n"),
    ("app/pub.pem", "-----BEGIN PUBLIC KEY-----\n" + b64(270) + "\n-----END PUBLIC KEY-----\n"),
    ("app/sa.json", json.dumps({"type": "service_account", "client_email": "x@y.iam.gserviceaccount.com"})),
])
def test_near_misses_and_placeholders_are_not_reported(path: str, content: str) -> None:
    assert scan({path: content}) == []


# ---- well-known credential files ---------------------------------------------------------------

def test_netrc_password_in_either_layout() -> None:
    content = (f"machine git.internal login ci password {PASSWORD}\n\n"
               f"machine other\n  login bob\n  password {PASSWORD}x\n"
               f"machine third\nlogin carol\npassword {PASSWORD}y\n")  # at a line's start: that line
    assert found("root/.netrc", content) == [("netrc-password", 1, mask(PASSWORD)),
                                             ("netrc-password", 5, mask(PASSWORD + "x")),
                                             ("netrc-password", 8, mask(PASSWORD + "y"))]
    assert found("root/_netrc", "machine a login b password changeme\n") == []
    assert found("root/netrc.txt", content) == []  # only the well-known file names


def test_docker_config_auths() -> None:
    auth = base64.b64encode(f"robot$ci:{PASSWORD}".encode()).decode()
    token = rand(64, ALNUM + ".-_")
    content = json.dumps({"auths": {"registry.example.com": {"auth": auth},
                                    "ghcr.io": {"identitytoken": token},
                                    "quay.io": {"auth": base64.b64encode(b"bob:").decode()},
                                    "docker.io": {}},
                          "credsStore": "desktop"}, indent=2)
    assert found("root/.docker/config.json", content) == [("docker-config-auth", 4, mask(auth)),
                                                          ("docker-config-auth", 7, mask(token))]
    assert found("run/containers/0/containers/auth.json", content) != []
    assert found("root/.docker/config.json", '{"auths": {"r": {"auth": "not base64!"}}') == []
    assert found("root/.docker/config.json", '{"auths": ') == []  # not JSON: nothing, no error


def test_git_credentials() -> None:
    content = f"https://ci-bot:{PASSWORD}@github.com\nhttps://github.com\nhttps://bob@gitlab.com\n"
    assert found("root/.git-credentials", content) == [("git-credentials", 1, mask(PASSWORD))]
    assert found("root/.config/git/credentials", content) == [("git-credentials", 1, mask(PASSWORD))]


def test_pgpass_fifth_field_with_escaped_colons() -> None:
    content = (f"# hostname:port:database:username:password\n"
               f"db.internal:5432:app:app:{PASSWORD}\n"
               f"*:*:*:admin:pa\\:{PASSWORD}\n"
               "only:four:fields:here\n"
               "localhost:5432:app:app:\n")
    assert found("root/.pgpass", content) == [("pgpass-password", 2, mask(PASSWORD)),
                                              ("pgpass-password", 3, mask("pa:" + PASSWORD))]


def test_env_files() -> None:
    content = "\n".join([
        f"DB_PASSWORD={PASSWORD}",
        f'export API_KEY="{PASSWORD}" # the billing one',
        f"SECRET_KEY='{PASSWORD}'",
        f"PGPASSWORD={PASSWORD}",
        "DB_PASSWORD_FILE=/run/secrets/db_password",
        "DB_HOST=db.internal",
        "TOKEN_TTL=3600",
        "REDIS_PASSWORD=",
        "MYSQL_PASSWORD=${MYSQL_PASSWORD}",
        "ADMIN_PASSWORD=changeme",
        "SMTP_PASSWORD=<password>",
        "JWT_SECRET=xxxxxxxxxxxxxxxx",
        "ENABLE_TOKEN=true",
        "",
    ])
    assert found("srv/app/.env", content) == [("env-secret", n, mask(PASSWORD)) for n in (1, 2, 3, 4)]
    assert found("srv/app/.env.production", content) != []
    assert found("srv/app/.env.example", content) == []
    assert found("srv/app/settings.env.txt", content) == []


def test_token_rules_win_over_the_name_rule_for_the_same_value() -> None:
    assert found("srv/.env", f"GITHUB_TOKEN={GITHUB_TOKENS[0]}\n") == [("github-token", 1, mask(GITHUB_TOKENS[0]))]


@pytest.mark.parametrize(("name", "expected"), [
    ("DB_PASSWORD", True), ("PGPASSWORD", True), ("MYSQL_ROOT_PASSWORD", True), ("SECRET_KEY", True),
    ("apiKey", True), ("GITHUB_TOKEN", True), ("org.example.db.password", True), ("AWS_SECRET_ACCESS_KEY", True),
    ("PRIVATE_KEY", True), ("DB_PASSWORD_FILE", False), ("AWS_ACCESS_KEY_ID", False), ("TOKENIZER", False),
    ("TOKENIZER_PATH", False), ("PATH", False), ("HOME", False), ("PASSWORD_MIN_LENGTH", False),
])
def test_secret_names(name: str, expected: bool) -> None:
    assert is_secret_name(name) is expected


@pytest.mark.parametrize(("value", "expected"), [
    ("changeme", True), ("${TOKEN}", True), ("$TOKEN", True), ("{{ vault_token }}", True), ("<password>", True),
    ("xxxxxxxx", True), ("AKIAIOSFODNN7EXAMPLE", True), ("", True), ("password", True),
    ("{password}", True), ("[TOKEN]", True),
    (PASSWORD, False), (GITHUB_TOKENS[0], False), (AWS_SECRET, False), ("pa<ss>word-9f2k", False),
])
def test_placeholders(value: str, expected: bool) -> None:
    assert is_placeholder(value) is expected


# ---- masking and leaks ---------------------------------------------------------------------------

def basic_auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def every_secret() -> dict[str, str]:
    """Files holding one of each kind of secret, and the secrets, by file."""
    return {
        "root/.aws/credentials": f"[default]\naws_access_key_id={AWS_KEY_ID}\naws_secret_access_key={AWS_SECRET}\n",
        "app/sa.json": gcp_service_account(pem("pkcs8")),
        "root/.ssh/id_rsa": pem("rsa"),
        "root/.ssh/id_ed25519": pem("openssh"),
        "app/tokens.txt": "\n".join([*GITHUB_TOKENS, GITHUB_PAT, GITLAB_TOKEN, SLACK_BOT, SLACK_USER, NPM_TOKEN,
                                     PYPI_TOKEN, f"https://hooks.slack.com/services/{SLACK_HOOK}",
                                     f"AccountKey={AZURE_STORAGE_KEY}", f"AZURE_CLIENT_SECRET={AZURE_CLIENT_SECRET}"]),
        "root/.netrc": f"machine m login l password {PASSWORD}\n",
        "root/.docker/config.json": json.dumps({"auths": {"r": {"auth": basic_auth("u", PASSWORD)}}}),
        "root/.git-credentials": f"https://u:{PASSWORD}@h\n",
        "root/.pgpass": f"h:5432:d:u:{PASSWORD}\n",
        "srv/.env": f"DB_PASSWORD={PASSWORD}\n",
    }


def secret_values() -> list[str]:
    keys = [pem("pkcs8"), pem("rsa"), pem("openssh")]
    bodies = ["".join(k.splitlines()[1:-1]) for k in keys]
    return [AWS_KEY_ID, AWS_SECRET, *GITHUB_TOKENS, GITHUB_PAT, GITLAB_TOKEN, SLACK_BOT, SLACK_USER, NPM_TOKEN,
            PYPI_TOKEN, SLACK_HOOK, AZURE_STORAGE_KEY, AZURE_CLIENT_SECRET, PASSWORD,
            basic_auth("u", PASSWORD), *bodies]


def assert_no_secret_in(text: str) -> None:
    """No eight consecutive characters of any secret appear in ``text`` (a mask shows at most four)."""
    for secret in secret_values():
        windows = {secret[i:i + 8] for i in range(len(secret) - 7)}
        leaked = sorted(w for w in windows if w in text)
        assert not leaked, f"part of a secret leaked: {[w[:2] + '…' for w in leaked]}"


def test_findings_and_logs_never_hold_a_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = {"config": {"Env": [f"DB_PASSWORD={PASSWORD}", f"GH={GITHUB_TOKENS[1]}"],
                         "Labels": {"db.password": PASSWORD}, "Cmd": ["app", f"--password={PASSWORD}"]},
              "history": [{"created_by": f"|1 NPM_TOKEN={NPM_TOKEN} /bin/sh -c npm ci"}]}
    visitor = SecretVisitor(1 << 20)
    files = every_secret()

    history = walk([tar_layer("sha256:l0", files)], [visitor])
    secrets = tuple(visitor.findings(history)) + tuple(config_secrets(config, "sha256:cfg"))
    serialised = json.dumps(Findings(secrets=secrets, files_scanned=visitor.files_scanned).to_json())

    assert {f.path for f in secrets} >= set(files) | {"config:Env", "config:Labels", "config:Cmd", "config:history"}
    assert all(f.masked.endswith("****") and len(f.masked) <= 8 for f in secrets)
    assert any(r.levelno == logging.DEBUG and r.name == "dockyard.scan.secrets" for r in caplog.records)
    assert_no_secret_in(serialised)
    assert_no_secret_in(caplog.text)
    assert_no_secret_in(repr(secrets))


# ---- skipping, whiteouts -------------------------------------------------------------------------

def test_binaries_and_large_files_are_skipped_and_counted() -> None:
    token = GITHUB_TOKENS[2]
    visitor = SecretVisitor(max_file_bytes=4096)
    layer = tar_layer("sha256:l0", {
        "usr/bin/tool": b"\x7fELF\x02\x01\x01\x00" + token.encode(),  # NUL in the first bytes
        "usr/share/latin1.txt": f"caf\xe9 {token}".encode("latin-1"),  # not UTF-8
        "var/log/big.log": ("x" * 4096 + token).encode(),  # over the limit
        "etc/empty": b"",
        "etc/motd": f"{token}\n".encode(),
        "etc/late-nul.txt": b"a" * 9000 + b"\0",  # NUL past the sniffed 8 KiB, over the limit anyway
    })
    findings = visitor.findings(walk([layer], [visitor]))
    assert [(f.path, f.rule) for f in findings] == [("etc/motd", "github-token")]
    assert (visitor.files_scanned, visitor.skipped_binary, visitor.skipped_large) == (2, 2, 2)


def test_a_nul_after_the_first_8_kib_is_still_text() -> None:
    token = GITHUB_TOKENS[3]
    assert [f.rule for f in scan({"etc/data.txt": f"{token}\n" + "a" * 9000 + "\0"})] == ["github-token"]


def test_removed_by_a_later_whiteout_is_reported_as_removed() -> None:
    base = tar_layer("sha256:base", {
        "root/.aws/credentials": f"[default]\naws_secret_access_key = {AWS_SECRET}\n",
        "root/.ssh/id_rsa": pem("rsa"),
        "srv/app/.env": f"DB_PASSWORD={PASSWORD}\n",
        "etc/kept.txt": f"{GITHUB_TOKENS[4]}\n",
        "opt/build/.npmrc": f"//registry.npmjs.org/:_authToken={NPM_TOKEN}\n",
    })
    cleanup = tar_layer("sha256:cleanup", {
        "root/.aws/.wh.credentials": b"",  # the file deleted
        "root/.ssh/.wh..wh..opq": b"",  # the directory emptied
        "srv/app/.env": "DB_HOST=db\n",  # the file overwritten
        "opt/.wh.build": b"",  # a directory above it deleted
    })
    visitor = SecretVisitor(1 << 20)
    findings = visitor.findings(walk([base, cleanup], [visitor]))
    assert [(f.layer, f.path, f.rule, f.removed) for f in findings] == [
        ("sha256:base", "etc/kept.txt", "github-token", False),
        ("sha256:base", "opt/build/.npmrc", "npm-token", True),
        ("sha256:base", "root/.aws/credentials", "aws-secret-access-key", True),
        ("sha256:base", "root/.ssh/id_rsa", "private-key", True),
        ("sha256:base", "srv/app/.env", "env-secret", True),
    ]


# ---- the image config ----------------------------------------------------------------------------

def test_config_env_labels_commands_and_history() -> None:
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin", f"DB_PASSWORD={PASSWORD}", "API_TOKEN=${API_TOKEN}",
                    f"SLACK={SLACK_BOT}", "DB_PASSWORD_FILE=/run/secrets/db", "ADMIN_PASSWORD="],
            "Labels": {"org.opencontainers.image.source": "https://github.com/x/y", "deploy.api-key": PASSWORD},
            "Cmd": ["server", "--listen=:8080", f"--db-password={PASSWORD}"],
            "Entrypoint": ["/bin/sh", "-c", f"export GITLAB={GITLAB_TOKEN}; exec app"],
        },
        "history": [
            {"created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
            {"created_by": f"/bin/sh -c #(nop)  ENV MYSQL_ROOT_PASSWORD={PASSWORD}", "empty_layer": True},
            {"created_by": f"RUN |2 NPM_TOKEN={NPM_TOKEN} VERSION=1 /bin/sh -c npm ci", "comment": "buildkit"},
            {"created_by": "RUN /bin/sh -c echo $DB_PASSWORD > /dev/null"},
            {"empty_layer": True},
        ],
    }
    assert [(f.path, f.line, f.rule, f.masked) for f in config_secrets(config, "sha256:cfg")] == [
        ("config:Env", 2, "env-secret", mask(PASSWORD)),
        ("config:Env", 4, "slack-token", mask(SLACK_BOT)),
        ("config:Labels", 2, "label-secret", mask(PASSWORD)),
        ("config:Cmd", 3, "env-secret", mask(PASSWORD)),
        ("config:Entrypoint", 3, "gitlab-token", mask(GITLAB_TOKEN)),
        ("config:history", 2, "env-secret", mask(PASSWORD)),
        ("config:history", 3, "npm-token", mask(NPM_TOKEN)),
    ]
    assert {(f.layer, f.removed) for f in config_secrets(config, "sha256:cfg")} == {("sha256:cfg", False)}


@pytest.mark.parametrize("config", [
    {}, {"config": None}, {"config": {"Env": "DB_PASSWORD=x"}}, {"config": {"Env": [None, 3]}},
    {"config": {"Labels": ["a"], "Cmd": {"x": 1}}}, {"history": "nope"}, {"history": [None, {"created_by": 5}]},
])
def test_odd_configs_give_nothing_and_no_error(config: dict[str, object]) -> None:
    assert config_secrets(config, "sha256:cfg") == []


# ---- hostile layers ----------------------------------------------------------------------------

N = 100_000


@pytest.mark.parametrize("content", [
    "-----BEGIN PRIVATE KEY-----" + " " * N + "!",
    '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----' + "\\n" * N,
    "-----BEGIN PRIVATE KEY-----\n" + "a:b\n" * (N // 4) + "!",
    "xoxb-" + "1" * N + "_",
    "glpat-" + "a." * N + "_",
    "https://hooks.slack.com/services/T" + "A" * N,
    "//r/:_authToken=" + "a" * N + "(",
    "DB_PASSWORD=\"" + "a" * N,
])
def test_crafted_files_are_searched_in_linear_time(content: str) -> None:
    # A pattern that backtracks would take hours on these (the test would hang, not fail slowly).
    assert scan({"srv/.env": content}) == []


def test_findings_per_file_are_capped() -> None:
    keys = "\n".join("AKIA" + rand(16, string.ascii_uppercase + "234567") for _ in range(5000))
    findings = scan({"data/keys.txt": keys})
    assert len(findings) == 100
    assert findings[-1].line == 100
