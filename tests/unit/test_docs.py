"""Every setting is documented, and the example configuration is valid."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from dockyard.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]


def setting_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += setting_paths(annotation, f"{prefix}{name}.")
        else:
            paths.append(f"{prefix}{name}")
    return paths


def test_every_setting_is_documented() -> None:
    reference = (ROOT / "docs" / "configuration.md").read_text()
    missing = [path for path in setting_paths(Config) if f"`{path}`" not in reference]
    assert missing == []


def test_documented_settings_exist() -> None:
    import re
    reference = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", reference, flags=re.MULTILINE))
    assert documented - set(setting_paths(Config)) == set()


def test_example_configs_are_valid() -> None:
    for example in (ROOT / "examples").glob("*.toml"):
        load_config(example, environ={})
