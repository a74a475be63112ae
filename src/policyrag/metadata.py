"""Extract a report's metadata: title, locality, date and meeting; let a sidecar override it."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .gazetteer import Mention, Place, find_places, short_name
from .script import to_simplified

# Words by which a report speaks of its own level of government.
LEVEL_CUES = {
    "county": ("区委", "全区", "我区", "区政府", "区长", "县委", "全县", "我县", "县政府", "县长"),
    "city": ("市委", "全市", "我市", "市政府", "市长"),
    "zone": ("党工委", "管委会", "经开区", "开发区", "高新区"),
}
# Plenary sessions of the CPC Central Committee by year: a report citing one as its guide dates
# from that year or just after, which is all some reports say about their time.
PLENUMS = {
    "十八届三中": 2013, "十八届四中": 2014, "十八届五中": 2015, "十八届六中": 2016,
    "十九届二中": 2018, "十九届三中": 2018, "十九届四中": 2019, "十九届五中": 2020,
    "十九届六中": 2021, "二十届一中": 2022, "二十届二中": 2023, "二十届三中": 2024,
    "二十届四中": 2025,
}


@dataclass
class Metadata:
    title: str | None = None
    locality: str | None = None
    locality_level: str | None = None
    locality_parent: str | None = None
    date: str | None = None
    date_inferred: bool = False
    meeting: str | None = None


# A report names its place, date and meeting in its opening pages; reading only these keeps a
# 5 MB file from costing minutes of script conversion and gazetteer matching.
HEAD_CHARS = 20_000


def extract(raw: str, cleaned: str) -> Metadata:
    """`raw` still has bylines and dates the cleaner removes; `cleaned` is the report body."""
    raw, cleaned = raw[:HEAD_CHARS], cleaned[:HEAD_CHARS]
    simple = to_simplified(cleaned)
    title = extract_title(cleaned)
    place = extract_locality(to_simplified(raw), to_simplified(title or ""))
    date, inferred = extract_date(to_simplified(raw))
    return Metadata(
        title=title,
        locality=place.name if place else None,
        locality_level=place.level if place else None,
        locality_parent=place.parent if place else None,
        date=date,
        date_inferred=inferred,
        meeting=extract_meeting(simple, cleaned),
    )


def extract_title(cleaned: str) -> str | None:
    first = cleaned.split("\n", 1)[0].strip()
    is_headline = (4 <= len(first) <= 60 and not re.search(r"[。!?;]", first[:-1])
                   and not first.endswith(("。", ",")) and not re.match(r"\d", first))
    return first if is_headline else None


def _qualifies(m: Mention, names_present: set[str], counts: Counter[str]) -> bool:
    """Short county names are often ordinary words (富裕, 前进): trust them only in context."""
    p = m.place
    if p.level in {"province", "zone"} or p.level == "city":
        return True
    return (counts[p.name] >= 2 and (p.parent in names_present or p.province in names_present)) \
        or p.parent in names_present


def extract_locality(raw_simple: str, title_simple: str) -> Place | None:
    body = find_places(raw_simple)
    counts = Counter(m.place.name for m in body)
    present = set(counts)
    mentions = [m for m in body if _qualifies(m, present, counts)]
    if not mentions:
        return None
    level = _own_level(raw_simple, title_simple, mentions)
    head = raw_simple[:300]
    score: Counter[str] = Counter()
    by_name: dict[str, Place] = {}
    for m in mentions:
        by_name[m.place.name] = m.place
        weight = 1 + (3 if m.place.short in title_simple else 0) + (1 if m.start < len(head) else 0)
        score[m.place.name] += weight
    for zone in (p for p in by_name.values() if p.level == "zone"):
        # A zone calls itself by its kind alone (经开区) far more often than by its full name.
        score[zone.name] += raw_simple.count(zone.name[len(short_name(zone.parent or "")):])
    ranked = [name for name, _ in score.most_common()]
    for wanted in _fallbacks(level):
        for name in ranked:
            if by_name[name].level == wanted:
                return by_name[name]
    return by_name[ranked[0]]


def _own_level(text: str, title: str, mentions: list[Mention]) -> str:
    cue = Counter()
    for level, words in LEVEL_CUES.items():
        cue[level] = sum(text.count(w) + 5 * title.count(w) for w in words)
    if any(m.place.level == "zone" for m in mentions) and cue["zone"] >= 3:
        return "zone"
    return "city" if cue["city"] > cue["county"] else "county"


def _fallbacks(level: str) -> tuple[str, ...]:
    return {"zone": ("zone", "county", "city"), "county": ("county", "zone", "city"),
            "city": ("city", "county", "zone")}[level]


def extract_date(text: str) -> tuple[str | None, bool]:
    m = re.search(r"(20\d{2}|19\d{2})[-/.年](\d{1,2})[-/.月](\d{1,2})日?", text)
    if m:
        return f"{int(m[1]):04d}-{int(m[2]):02d}-{int(m[3]):02d}", False
    year = _year_from_plenums(text)
    m = re.search(r"(\d{1,2})月(\d{1,2})日", text)
    if m and year:
        return f"{year:04d}-{int(m[1]):02d}-{int(m[2]):02d}", True
    if m:
        return f"--{int(m[1]):02d}-{int(m[2]):02d}", False  # ISO 8601's form for an unknown year
    return (str(year), True) if year else (None, False)


def _year_from_plenums(text: str) -> int | None:
    years = [y for key, y in PLENUMS.items() if key + "全会" in text]
    return max(years) if years else None


_MEETING = re.compile(
    r"([^,。;:!?\n“”]{0,30}?(?:“[^”]{1,20}”)?[^,。;:!?\n“”]{0,30}?"
    r"(?:会议|全会|推进会|交流会|座谈会|大会|务虚会|部署会|动员会|会))"
)


def extract_meeting(simple: str, original: str) -> str | None:
    """The meeting that the report is about: 'X会议召开/举行' or '召开X会'."""
    head = simple[:400]
    for pattern in (r"召开(?P<m>[^,。;\n]{2,40}?会)", r"(?P<m>[^,。;\n]{2,60}?会议?)(?:召开|举行)"):
        m = re.search(pattern, head)
        if m:
            start, end = m.span("m")
            text = original[start:end] if len(original) >= end else m["m"]
            return re.sub(r"^(?:\d{1,2}月\d{1,2}日(?:上午|下午)?|昨天|今天|日前|近日)", "", text)
    return None


def read_sidecar(folder: Path) -> dict[str, dict[str, object]]:
    """`metadata.toml` beside the reports: a table per file name whose keys override extraction."""
    path = folder / "metadata.toml"
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def front_matter(text: str) -> tuple[dict[str, str], str]:
    """Simple `key: value` front matter between --- lines at the top of a Markdown file."""
    m = re.match(r"\A---\n(.*?)\n---\n", text, re.S)
    if not m:
        return {}, text
    fields = dict(re.findall(r"^(\w+)\s*:\s*(.+?)\s*$", m.group(1), re.M))
    return fields, text[m.end():]
