"""How `dockyard sign | verify | signatures` read IMAGE."""

from __future__ import annotations

import click
import pytest

from dockyard.cli.signing import split_image

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(("image", "expected"), [
    ("team/app:v1", ("team/app", "v1")),
    (f"team/app@{DIGEST}", ("team/app", DIGEST)),
    ("team/sub/app:1.0-rc.1", ("team/sub/app", "1.0-rc.1")),
])
def test_split_image(image: str, expected: tuple[str, str]) -> None:
    assert split_image(image) == expected


@pytest.mark.parametrize("image", ["team/app", "team/app:", ":v1", "team/app@", "host:5000/team/app"])
def test_split_image_refuses_what_names_no_image(image: str) -> None:
    with pytest.raises(click.BadParameter, match="REPOSITORY:TAG or REPOSITORY@sha256"):
        split_image(image)
