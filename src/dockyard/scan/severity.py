"""An advisory's severity: from its CVSS vector (the ``cvss`` library scores it), else the word
its database gives, else "unknown".

    CVSS base score   >= 9.0 critical   >= 7.0 high   >= 4.0 medium   > 0 low   0 unknown

Words are normalised to report.SEVERITIES: "CRITICAL" → critical, "important" → high,
"Moderate" → medium, "negligible"/"unimportant" → low; anything else is not a severity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cvss import CVSS2, CVSS3, CVSS4, CVSSError

_WORDS = {
    "critical": "critical",
    "high": "high", "important": "high",
    "medium": "medium", "moderate": "medium",
    "low": "low", "negligible": "low", "unimportant": "low", "minor": "low",
}
# The strongest kind of vector wins when an advisory gives several.
_SCORERS: dict[str, Any] = {"CVSS_V4": CVSS4, "CVSS_V3": CVSS3, "CVSS_V2": CVSS2}


@dataclass(frozen=True, slots=True)
class Scored:
    severity: str  # one of report.SEVERITIES
    score: float | None = None
    vector: str | None = None


UNKNOWN = Scored("unknown")


def band(score: float) -> str:
    """The severity name of a CVSS base score."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0 else "unknown"


def normalise(word: object) -> str | None:
    """A database's severity word as one of report.SEVERITIES; None when it is not one."""
    if not isinstance(word, str):
        return None
    return _WORDS.get(word.strip().lower())


@lru_cache(maxsize=8192)  # advisories share vectors; scoring one takes the library ~100 µs
def base_score(kind: str, vector: str) -> float | None:
    """The CVSS base score of ``vector`` (``kind`` "CVSS_V4", "CVSS_V3" or "CVSS_V2"); None if malformed."""
    try:
        return float(_SCORERS[kind](vector).base_score)
    except (CVSSError, ValueError, TypeError, KeyError, IndexError, ArithmeticError):
        return None


def from_vectors(entries: Iterable[Any]) -> Scored | None:
    """The severity of the best-scored CVSS vector in an OSV ``severity`` list (v4, then v3, then
    v2); an entry of another type whose score is a word (Ubuntu's) counts when no vector does."""
    vectors = {e.get("type"): e.get("score") for e in entries if isinstance(e, Mapping)}
    for kind in _SCORERS:
        vector = vectors.get(kind)
        if not isinstance(vector, str):
            continue
        score = base_score(kind, vector.strip())
        if score is None:
            continue  # a malformed vector: try the next kind, then the database's word
        return Scored(band(score), score, vector.strip())
    for value in vectors.values():
        if (word := normalise(value)) is not None:
            return Scored(word)
    return None


def of_advisory(data: Mapping[str, Any]) -> Scored:
    """An OSV advisory's own severity: its vectors, else ``database_specific.severity``."""
    entries = data.get("severity")
    scored = from_vectors(entries) if isinstance(entries, list) else None
    return scored or _word_of(data) or UNKNOWN


def of_affected(data: Mapping[str, Any]) -> str | None:
    """An ``affected`` entry's own severity (used when the advisory has none): its vectors, else
    its ``database_specific`` or ``ecosystem_specific`` severity word."""
    entries = data.get("severity")
    scored = from_vectors(entries) if isinstance(entries, list) else None
    scored = scored or _word_of(data)
    return scored.severity if scored is not None else None


def _word_of(data: Mapping[str, Any]) -> Scored | None:
    for key in ("database_specific", "ecosystem_specific"):
        specific = data.get(key)
        if isinstance(specific, Mapping) and (word := normalise(specific.get("severity"))) is not None:
            return Scored(word)
    return None
