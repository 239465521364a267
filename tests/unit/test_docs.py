"""Every setting is documented, and the example configuration is valid."""

from __future__ import annotations

from pathlib import Path

from dockyard.config import load_config, setting_paths

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented() -> None:
    reference = (ROOT / "docs" / "configuration.md").read_text()
    missing = [path for path in setting_paths() if f"`{path}`" not in reference]
    assert missing == []


def test_documented_settings_exist() -> None:
    import re
    reference = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", reference, flags=re.MULTILINE))
    assert documented - set(setting_paths()) == set()


def test_example_configs_are_valid() -> None:
    for example in (ROOT / "examples").glob("*.toml"):
        load_config(example, environ={})
