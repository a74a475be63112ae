"""Paths and names as shown to people: one line each, and no server paths in the web UI."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

# An absolute POSIX path inside a message (not a URL's //host): up to a quote, a space or the
# end; the ASCII punctuation that ends a sentence around it is not part of it.
_ABSOLUTE = re.compile(r"(?<![\w.~/:])/[^\s'\"]+(?<![.,;:)])")


def quoted(value: object) -> str:
    """`value` as it is when it prints on one line, else Python-quoted (a newline in a file
    name becomes \\n), so one name never breaks a line-per-item output."""
    text = str(value)
    return text if text.isprintable() else repr(text)


def relative(path: str | Path, bases: Iterable[Path]) -> str:
    """`path` relative to the first of `bases` that holds it, else just its file name."""
    p = Path(path)
    for base in bases:
        try:
            shown = p.relative_to(base).as_posix()
        except ValueError:
            continue
        return p.name if shown == "." else shown
    return p.name


def scrub(text: str, bases: Iterable[Path]) -> str:
    """`text` with every absolute path in it shown relative to `bases` (or by its name)."""
    bases = [b for b in bases]
    return _ABSOLUTE.sub(lambda m: relative(m.group(0), bases), text)
