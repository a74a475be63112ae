"""A document's date in ISO form: always with its year, or none at all.

Reads 2024-09-30, 2024年9月30日, 2024.9.30, compact 20150914 (新闻联播 20180220) and Chinese
numerals (二〇二四年一月十五日). A date written without its year (8月20日) is completed only
from what the text itself says about its time, and is then marked inferred.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

# Plenary sessions of the CPC Central Committee (year, month held): a report citing one as its
# guide dates from after it, which is all some reports say about their time.
PLENUMS = {
    "十八届二中": (2013, 2), "十八届三中": (2013, 11), "十八届四中": (2014, 10),
    "十八届五中": (2015, 10), "十八届六中": (2016, 10), "十八届七中": (2017, 10),
    "十九届一中": (2017, 10), "十九届二中": (2018, 1), "十九届三中": (2018, 2),
    "十九届四中": (2019, 10), "十九届五中": (2020, 10), "十九届六中": (2021, 11),
    "十九届七中": (2022, 10), "二十届一中": (2022, 10), "二十届二中": (2023, 2),
    "二十届三中": (2024, 7), "二十届四中": (2025, 10),
}
# Five-year plan periods named by their place in a plan: 十四五开局之年 is 2021.
_PLAN_START = {"十二五": 2011, "十三五": 2016, "十四五": 2021, "十五五": 2026}

_DIGITS = {c: str(i) for i, c in enumerate("〇一二三四五六七八九")} | {"○": "0", "零": "0", "Ｏ": "0"}
_CN_YEAR = r"[〇○零Ｏ一二三四五六七八九]{4}"
_CN_SMALL = r"[一二三四五六七八九十]{1,3}"
_CN_DATE = re.compile(rf"({_CN_YEAR})年({_CN_SMALL})月(?:({_CN_SMALL})日)?")
_FULL = re.compile(r"(?<!\d)((?:19|20)\d{2})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})(?!\d)日?")
_COMPACT = re.compile(r"(?<!\d)((?:19|20)\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?!\d)")
_MONTH_DAY = re.compile(r"(?<![\d年.\-/])(\d{1,2})月(\d{1,2})日")
# A date alone on the last line: a document's signature (Chinese numerals already converted).
_SIGNATURE = re.compile(r"(?:^|\n)\s*(?:19|20)\d{2}年\d{1,2}月\d{1,2}日\s*$")
_TITLE_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})年")
# Where a regulation's preamble (dates of adoption and amendment) ends.
_ARTICLES = re.compile(r"第一章|第一条")


def _small_number(text: str) -> int:
    """一 .. 三十一, as written in dates."""
    if "十" not in text:
        return int(_DIGITS[text])
    tens, _, units = text.partition("十")
    return (int(_DIGITS[tens]) if tens else 1) * 10 + (int(_DIGITS[units]) if units else 0)


def normalise(text: str) -> str:
    """Full-width digits to ASCII and Chinese-numeral dates to Arabic ones."""
    text = unicodedata.normalize("NFKC", text)

    def arabic(m: re.Match[str]) -> str:
        year = "".join(_DIGITS[c] for c in m[1])
        day = f"{_small_number(m[3])}日" if m[3] else ""
        return f"{year}年{_small_number(m[2])}月{day}"

    return _CN_DATE.sub(arabic, text)


def _iso(year: int, month: int, day: int) -> str | None:
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def full_dates(text: str, compact: bool = False) -> list[str]:
    """Every complete, valid date in `text`, in order; compact 20150914 only where asked for."""
    found = [(m.start(), _iso(int(m[1]), int(m[2]), int(m[3]))) for m in _FULL.finditer(text)]
    if compact:
        found += [(m.start(), _iso(int(m[1]), int(m[2]), int(m[3])))
                  for m in _COMPACT.finditer(text)]
    return [iso for _, iso in sorted(found) if iso]


def extract_date(head: str, tail: str = "", title: str = "",
                 regulation: bool = False) -> tuple[str | None, bool]:
    """(date, inferred) from the opening `head`, the closing `tail` (a signature's date) and
    the title. A regulation's date is its latest adoption or amendment in the preamble."""
    head, tail, title = normalise(head), normalise(tail), normalise(title)
    if regulation:
        m = _ARTICLES.search(head)
        dates = full_dates(head[: m.start() if m else 600])
        return (max(dates), False) if dates else (None, False)
    # A document's signature date (国务院 / 一九八一年五月二十三日) is when it was issued;
    # dates in its opening are those of the papers it answers or cites.
    signed = _SIGNATURE.search(tail[-60:])
    for text, compact in ((title, True), (signed[0] if signed else "", False),
                          (head[:300], True), (tail[-300:], False)):
        dates = full_dates(text, compact)
        if dates:
            return dates[0], False
    # "2025年政府工作报告": the year the title gives, when no day is written anywhere.
    if year := _TITLE_YEAR.search(title):
        return year[1], False
    return _completed(head)


def _completed(text: str) -> tuple[str | None, bool]:
    """A year-less 8月20日 completed from the plenum or plan period the text cites."""
    anchor = context_year(text)
    m = _MONTH_DAY.search(text[:400])
    if anchor is None:
        return None, False
    year, month = anchor
    if m is None:
        return str(year), True
    # A meeting held in a month before the plenum's own month comes from the next year.
    if int(m[1]) < month:
        year += 1
    iso = _iso(year, int(m[1]), int(m[2]))
    return (iso, True) if iso else (str(year), True)


def context_year(text: str) -> tuple[int, int] | None:
    """The latest (year, month) the text places itself after, from plenums and plan years."""
    cited = [when for key, when in PLENUMS.items() if key + "全会" in text]
    for plan, start in _PLAN_START.items():
        if re.search(rf"{plan}”?(?:规划)?(?:的)?开局之年", text):
            cited.append((start, 1))
        if re.search(rf"{plan}”?(?:规划)?(?:的)?收官之年", text):
            cited.append((start + 4, 1))
    return max(cited) if cited else None
