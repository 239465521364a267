"""Storage quotas: whether a push fits, and the message when it does not.

What a project uses is counted by ``store/usage.py`` (each blob once per project, plus every
manifest row); this module only decides and explains.
"""

from __future__ import annotations

from dockyard.policy.checks import format_size


def human_size(size: int) -> str:
    """Bytes for people, without a needless ".0": 524288000 → "500 MiB", 1536 → "1.5 KiB"."""
    return format_size(size).replace(".0 ", " ")


def fits(used: int, cost: int, quota: int | None) -> bool:
    """Whether adding ``cost`` bytes to ``used`` stays within ``quota`` (None: no quota).

    A push that adds nothing (content the project has already) always fits, also over a quota
    lowered below what the project uses.
    """
    return quota is None or cost == 0 or used + cost <= quota


def refusal(project: str, used: int, cost: int, quota: int) -> str:
    """Why the push is refused, with usage and limit (docs/lifecycle.md quotes it)."""
    after = used + cost
    shown = human_size(after)
    if shown == human_size(quota):  # over by less than the rounding shows: give the bytes
        shown = f"{after} bytes"
        limit = f"{quota}-byte"
    else:
        limit = human_size(quota)
    return (f"project {project} would use {shown} of its {limit} quota (this push adds {human_size(cost)} to "
            f"{human_size(used)}): delete images, or ask an admin for more with `dockyard quota set`")
