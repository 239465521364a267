"""Installed Python distributions, from their core metadata (packaging.python.org, "Core metadata").

pip and every installer since wheels write ``NAME-VERSION.dist-info/METADATA``; setuptools' older
installs (and Debian's python3-* packages) write ``NAME-VERSION.egg-info/PKG-INFO``, or a single
``NAME-VERSION.egg-info`` file with the same content. All are RFC 822-style headers; ``Name`` and
``Version`` say what is installed (whatever the directory is called), the license is
``License-Expression`` (an SPDX expression, metadata 2.4), else a one-line ``License``, else the
``License ::`` classifiers.
"""

from __future__ import annotations

from email.parser import HeaderParser

from dockyard.scan.purls import Installed

MAX_LICENSE_CHARS = 200  # longer "License:" values are the whole license text, not a name


def is_metadata(path: str) -> bool:
    """Whether ``path`` is a distribution's metadata file (dist-info, egg-info directory or file)."""
    return path.endswith((".dist-info/METADATA", ".egg-info/PKG-INFO", ".egg-info"))


def distribution(data: bytes) -> list[Installed]:
    """The distribution a METADATA / PKG-INFO file describes (none when it lacks Name or Version)."""
    head = data.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    message = HeaderParser().parsestr(head, headersonly=True)
    name, version = (message.get("Name") or "").strip(), (message.get("Version") or "").strip()
    if not name or not version:
        return []
    return [Installed("pypi", name, version, licenses=_licenses(message.get("License-Expression"),
                                                                message.get("License"),
                                                                message.get_all("Classifier") or []))]


def _licenses(expression: str | None, license_: str | None, classifiers: list[str]) -> tuple[str, ...]:
    if expression and expression.strip():
        return (expression.strip(),)
    if license_ and (text := license_.strip()) and "\n" not in text and len(text) <= MAX_LICENSE_CHARS \
            and text.upper() != "UNKNOWN":
        return (text,)
    return tuple(c.rsplit("::", 1)[1].strip() for c in classifiers if c.startswith("License ::") and "::" in c[10:])
