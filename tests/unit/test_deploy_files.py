"""The operator-facing files (Dockerfile, compose, systemd unit, nginx, operations guide) match the code.

No container engine runs these tests, so they check what can be checked without one: every
``DOCKYARD_*`` variable is a real setting, every ``dockyard`` command and flag the guide names
exists, every metric the guide lists is exported, the compose file has the expected shape, and
nginx accepts the load-balancer configuration when nginx is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from dockyard.cli import main as cli_main
from dockyard.config import ServerConfig, setting_paths

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "examples" / "compose.yaml"
UNIT = ROOT / "examples" / "dockyard.service"
NGINX = ROOT / "examples" / "nginx.conf"
DEPLOY_FILES = [OPERATIONS, DOCKERFILE, COMPOSE, UNIT]
NODES = ["dockyard1", "dockyard2", "dockyard3"]


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# -- environment variables -------------------------------------------------------------------


def _non_setting_variables() -> set[str]:
    """The names docs/configuration.md lists under "Environment variables that are not settings"."""
    reference = _text(ROOT / "docs" / "configuration.md")
    section = reference.split("## Environment variables that are not settings", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", section, flags=re.MULTILINE))
    assert "DOCKYARD_CONFIG" in names
    return names


def _setting_for(variable: str) -> str:
    """``DOCKYARD_SECTION__KEY`` -> ``section.key`` (the rule docs/configuration.md states)."""
    return ".".join(variable.removeprefix("DOCKYARD_").lower().split("__"))


def test_env_name_rule() -> None:
    assert _setting_for("DOCKYARD_STORAGE__ROOT") == "storage.root"
    assert _setting_for("DOCKYARD_DATA_DIR") == "data_dir"
    assert _setting_for("DOCKYARD_DATABASE__AUTO_MIGRATE") == "database.auto_migrate"


@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: p.name)
def test_every_dockyard_variable_is_a_setting(path: Path) -> None:
    settings = set(setting_paths())
    allowed = _non_setting_variables()
    named = set(re.findall(r"\bDOCKYARD_[A-Z0-9_]+", _text(path)))
    unknown = sorted(v for v in named if v not in allowed and _setting_for(v) not in settings)
    assert unknown == [], f"{path.name} names variables that are no setting: {unknown}"


# -- commands in the operations guide --------------------------------------------------------


def _code_in(markdown: str) -> list[str]:
    """Inline code spans and the lines of fenced blocks."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)
    without_fences = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    inline = re.findall(r"`([^`\n]+)`", without_fences)
    return [line for block in fenced for line in block.splitlines()] + inline


def _invocations(markdown: str) -> list[list[str]]:
    """Each ``dockyard ...`` invocation in code, as its words up to a comment or shell operator."""
    found = []
    for code in _code_in(markdown):
        for match in re.finditer(r"(?:^|(?<=[\s(])|(?<=bin/))dockyard((?:[ \t]+[^\s#|;&]+)+)", code):
            found.append(match.group(1).split())
    return found


def _check_invocation(words: list[str]) -> str | None:
    """None if ``dockyard <words>`` names a real command with real options, else the problem."""
    command: click.Command = cli_main
    rest = list(words)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])
        if sub is None:
            return f"`dockyard {' '.join(words)}`: no command {rest[0]!r}"
        command, rest = sub, rest[1:]
    if isinstance(command, click.Group):
        return f"`dockyard {' '.join(words)}`: names a group, not a command"
    options = {opt for param in command.params for opt in param.opts}
    options |= {"--help", "-h"}
    bad = [w.split("=", 1)[0] for w in rest if w.startswith("-") and w.split("=", 1)[0] not in options]
    return f"`dockyard {' '.join(words)}`: unknown option(s) {bad}" if bad else None


def test_checker_catches_bad_commands() -> None:
    assert _check_invocation(["migrate", "--check"]) is None
    assert _check_invocation(["uploads", "purge", "--dry-run"]) is None
    assert _check_invocation(["no-such-command"]) is not None
    assert _check_invocation(["serve", "--no-such-flag"]) is not None
    assert _check_invocation(["uploads"]) is not None
    assert _invocations("run `dockyard migrate --check` then\n```sh\ndockyard serve --port 1  # x\n```\n") == [
        ["serve", "--port", "1"], ["migrate", "--check"]]


def test_operations_guide_commands_exist() -> None:
    invocations = _invocations(_text(OPERATIONS))
    named = {words[0] for words in invocations}
    assert {"serve", "migrate", "uploads", "config"} <= named
    problems = [p for p in map(_check_invocation, invocations) if p]
    assert problems == []


def test_operations_guide_commands_run() -> None:
    """The commands also answer --help through the real entry point (python -m dockyard)."""
    commands = {tuple(_command_path(words)) for words in _invocations(_text(OPERATIONS))}
    for names in sorted(commands):
        result = subprocess.run([sys.executable, "-m", "dockyard", *names, "--help"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (names, result.stderr)
        assert "Usage:" in result.stdout


def _command_path(words: list[str]) -> list[str]:
    """The leading words of an invocation that name (sub)commands."""
    command: click.Command = cli_main
    names = []
    for word in words:
        if not isinstance(command, click.Group) or word not in command.commands:
            break
        command = command.commands[word]
        names.append(word)
    return names


# -- metrics and endpoints in the operations guide -------------------------------------------


def test_operations_guide_lists_every_metric() -> None:
    exported = set(re.findall(r'"(dockyard_[a-z_]+)"', _text(ROOT / "src" / "dockyard" / "http" / "metrics.py")))
    assert exported
    documented = set(re.findall(r"`(dockyard_[a-z_]+)`", _text(OPERATIONS)))
    assert documented == exported


def test_operations_guide_covers_the_essentials() -> None:
    guide = _text(OPERATIONS)
    for needle in ("/healthz", "/readyz", "/metrics", "SIGTERM", "`server.graceful_timeout`",
                   "`database.auto_migrate = false`", "pg_dump", "pg_restore", '".backup', "WAL",
                   "O_DIRECT", "client_max_body_size 0", "proxy_request_buffering off",
                   "dockyard uploads purge --dry-run"):
        assert needle in guide, needle
    assert guide.index("### The database") < guide.index("### The blobs")


# -- Dockerfile ------------------------------------------------------------------------------


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", dockerfile)
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in (raw.strip() for raw in joined.splitlines()) if line and not line.startswith("#")]


def test_dockerfile() -> None:
    instructions = _instructions(_text(DOCKERFILE))
    by_kind: dict[str, list[str]] = {}
    for kind, argument in instructions:
        by_kind.setdefault(kind, []).append(argument.strip())
    assert by_kind["FROM"] == ["python:3.11-slim"]
    assert any("pip install ." in run for run in by_kind["RUN"])
    assert by_kind["USER"]
    assert by_kind["USER"][-1] not in ("root", "0")
    assert [kind for kind, _ in instructions].index("USER") < [kind for kind, _ in instructions].index("CMD")
    assert by_kind["EXPOSE"] == ["5000"]
    assert by_kind["VOLUME"] == ["/var/lib/dockyard"]
    assert by_kind["CMD"] == ['["dockyard", "serve", "--host", "0.0.0.0", "--data-dir", "/var/lib/dockyard"]']
    (healthcheck,) = by_kind["HEALTHCHECK"]
    assert "urllib.request" in healthcheck
    assert "/healthz" in healthcheck
    for source in re.findall(r"^COPY\s+(.+?)\s+\S+$", _text(DOCKERFILE), flags=re.MULTILINE):
        for name in source.split():
            assert (ROOT / name).exists(), f"COPY {name}: not in the repository"


def test_dockerignore() -> None:
    patterns = {line.strip() for line in _text(DOCKERIGNORE).splitlines() if line.strip() and not line.startswith("#")}
    assert {".venv", "data", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache"} <= patterns
    assert not patterns & {"src", "pyproject.toml", "README.md"}, "the image build needs these"


# -- compose ---------------------------------------------------------------------------------


def _compose_services(text: str) -> dict[str, str]:
    """A structural parse without PyYAML (not a dependency): service name -> its block of lines."""
    assert "\t" not in text, "YAML forbids tabs for indentation"
    top = re.findall(r"^([A-Za-z][\w.-]*):", text, flags=re.MULTILINE)
    assert "services" in top
    assert "volumes" in top
    body = text.split("\nservices:\n", 1)[1]
    body = re.split(r"^\S", body, maxsplit=1, flags=re.MULTILINE)[0]
    services: dict[str, str] = {}
    for block in re.split(r"^(?=  [\w-]+:)", body, flags=re.MULTILINE):
        head = re.match(r"  ([\w-]+):", block)
        if head:
            services[head.group(1)] = block
    return services


def test_compose_structure() -> None:
    text = _text(COMPOSE)
    services = _compose_services(text)
    assert set(services) == {"postgres", "migrate", *NODES, "nginx"}
    assert '["dockyard", "migrate"]' in services["migrate"]
    assert "postgresql+asyncpg://" in services["migrate"]
    assert "service_healthy" in services["migrate"]
    anchor = text.split("x-dockyard-node: &node\n", 1)[1].split("\nservices:\n", 1)[0]
    for variable in ("DOCKYARD_DATABASE__URL: postgresql+asyncpg://", 'DOCKYARD_DATABASE__AUTO_MIGRATE: "false"',
                     "DOCKYARD_STORAGE__ROOT: /var/lib/dockyard/storage", "- blobs:/var/lib/dockyard/storage",
                     "service_completed_successfully"):
        assert variable in anchor, variable
    for node in NODES:
        assert "<<: *node" in services[node]
    assert "./nginx.conf:/etc/nginx/nginx.conf" in services["nginx"]
    assert re.search(r"^  blobs:\s*$", text.split("\nvolumes:\n")[-1], flags=re.MULTILINE)
    assert "no container engine" in text.split("\n\n", 1)[0]


def test_compose_parses_with_yaml_if_available() -> None:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(_text(COMPOSE))
    for node in NODES:
        assert data["services"][node]["environment"]["DOCKYARD_DATABASE__AUTO_MIGRATE"] == "false"


# -- systemd unit ----------------------------------------------------------------------------


def _unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_systemd_unit() -> None:
    text = _text(UNIT)
    assert {"[Unit]", "[Service]", "[Install]"} <= set(re.findall(r"^\[\w+\]$", text, flags=re.MULTILINE))
    unit = _unit_settings(text)
    assert unit["User"] == ["dockyard"]
    (exec_start,) = unit["ExecStart"]
    assert exec_start == "/opt/dockyard/.venv/bin/dockyard serve --config /etc/dockyard/dockyard.toml"
    assert _check_invocation(exec_start.split()[1:]) is None
    assert unit["KillSignal"] == ["SIGTERM"]
    assert unit["Restart"] == ["on-failure"]
    stop = float(unit["TimeoutStopSec"][0])
    assert ServerConfig().graceful_timeout < stop <= ServerConfig().graceful_timeout + 60
    assert unit["NoNewPrivileges"] == ["true"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ReadWritePaths"] == ["/var/lib/dockyard"]
    assert unit["PrivateTmp"] == ["true"]


def test_systemd_unit_verifies_if_available() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(UNIT)], capture_output=True, text=True)
    # Only the unit's own syntax counts: the binary and user do not exist on a build machine.
    problems = [line for line in result.stderr.splitlines()
                if "dockyard.service" in line and "Unknown" in line]
    assert problems == []


# -- nginx -----------------------------------------------------------------------------------


def test_nginx_conf_directives() -> None:
    conf = _text(NGINX)
    for directive in ("client_max_body_size 0;", "proxy_request_buffering off;", "proxy_buffering off;",
                      "proxy_http_version 1.1;", "proxy_set_header Host $http_host;"):
        assert directive in conf, directive
    assert re.findall(r"^\s*server (\S+):5000\b", conf, flags=re.MULTILINE) == NODES
    for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
        seconds = re.search(rf"{timeout} (\d+)s;", conf)
        assert seconds, timeout
        assert int(seconds.group(1)) >= 600, timeout


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if nginx is None:
        pytest.skip("nginx is not installed")
    # The compose service names do not resolve here: point the upstream at local ports instead.
    conf = _text(NGINX)
    for number, node in enumerate(NODES, start=1):
        conf = conf.replace(f"server {node}:5000", f"server 127.0.0.1:{5000 + number}")
    (tmp_path / "nginx.conf").write_text(conf)
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(tmp_path / "nginx.conf"),
         "-g", f"pid {tmp_path / 'nginx.pid'};"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
