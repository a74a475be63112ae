"""China's administrative divisions as a gazetteer: names, levels and parents.

The table is the one shipped inside the `cpca` wheel (adcode + name per division); codes give
the hierarchy: PPCCDD000000, province when CCDD is 0, city when DD is 0, otherwise a county or
district.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.metadata import distribution
from pathlib import Path

# Longest first so that 自治县 wins over 县.
_SUFFIXES = ("特别行政区", "自治区", "自治州", "自治县", "自治旗", "地区", "省", "市", "区",
             "县", "盟", "旗")
ZONE_KINDS = {"经济技术开发区": "经开区", "经济开发区": "经开区", "经开区": "经开区",
              "高新技术产业开发区": "高新区", "高新区": "高新区", "开发区": "开发区",
              "新区": "新区"}


_PLACEHOLDERS = {"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"}
LEVELS = ("national", "province", "city", "county", "zone")


@dataclass(frozen=True)
class Place:
    name: str          # full official name, e.g. 莲都区
    short: str         # the name as reports write it, e.g. 莲都
    level: str         # national | province | city | county | zone
    parent: str | None  # full name of the parent division
    province: str | None


# The whole country, for what the central party and state issue.
NATIONAL = Place("全国", "全国", "national", None, None)
# Municipalities are provinces that call themselves 市 (本市, 全市).
MUNICIPALITIES = {"北京市", "天津市", "上海市", "重庆市"}


def short_name(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


@lru_cache(maxsize=1)
def places() -> tuple[Place, ...]:
    # Located through the wheel's metadata: importing cpca itself needs pkg_resources.
    raw = Path(distribution("cpca").locate_file("cpca/resources/adcodes.csv")).read_text("utf-8")
    rows = [(r["adcode"], r["name"]) for r in csv.DictReader(io.StringIO(raw))]
    # Placeholders are no one's parent: a Beijing district's parent is 北京市, not 市辖区.
    by_code = {code[:6]: name for code, name in rows if name not in _PLACEHOLDERS}
    out = []
    for code, name in rows:
        prov, city, county = code[:2], code[2:4], code[4:6]
        if city == "00" and county == "00":
            level, parent = "province", None
        elif county == "00":
            level, parent = "city", by_code.get(prov + "0000")
        else:
            level = "county"
            parent = by_code.get(prov + city + "00") or by_code.get(prov + "0000")
        # Municipal districts (市辖区) and such placeholders are not places anyone writes.
        if name in _PLACEHOLDERS:
            continue
        out.append(Place(name, short_name(name), level, parent, by_code.get(prov + "0000")))
    return tuple(out)


@lru_cache(maxsize=1)
def _by_surface() -> dict[str, list[Place]]:
    table: dict[str, list[Place]] = {}
    for p in places():
        for surface in {p.name, p.short}:
            table.setdefault(surface, []).append(p)
    return table


@lru_cache(maxsize=1)
def _longest_surface() -> int:
    return max(map(len, _by_surface()))


@dataclass(frozen=True)
class Mention:
    place: Place
    start: int
    end: int


def _zone_at(text: str, kind_start: int, kind: str) -> Mention | None:
    """A development zone named after the place just before its kind word: 丽水 + 经开区."""
    table = _by_surface()
    for width in (3, 2):
        host = table.get(text[max(0, kind_start - width):kind_start])
        city = next((p for p in host or [] if p.level in {"city", "county"}), None)
        if city is not None and kind_start - width >= 0:
            name = city.short + ZONE_KINDS[kind]
            zone = Place(name, name, "zone", city.name, city.province)
            return Mention(zone, kind_start - width, kind_start + len(kind))
    return None


def find_places(text: str) -> list[Mention]:
    """Every mention of a known place in simplified text, longest match first, no overlaps."""
    table = _by_surface()
    kinds = sorted(ZONE_KINDS, key=len, reverse=True)
    mentions: list[Mention] = []
    i = 0
    while i < len(text):
        zone = next((z for k in kinds if text.startswith(k, i + 2) or text.startswith(k, i + 3)
                     for z in [_zone_at(text, i + (2 if text.startswith(k, i + 2) else 3), k)]
                     if z is not None and z.start == i), None)
        if zone is not None:
            mentions.append(zone)
            i = zone.end
            continue
        for width in range(min(_longest_surface(), len(text) - i), 1, -1):
            found = table.get(text[i:i + width])
            if found:
                mentions.extend(Mention(p, i, i + width) for p in found)
                i += width
                break
        else:
            i += 1
    return mentions


def same_place(query: str, locality: str | None) -> bool:
    """Whether a user's locality filter (莲都, 蓮都區, Liandu, 丽水经开区) names this locality."""
    if not locality:
        return False
    from policyrag.script import to_simplified

    q = to_simplified(query.strip()).lower().replace(" ", "")
    loc = to_simplified(locality)
    if q in {loc.lower(), short_name(loc).lower()} or short_name(q) == short_name(loc):
        return True
    return q in romanisations(loc) | romanisations(short_name(loc))


@lru_cache(maxsize=4096)
def romanisations(name: str) -> frozenset[str]:
    """Every toneless pinyin spelling of a name: 莲都 is liandu, though 都 alone reads dou."""
    from itertools import islice, product

    from pypinyin import Style, pinyin

    readings = pinyin(name, style=Style.NORMAL, heteronym=True)
    return frozenset("".join(p).lower() for p in islice(product(*readings), 64))


def spelled_words(text: str) -> frozenset[str]:
    """Each run of letters in `text`, alone and joined with the one or two after it: where a
    romanised place name can stand (Lishui, Li Shui, Xi'an), and not inside another word
    (jian in Zhejiang, anji in Nanjing)."""
    words = re.findall(r"[a-z]+", text.lower())
    return frozenset("".join(words[i:j]) for i in range(len(words))
                     for j in range(i + 1, min(len(words), i + 3) + 1))


def spelled_in(name: str, spelled: frozenset[str]) -> bool:
    """Whether `spelled` (see `spelled_words`) holds a pinyin spelling of `name` of four
    letters or more."""
    return any(len(r) >= 4 and r in spelled for r in romanisations(name))


@lru_cache(maxsize=1)
def _spelled_divisions() -> dict[str, tuple[Place, ...]]:
    """Provinces and prefecture-level cities by each pinyin spelling of their short name (four
    letters or more): the places an English question names by their romanised name."""
    table: dict[str, list[Place]] = {}
    for p in places():
        if p.level in ("province", "city"):
            for r in romanisations(p.short):
                if len(r) >= 4:
                    table.setdefault(r, []).append(p)
    return {r: tuple(ps) for r, ps in table.items()}


def spelled_divisions(spelled: frozenset[str]) -> list[tuple[Place, ...]]:
    """For each romanised province or city name in `spelled` (see `spelled_words`), the places
    it may name (Taizhou: 台州市 and 泰州市)."""
    table = _spelled_divisions()
    return [table[w] for w in sorted(spelled) if w in table]


# How English writes a development zone after its host's name: "Lishui Economic and
# Technological Development Zone", "Lishui Economic-Technological Development Zone", "Lishui
# ETDZ", "Lishui High-tech Zone", "Lishui Development Zone".
_ZONE_EN = (r"[\s-]+(?:economic[\s-]+(?:and[\s-]+)?technolog(?:ical|y)[\s-]+|economic[\s-]+|"
            r"high[\s-]*tech(?:nology)?[\s-]+(?:industrial[\s-]+)?|industrial[\s-]+)?"
            r"(?:development[\s-]+zone|development[\s-]+area|zone|etdz)\b")


@cache  # every search asks for each indexed place: hundreds at scale
def english_zone(zone: str) -> re.Pattern[str] | None:
    """The English forms of a development zone's name (丽水经开区: Lishui Development Zone …),
    or None when `zone` is no zone."""
    place = lookup(zone)
    if place is None or place.level != "zone" or not place.parent:
        return None
    hosts = sorted((r for r in romanisations(short_name(place.parent)) if len(r) >= 4),
                   key=len, reverse=True)
    return re.compile(rf"\b(?:{'|'.join(hosts)}){_ZONE_EN}", re.I) if hosts else None


def lookup(name: str, parent: str | None = None) -> Place | None:
    """The division a full or short name stands for; `parent` settles 朝阳区 (Beijing or Changchun).

    A development zone (丽水经开区) is not in the table: it is built from its host's name.
    """
    if name == NATIONAL.name:
        return NATIONAL
    found = _by_surface().get(name, [])
    exact = [p for p in found if p.name == name] or found
    if parent:
        exact = [p for p in exact if parent in {p.parent, p.province}] or exact
    if exact:
        return min(exact, key=lambda p: LEVELS.index(p.level))
    for kind, short in ZONE_KINDS.items():
        if name.endswith(kind) and len(name) > len(kind):
            host = lookup(name[: -len(kind)])
            if host is not None and host.level in {"city", "county"}:
                zone = host.short + short
                return Place(zone, zone, "zone", host.name, host.province)
    return None


def ancestors(name: str, parent: str | None = None) -> list[str]:
    """The chain of divisions above a place, nearest first: 莲都区 -> [丽水市, 浙江省]."""
    place = lookup(name, parent)
    chain: list[str] = []
    while place is not None and place.parent and place.parent not in chain:
        chain.append(place.parent)
        place = lookup(place.parent, place.province if place.parent != place.province else None)
    return chain
