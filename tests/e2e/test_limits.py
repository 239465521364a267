"""Limits a backend sets that are checked at start-up rather than per request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.storage import layout

pytestmark = pytest.mark.e2e


def test_serve_refuses_an_s3_prefix_that_leaves_no_room_for_keys(tmp_path: Path) -> None:
    """S3 keys are at most 1024 bytes: `dockyard serve` with a prefix too long for the registry's own
    paths exits at once with a message naming the setting and the limit (no Ceph needed: nothing is
    contacted), instead of failing later on every push."""
    room = layout.MAX_KEY_BYTES - layout.LONGEST_PATH - 1
    env = {**os.environ, "DOCKYARD_STORAGE__DRIVER": "s3", "DOCKYARD_STORAGE__S3__PREFIX": "p" * (room + 1)}
    result = subprocess.run([sys.executable, "-m", "dockyard", "serve", "--data-dir", str(tmp_path / "data"),
                             "--port", "1"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert f"storage.s3.prefix: {room + 1} bytes is too long" in result.stderr
    assert f"use at most {room}" in result.stderr


def test_config_check_refuses_an_s3_prefix_that_leaves_no_room_for_keys(tmp_path: Path) -> None:
    """`dockyard config check` finds the same problem before anything is started."""
    room = layout.MAX_KEY_BYTES - layout.LONGEST_PATH - 1
    config = tmp_path / "dockyard.toml"
    config.write_text(f'[storage]\ndriver = "s3"\n[storage.s3]\nprefix = "{"é" * (room // 2 + 1)}"\n')
    result = subprocess.run([sys.executable, "-m", "dockyard", "config", "check", str(config)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert f"storage.s3.prefix: {2 * (room // 2 + 1)} bytes is too long" in result.stderr
    config.write_text(f'[storage]\ndriver = "s3"\n[storage.s3]\nprefix = "{"p" * room}"\n')
    accepted = subprocess.run([sys.executable, "-m", "dockyard", "config", "check", str(config)],
                              capture_output=True, text=True, timeout=60, check=False)
    assert accepted.returncode == 0, accepted.stderr
