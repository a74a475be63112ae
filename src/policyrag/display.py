"""Paths, names and notes as shown to people: one line each, and no server paths in the web UI."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from policyrag.script import is_english

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


def quoted_in_chinese(question: str | None, mode: str, switch: str | None) -> str | None:
    """The note for an English question answered with the reports' own (Chinese) sentences;
    `switch` says how to get an English answer (None: no generative model, so there is none)."""
    if mode != "extractive" or not question or not is_english(question):
        return None
    note = "the points are the reports' own sentences, quoted in Chinese"
    if switch:
        note += (f"; {switch} gives an English answer (machine translation, checked against "
                 "these quotes)")
    return note
