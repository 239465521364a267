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
    examples = sorted((ROOT / "examples").glob("*.toml"))
    assert examples, "no example configuration found in examples/"
    for example in examples:
        load_config(example, environ={})


def test_the_role_table_in_the_docs_is_the_one_in_the_code() -> None:
    from dockyard.auth.principals import ROLE_PERMISSIONS, ROLES

    lines = (ROOT / "docs" / "access.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| permission | guest"))
    rows = [line for line in lines[start + 2:] if line.startswith("|")][:8]
    names = {"pull": "pull", "push": "push", "delete (tags, manifests, blobs)": "delete",
             "manage robots": "manage_robots", "manage policies": "manage_policies", "view audit": "view_audit",
             "manage members (roles, teams)": "manage_members",
             "manage settings (public / private)": "manage_settings"}
    documented = {role: set() for role in ROLES}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        for role, cell in zip(ROLES, cells[1:5], strict=True):
            if cell == "✓":
                documented[role].add(names[cells[0]])
    assert documented == {role: set(permissions) for role, permissions in ROLE_PERMISSIONS.items()}
