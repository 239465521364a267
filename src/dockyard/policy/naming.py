"""Naming rules: regular expressions that repository names and tags of a project must match.

A rule is a Python regular expression matched with ``re.fullmatch``: it must match the whole
name (the repository name after ``<project>/``, or the whole tag), anchors or not. A refusal
quotes the rule and gives an example of a name that passes, made from the expression itself.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

# Characters an example prefers, in order: what repository names and tags may hold.
_PREFERRED = string.ascii_lowercase + string.digits + "-._" + string.ascii_uppercase
_MAX_EXAMPLE = 255
_ANY_CATEGORY: dict[Any, Callable[[str], bool]] = {
    sre.CATEGORY_DIGIT: str.isdigit, sre.CATEGORY_NOT_DIGIT: lambda c: not c.isdigit(),
    sre.CATEGORY_WORD: lambda c: c.isalnum() or c == "_",
    sre.CATEGORY_NOT_WORD: lambda c: not (c.isalnum() or c == "_"),
    sre.CATEGORY_SPACE: str.isspace, sre.CATEGORY_NOT_SPACE: lambda c: not c.isspace(),
}


def matches(pattern: str, value: str) -> bool:
    """Whether ``value`` matches the whole of ``pattern`` (``re.fullmatch``)."""
    return re.fullmatch(pattern, value) is not None


class _CannotMake(Exception):
    """The expression uses something the example generator does not handle."""


@dataclass(frozen=True, slots=True)
class _Choice:
    last_branch: bool  # take each alternative's last branch instead of its first
    at_least_one: bool  # repeat an optional part once instead of leaving it out


_CHOICES = (_Choice(False, False), _Choice(False, True), _Choice(True, False), _Choice(True, True))


def example(pattern: str, accept: Callable[[str], bool] = lambda _: True) -> str | None:
    """A string that fully matches ``pattern`` and that ``accept`` takes (a valid name or tag),
    or None when none of the few tried does: the first (or last) branch of each alternative and
    the fewest repeats (or at least one), each character the first of ``_PREFERRED`` allowed."""
    try:
        tree = sre_parse.parse(pattern)
    except (re.error, RecursionError):
        return None
    for choice in _CHOICES:
        try:
            made = _render(list(tree), choice, {})
        except (_CannotMake, RecursionError):
            continue
        if len(made) <= _MAX_EXAMPLE and matches(pattern, made) and accept(made):
            return made
    return None


def _render(items: list[Any], choice: _Choice, groups: dict[int, str]) -> str:
    return "".join(_render_one(op, av, choice, groups) for op, av in items)


def _render_one(op: Any, av: Any, choice: _Choice, groups: dict[int, str]) -> str:
    if op is sre.LITERAL:
        return chr(av)
    if op is sre.NOT_LITERAL:
        return _pick(lambda c: c != chr(av))
    if op is sre.ANY:
        return _pick(lambda c: c != "\n")
    if op is sre.IN:
        return _pick(_member_test(av))
    if op is sre.BRANCH:
        branches = av[1]
        return _render(list(branches[-1] if choice.last_branch else branches[0]), choice, groups)
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT)):
        low, high, sub = av
        count: int = min(max(low, 1) if choice.at_least_one else low, high)
        piece = _render(list(sub), choice, groups) if count else ""
        if len(piece) * count > _MAX_EXAMPLE:
            raise _CannotMake("longer than any name")
        return piece * count
    if op is sre.SUBPATTERN:
        group, _add, _del, sub = av
        made = _render(list(sub), choice, groups)
        if group is not None:
            groups[group] = made
        return made
    if op is getattr(sre, "ATOMIC_GROUP", None):
        return _render(list(av), choice, groups)
    if op is sre.GROUPREF:
        return groups.get(av, "")
    if op is sre.GROUPREF_EXISTS:
        group, yes, no = av
        taken = yes if group in groups else no
        return "" if taken is None else _render(list(taken), choice, groups)
    if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
        return ""  # anchors and lookarounds add no characters; the final fullmatch checks them
    raise _CannotMake(str(op))


def _member_test(items: list[Any]) -> Callable[[str], bool]:
    negate = bool(items) and items[0][0] is sre.NEGATE
    tests: list[Callable[[str], bool]] = []
    for op, av in items[1:] if negate else items:
        if op is sre.LITERAL:
            tests.append(_in_range(av, av))
        elif op is sre.RANGE:
            tests.append(_in_range(av[0], av[1]))
        elif op is sre.CATEGORY and av in _ANY_CATEGORY:
            tests.append(_ANY_CATEGORY[av])
        else:
            raise _CannotMake(str(op))
    return lambda c: any(test(c) for test in tests) != negate


def _in_range(low: int, high: int) -> Callable[[str], bool]:
    return lambda c: low <= ord(c) <= high


def _pick(allowed: Callable[[str], bool]) -> str:
    for char in _candidates():
        if allowed(char):
            return char
    raise _CannotMake("no plain character fits")


def _candidates() -> Iterator[str]:
    yield from _PREFERRED
    yield from (chr(code) for code in range(32, 127))


def describe_failure(kind: str, value: str, pattern: str, where: str, example_text: str | None) -> str:
    """The refusal: which name, the rule quoted, how it is matched, and an example that passes."""
    hint = (f"for example {example_text}" if example_text is not None
            else "no example could be made from the expression; ask a project admin which names it allows")
    return (f"{kind} {value} breaks the naming rule: {where} must match '{pattern}' "
            f"(the whole of it, re.fullmatch); {hint}")
