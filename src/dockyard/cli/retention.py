"""``dockyard retention | tag``: retention policies, their plans, and restoring what a run deleted.

``retention set`` and ``retention show`` (the policy as data) are in ``cli/policies.py``; ``plan``,
``apply`` and ``tag restore`` are here.
"""

from __future__ import annotations

import click


@click.group()
def retention() -> None:
    """Retention policies per project: set and show them, preview a run (plan), run it (apply).

    A run deletes only tags (and untagged manifests) the policy does not keep; what it deletes can
    be brought back with `dockyard tag restore` within retention.restore_window.
    """


@click.group()
def tag() -> None:
    """Tags: bring back a tag that a retention run deleted."""


COMMANDS = [retention, tag]
