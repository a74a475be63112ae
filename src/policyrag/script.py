"""Traditional/simplified Chinese: one simplified form for matching, the original for display."""

from __future__ import annotations

import re
from functools import lru_cache

# Characters that exist only in traditional script; a cheap test that avoids a full conversion.
_HINT = re.compile(r"[們個這來時會為與說對發經現點還學關開問從實產業區國長東樂運進過當號體]")


@lru_cache(maxsize=1)
def _t2s():
    from opencc import OpenCC

    return OpenCC("t2s")


@lru_cache(maxsize=1)
def _s2t():
    from opencc import OpenCC

    return OpenCC("s2t")


def to_simplified(text: str) -> str:
    return _t2s().convert(text) if text else text


def to_traditional(text: str) -> str:
    return _s2t().convert(text) if text else text


def detect_script(text: str) -> str:
    """'traditional' when converting to simplified changes a noticeable share of characters."""
    han = [ch for ch in text if "\u4e00" <= ch <= "\u9fff"]
    if not han:
        return "none"
    sample = "".join(han[:2000])
    changed = sum(a != b for a, b in zip(sample, to_simplified(sample), strict=False))
    return "traditional" if changed / len(sample) > 0.03 else "simplified"


_LATIN = re.compile(r"[A-Za-z]")
_HAN = re.compile(r"[\u4e00-\u9fff]")


def is_english(text: str) -> bool:
    """Mostly Latin letters: a question whose words are not the reports' words."""
    return len(_LATIN.findall(text)) > 3 * len(_HAN.findall(text))
