"""The config tree: defaults, a TOML file, ``DOCKYARD_SECTION__KEY`` overrides, errors naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dockyard.config import Config, env_overrides, load_config
from dockyard.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dockyard.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment() -> None:
    config = load_config(None, {})
    assert config == Config()
    assert (config.server.host, config.server.port) == ("127.0.0.1", 5000)
    assert config.storage.driver == "filesystem"
    assert config.storage.fsync is True
    assert config.registry.manifest_max_bytes == 4 * 1024 * 1024
    assert config.log.level == "info"
    assert config.storage_root == Path("data") / "storage"
    assert config.database_url.startswith("sqlite+aiosqlite:///")
    assert config.database_url.endswith("/data/dockyard.db")


def test_values_from_a_toml_file(tmp_path: Path) -> None:
    path = write(tmp_path, """
data_dir = "/srv/dockyard"

[server]
port = 8080

[storage]
driver = "memory"
root = "/srv/blobs"

[database]
url = "postgresql+asyncpg://u@db/dockyard"
""")
    config = load_config(path, {})
    assert config.data_dir == Path("/srv/dockyard")
    assert config.server.port == 8080
    assert config.server.host == "127.0.0.1"  # untouched keys keep their defaults
    assert config.storage.driver == "memory"
    assert config.storage_root == Path("/srv/blobs")
    assert config.database_url == "postgresql+asyncpg://u@db/dockyard"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 8080\nhost = \"0.0.0.0\"\n")
    config = load_config(path, {
        "DOCKYARD_SERVER__PORT": "9090",
        "DOCKYARD_DATA_DIR": "/var/lib/dockyard",
        "DOCKYARD_STORAGE__FSYNC": "false",
        "DOCKYARD_REGISTRY__LIST_PAGE_MAX": "50",
    })
    assert config.server.port == 9090
    assert config.server.host == "0.0.0.0"  # a sibling key from the file survives the override
    assert config.data_dir == Path("/var/lib/dockyard")
    assert config.storage.fsync is False
    assert config.registry.list_page_max == 50


def test_dockyard_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[log]\nlevel = \"debug\"\n")
    assert load_config(None, {"DOCKYARD_CONFIG": str(path)}).log.level == "debug"


def test_an_explicit_path_wins_over_dockyard_config(tmp_path: Path) -> None:
    path = write(tmp_path, "[log]\nlevel = \"error\"\n")
    assert load_config(path, {"DOCKYARD_CONFIG": str(tmp_path / "missing.toml")}).log.level == "error"


@pytest.mark.parametrize("name", [
    "DOCKYARD_ADMIN_PASSWORD",     # a variable of ours that is no setting
    "DOCKYARD_TEST_POSTGRES_URL",
    "DOCKYARD_",
    "DOCKYARD_SERVER__",
    "DOCKYARD___PORT",
    "OTHER_SERVER__PORT",
])
def test_unrelated_environment_variables_are_ignored(name: str) -> None:
    assert load_config(None, {name: "x"}) == Config()


def test_env_overrides_builds_a_tree() -> None:
    assert env_overrides({"DOCKYARD_SERVER__PORT": "1", "DOCKYARD_DATA_DIR": "d", "HOME": "/root"}) == {
        "server": {"port": "1"}, "data_dir": "d"}


@pytest.mark.parametrize(("text", "key"), [
    ("bogus = 1\n", "bogus"),
    ("[server]\nprot = 8080\n", "server.prot"),
    ("[storage]\ndriver = \"filesystem\"\nroots = \"/x\"\n", "storage.roots"),
    ("[nosuchsection]\na = 1\n", "nosuchsection"),
])
def test_unknown_keys_in_the_file_are_named(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), {})
    assert f"{key}: unknown setting" in str(caught.value)


def test_unknown_keys_in_the_environment_are_named() -> None:
    with pytest.raises(ConfigError, match=r"server\.prot: unknown setting"):
        load_config(None, {"DOCKYARD_SERVER__PROT": "8080"})


@pytest.mark.parametrize(("text", "key"), [
    ("[server]\nport = \"eighty\"\n", "server.port"),
    ("[server]\nport = 0\n", "server.port"),
    ("[server]\nport = 70000\n", "server.port"),
    ("[storage]\ndriver = \"s4\"\n", "storage.driver"),
    ("[storage]\nfsync = \"perhaps\"\n", "storage.fsync"),
    ("[log]\nlevel = \"loud\"\n", "log.level"),
    ("[registry]\nmanifest_max_bytes = 1\n", "registry.manifest_max_bytes"),
    ("server = 5\n", "server"),
])
def test_wrong_types_and_values_in_the_file_are_named(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), {})
    assert str(caught.value).startswith(f"{key}: ")


@pytest.mark.parametrize(("environ", "key"), [
    ({"DOCKYARD_SERVER__PORT": "eighty"}, "server.port"),
    ({"DOCKYARD_DATABASE__POOL_SIZE": "0"}, "database.pool_size"),
    ({"DOCKYARD_LOG__ACCESS_LOG": "sometimes"}, "log.access_log"),
    ({"DOCKYARD_SERVER": "x"}, "server"),
])
def test_wrong_values_in_the_environment_are_named(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ)
    assert str(caught.value).startswith(f"{key}: ")


def test_a_value_used_as_a_section_is_refused() -> None:
    with pytest.raises(ConfigError, match="DOCKYARD_DATA_DIR__X"):
        load_config(None, {"DOCKYARD_DATA_DIR": "/d", "DOCKYARD_DATA_DIR__X": "y"})


def test_several_errors_are_all_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "[server]\nport = \"x\"\nworkers = -1\n"), {})
    assert "server.port" in str(caught.value)
    assert "server.workers" in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", {})


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(write(tmp_path, "[server\nport = "), {})


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.data_dir = Path("/elsewhere")  # type: ignore[misc]


def test_with_overrides_validates_again() -> None:
    config = Config().with_overrides(server={"port": 6000}, log={"level": "debug"})
    assert config.server.port == 6000
    assert config.server.host == "127.0.0.1"
    assert config.log.level == "debug"
    with pytest.raises(ConfigError, match=r"server\.port"):
        config.with_overrides(server={"port": -1})
