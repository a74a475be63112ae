"""Which chunks a search may return: filters checked, places resolved, masks made with numpy.

A locality filter names a place as users write it (丽水, 麗水, Lishui, 丽水经开区); it admits the
reports of that place and of every place under it (丽水 admits 莲都区 and 丽水经开区). A place
named in the question itself (“路桥如何…”, “How does Luqiao…”) becomes such a filter too, and
the caller shows it as applied, so the user can lift it.

Masks are computed once per distinct value (locality, type) and spread to chunks by array
indexing: the cost grows with the number of localities, not with the number of chunks.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cached_property

import numpy as np

from policyrag.ingest.doctype import DOC_TYPES, PLENARY_NAMES, is_plenary
from policyrag.ingest.gazetteer import (
    ancestors,
    english_zone,
    find_places,
    romanisations,
    same_place,
    short_name,
    spelled_divisions,
    spelled_in,
    spelled_words,
)
from policyrag.script import to_simplified

# Reports a locality's priorities can be read from; regulations and news cannot.
REPORT_TYPES = ("communique", "work_report", "report")
LEVELS = ("national", "province", "city", "county", "zone")
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


class FilterError(ValueError):
    """A filter value that names nothing; the message says which and what is accepted."""


@dataclass
class Filters:
    localities: list[str] | None = None
    doc_ids: list[str] | None = None
    date_from: str | None = None
    date_to: str | None = None
    doc_types: list[str] | None = None
    levels: list[str] | None = None  # locality levels: national, province, city, county, zone
    # Only plenary sessions' communiqués (全会, 全体（扩大）会议): set by a question that asks
    # what one said (see IndexView.plan), not a command-line filter.
    plenary: bool = False

    def __post_init__(self) -> None:
        # An API caller may pass one name as a plain string: "Wenzhou" is one place, not seven.
        for name in ("localities", "doc_ids", "doc_types", "levels"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [value] if value.strip() else None)
            elif value is not None:
                setattr(self, name, [str(v) for v in value if str(v).strip()] or None)
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            setattr(self, name, str(value).strip() or None if value is not None else None)

    def is_empty(self) -> bool:
        return self == Filters()

    def admits(self, doc) -> bool:
        """One document against the filters (the vectorised path is `IndexView.rows`)."""
        if self.localities and not any(place_admits(q, chain(doc)) for q in self.localities):
            return False
        if self.doc_ids and doc.doc_id not in self.doc_ids:
            return False
        if self.doc_types and (doc_type(doc) not in self.doc_types):
            return False
        if self.levels and doc.locality_level not in self.levels:
            return False
        if self.plenary and not plenary(doc):
            return False
        return date_admits(doc.date, self.date_from, self.date_to)


def doc_type(doc) -> str:
    # Indexes built before documents had a type were all read as reports, and still are.
    return getattr(doc, "doc_type", None) or "report"


# How much of a document's opening is read for a plenary communiqué's voice (全会认为…): its
# first paragraphs, where a communiqué says what the session heard, reviewed and decided.
PLENARY_OPENING = 1500


def plenary(doc) -> bool:
    """A plenary session's communiqué (ingest/doctype.py, is_plenary)."""
    if doc_type(doc) != "communique":
        return False
    opening = (getattr(doc, "text", None) or "")[:PLENARY_OPENING]
    return is_plenary(to_simplified(doc.title or ""),
                      to_simplified(getattr(doc, "meeting", None) or ""), to_simplified(opening))


def chain(doc) -> tuple[str, ...]:
    """The document's locality and every place above it: 莲都区, 丽水市, 浙江省."""
    if not doc.locality:
        return ()
    above = ancestors(doc.locality, doc.locality_parent) if doc.locality_parent else \
        ancestors(doc.locality)
    if doc.locality_parent and doc.locality_parent not in above:
        above = [doc.locality_parent, *ancestors(doc.locality_parent)]
    return (doc.locality, *above)


def place_admits(query: str, names: tuple[str, ...]) -> bool:
    return any(same_place(query, n) for n in names)


def date_admits(value: str | None, date_from: str | None, date_to: str | None) -> bool:
    if not (date_from or date_to):
        return True
    # Dates compare as ISO strings; a report with no known date passes no date filter.
    if not (value and value[:1].isdigit()):
        return False
    if date_from and value < date_from:
        return False
    return not (date_to and value[: len(date_to)] > date_to)


def check_date(value: str | None, flag: str) -> None:
    if value is None:
        return
    m = _DATE.match(value)
    ok = m is not None
    if ok and m[2]:
        try:
            date(int(m[1]), int(m[2]), int(m[3] or 1))
        except ValueError:
            ok = False
    if not ok:
        raise FilterError(f"{flag} {value!r} is not a date; write YYYY, YYYY-MM or YYYY-MM-DD "
                          "(e.g. 2024, 2024-09 or 2024-09-30)")


def nearest(word: str, known: list[str], n: int = 3) -> list[str]:
    """The known names closest to a misspelt one, by characters or by pinyin."""
    simple = to_simplified(word).lower().replace(" ", "")
    by_text = difflib.get_close_matches(simple, known, n=n, cutoff=0.4)
    spelled = {r: name for name in known for r in romanisations(short_name(name))}
    by_pinyin = [spelled[r] for r in difflib.get_close_matches(simple, list(spelled), n=n,
                                                               cutoff=0.6)]
    return list(dict.fromkeys(by_text + by_pinyin))[:n]


@dataclass
class PlacePlan:
    """What a question's place names did to the search, for the user to see."""

    filters: Filters
    named: list[str] = field(default_factory=list)     # places applied as a filter
    missing: list[str] = field(default_factory=list)   # named, but no report of them indexed
    suggestions: list[str] = field(default_factory=list)
    asked_kind: str | None = None  # “哪个区…”: the kind of place the question asks about
    # The document type the question asks about: "communique" for “全会…” (a plenary session),
    # "work_report" for “政府工作报告…”.
    asked_type: str | None = None
    year: str | None = None  # “2019年政府工作报告…”: the year of the report asked about
    year_missing: str | None = None  # such a year, but no report of it is indexed
    query: str = ""  # what to rank by: the question less the words that became filters

    @property
    def plenum(self) -> bool:
        return self.asked_type == "communique"

    @property
    def notice(self) -> str | None:
        narrowed = []  # (what was searched, why)
        if self.named:
            narrowed.append((f"reports of {', '.join(self.named)} and the places under it",
                             "named in the question"))
        if self.asked_kind:
            narrowed.append((f"reports of {self.asked_kind}", "the question asks about one"))
        if self.plenum:
            narrowed.append(("plenary sessions' communiqués" if self.filters.plenary else
                             "meeting communiqués", "the question asks about a plenary session"))
        if self.asked_type == "work_report":
            narrowed.append(("government work reports", "the question asks about one"))
        if self.year:
            narrowed.append((f"reports dated {self.year}",
                             "the question asks about a report of that year"))
        # One "searching only …" for all that was narrowed, and one way to lift it all.
        parts = [f"searching only {' and '.join(f'{what} ({why})' for what, why in narrowed)}; "
                 "--all-places to search everything"] if narrowed else []
        if self.year_missing:
            parts.append(f"no report dated {self.year_missing} is indexed, so all dates were "
                         "searched")
        if self.missing:
            near = f"; nearest known: {', '.join(self.suggestions)}" if self.suggestions else ""
            parts.append(f"no report of {', '.join(self.missing)} is indexed, so all reports "
                         f"were searched{near}")
        return "; ".join(parts) or None


class IndexView:
    """Per-index arrays for filtering: chunk -> document, document -> locality/type/date."""

    def __init__(self, documents: dict, chunk_doc_ids: list[str]) -> None:
        self.doc_ids = list(documents)
        position = {d: i for i, d in enumerate(self.doc_ids)}
        self.docs = [documents[d] for d in self.doc_ids]
        self.chunk_doc = np.fromiter((position[d] for d in chunk_doc_ids), np.int32,
                                     len(chunk_doc_ids))
        self.localities = sorted({d.locality for d in self.docs if d.locality})
        code = {name: i for i, name in enumerate(self.localities)}
        self.doc_loc = np.array([code.get(d.locality, -1) for d in self.docs], np.int32)
        self.types = sorted({doc_type(d) for d in self.docs})
        tcode = {t: i for i, t in enumerate(self.types)}
        self.doc_type = np.array([tcode[doc_type(d)] for d in self.docs], np.int32)
        self.dates = np.array([d.date if d.date and d.date[:1].isdigit() else "" for d in
                               self.docs], dtype="U10")
        self.plenary = np.fromiter((plenary(d) for d in self.docs), bool, len(self.docs))

    def level_rank(self, code: int) -> int:
        """Order of a locality code's level in a comparison: province first, unknown last."""
        if code < 0:
            return len(LEVELS)
        level = self.levels.get(self.localities[code])
        return LEVELS.index(level) if level in LEVELS else len(LEVELS) - 1

    @cached_property
    def levels(self) -> dict[str, str | None]:
        return {d.locality: d.locality_level for d in self.docs if d.locality}

    @cached_property
    def chains(self) -> dict[str, tuple[str, ...]]:
        first = {}
        for d in self.docs:
            if d.locality and d.locality not in first:
                first[d.locality] = chain(d)
        return first

    @cached_property
    def known_places(self) -> set[str]:
        """Every locality with reports here and every place above one."""
        return {name for names in self.chains.values() for name in names}

    # ---- validation -----------------------------------------------------------------------
    def validate(self, filters: Filters) -> None:
        check_date(filters.date_from, "--from")
        check_date(filters.date_to, "--to")
        for q in filters.localities or []:
            if not any(same_place(q, n) for n in self.known_places):
                near = nearest(q, sorted(self.known_places))
                hint = f"; nearest known: {', '.join(near)}" if near else ""
                raise FilterError(f"no report of locality {q!r} is indexed{hint} "
                                  "(see: policyrag index info)")
        known = set(self.doc_ids)
        for d in filters.doc_ids or []:
            if d not in known:
                near = difflib.get_close_matches(d, self.doc_ids, n=3, cutoff=0.5)
                hint = f"; nearest: {', '.join(near)}" if near else ""
                raise FilterError(f"no report with id {d!r} in the index{hint} "
                                  "(see: policyrag index info)")
        for level in filters.levels or []:
            if level not in LEVELS:
                raise FilterError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")
        for t in filters.doc_types or []:
            if t not in DOC_TYPES:
                raise FilterError(f"unknown document type {t!r}; choose from "
                                  f"{', '.join(DOC_TYPES)}")

    # ---- masks ----------------------------------------------------------------------------
    def locality_mask(self, wanted: list[str]) -> np.ndarray:
        """Per locality code: admitted by any wanted place (itself or an ancestor)."""
        return np.array([any(place_admits(q, self.chains[name]) for q in wanted)
                         for name in self.localities], dtype=bool)

    def doc_mask(self, filters: Filters) -> np.ndarray:
        ok = np.ones(len(self.docs), dtype=bool)
        if filters.localities:
            per_loc = np.append(self.locality_mask(filters.localities), False)
            ok &= per_loc[self.doc_loc]  # code -1 (no locality) picks the trailing False
        if filters.doc_ids:
            wanted = set(filters.doc_ids)
            ok &= np.array([d in wanted for d in self.doc_ids], dtype=bool)
        if filters.doc_types:
            per_type = np.array([t in filters.doc_types for t in self.types], dtype=bool)
            ok &= per_type[self.doc_type]
        if filters.levels:
            per_loc = np.append([self.levels.get(n) in filters.levels for n in self.localities],
                                False)
            ok &= per_loc[self.doc_loc]
        if filters.plenary:
            ok &= self.plenary
        if filters.date_from or filters.date_to:
            ok &= self.dates != ""
            if filters.date_from:
                ok &= self.dates >= filters.date_from
            if filters.date_to:
                cut = np.array([s[: len(filters.date_to)] for s in self.dates], dtype="U10")
                ok &= cut <= filters.date_to
        return ok

    def from_reports(self, rows: np.ndarray) -> np.ndarray:
        """Per chunk row: does it come from a report-type document (REPORT_TYPES)?"""
        per_type = np.array([t in REPORT_TYPES for t in self.types], dtype=bool)
        return per_type[self.doc_type[self.chunk_doc[rows]]]

    def rows(self, filters: Filters | None) -> np.ndarray | None:
        """Chunk rows the filters admit, or None when nothing is filtered."""
        if filters is None or filters.is_empty():
            return None
        return np.flatnonzero(self.doc_mask(filters)[self.chunk_doc]).astype(np.int64)

    def empty_because(self, filters: Filters) -> str:
        """Which filter left nothing: each one alone, then together."""
        alone = [("locality", Filters(localities=filters.localities)),
                 ("report", Filters(doc_ids=filters.doc_ids)),
                 ("type", Filters(doc_types=filters.doc_types)),
                 ("level", Filters(levels=filters.levels)),
                 ("plenary-session", Filters(plenary=filters.plenary)),
                 ("date", Filters(date_from=filters.date_from, date_to=filters.date_to))]
        for name, f in alone:
            if not f.is_empty() and not self.doc_mask(f).any():
                return f"no report matches the {name} filter ({_describe(f)})"
        return f"no report matches all the filters together ({_describe(filters)})"

    # ---- places in questions --------------------------------------------------------------
    def places_in(self, question: str) -> tuple[list[str], list[str]]:
        """(places named in the question that have reports here, named places with none).

        A bare short name (富裕, 前进 are also ordinary words) counts only when reports of that
        place are indexed; a full name with its suffix (富裕县) counts always.
        """
        simple = to_simplified(question)
        found, missing = [], []
        for m in find_places(simple):
            p = m.place
            written = simple[m.start:m.end]
            if p.name in self.known_places:
                found.append(p.name)
            elif written == p.name and p.level != "zone" and len(written) >= 3:
                missing.append(p.name)
        rest = question
        for name in self.known_places:  # "Lishui Development Zone" is the zone, not the city
            pattern = english_zone(name)
            if pattern is not None and pattern.search(rest):
                found.append(name)
                rest = pattern.sub(" ", rest)
        spelled = spelled_words(rest)
        if any(len(w) >= 4 for w in spelled):
            found += [name for name in self.known_places if spelled_in(short_name(name), spelled)]
            # "Xiamen" with no report of 厦门市 indexed is said, as 厦门市 written in full is;
            # a spelling that also names a known place (Taizhou: 台州市) names that one.
            missing += [p.name for named in spelled_divisions(spelled)
                        if not any(p.name in self.known_places for p in named) for p in named]
        found = _outermost_first(list(dict.fromkeys(found)))
        return found, [m for m in dict.fromkeys(missing) if m not in found]

    def plan(self, question: str, filters: Filters | None, auto: bool = True) -> PlacePlan:
        """How the question's own words narrow the search: the places it names or asks about,
        and the year of the report it asks about; none of it when `auto` is off (the user's
        --all-places) or the user chose those filters."""
        base = filters or Filters()
        plan = self._place_plan(question, base, auto)
        year = asked_year(question) if auto and not (base.date_from or base.date_to) else None
        if year is not None:
            dated = replace(plan.filters, date_from=year, date_to=year)
            plan = (replace(plan, filters=dated, year=year) if self.doc_mask(dated).any()
                    else replace(plan, year_missing=year))
        return replace(plan, query=without_filter_words(question, plan))

    def _place_plan(self, question: str, base: Filters, auto: bool) -> PlacePlan:
        if not auto or base.localities or base.doc_ids or base.levels:
            return PlacePlan(base)
        named, missing = self.places_in(question)
        suggestions = nearest(missing[0], sorted(self.known_places)) if missing else []
        doc_type = None if base.doc_types else asked_doc_type(question)
        if named:
            narrowed = replace(base, localities=named)
            typed = self._typed(narrowed, doc_type) if doc_type else narrowed
            if doc_type and self.doc_mask(typed).any():
                return PlacePlan(typed, named, missing, suggestions, asked_type=doc_type)
            return PlacePlan(narrowed, named, missing, suggestions)
        kind = asked_kind(question)
        if kind is None and doc_type is None:
            return PlacePlan(base, [], missing, suggestions)
        # Which government said or plans something is told by its own reports, not by news
        # of it, unless the user chose the types; what a plenary session said, by its
        # communiqué; what a government work report says, by the report.
        asked = replace(base, levels=list(ASKED[kind]) if kind else None,
                        doc_types=base.doc_types or list(REPORT_TYPES))
        if doc_type:
            asked = self._typed(asked, doc_type)
        if not self.doc_mask(asked).any():
            return PlacePlan(base, [], missing, suggestions)
        return PlacePlan(asked, [], missing, suggestions, kind, doc_type)

    def _typed(self, filters: Filters, doc_type: str) -> Filters:
        """Narrowed to the type of document asked about; for a plenary session, to the
        communiqués of plenary sessions where any is left (news of a Politburo or State Council
        executive meeting is a communiqué too, but not what a 全会 question asks about)."""
        typed = replace(filters, doc_types=[doc_type])
        if doc_type != "communique":
            return typed
        sessions = replace(typed, plenary=True)
        return sessions if self.doc_mask(sessions).any() else typed


# 区里 is "the district" anywhere in a question ("在法治和民主方面,区里打算怎么做?"), but not in
# 社区里, 园区里, 开发区里, 市区里 and the like; 全区 / 全市 only at the start, since "为全省大局作贡献" speaks
# of the level above.
_AREA_WORDS = "社园小城市街景校辖山郊新老矿厂营片专学开发高湾灾牧"

# “Which district / zone / locality …”: the levels of government such a question is about.
ASKED = {"districts and counties": ("county",), "development zones": ("zone",),
         "districts and zones": ("county", "zone"),
         "cities": ("city",), "provinces": ("province",),
         "local governments": ("province", "city", "county", "zone")}
# A question that asks which district/zone/city (哪个区…), or speaks of "the district" (区里,
# 该市, the zone) without naming it, is about the statements of a government at that level.
_ASKED_PATTERNS = [
    ("development zones", re.compile(r"哪[个些家](?:开发区|经开区|高新区|园区|新区)|"
                                     r"^(?:经开区|开发区|高新区|园区)|(?:该|这个)(?:开发区|园区)|"
                                     r"which (?:(?:development|economic|industrial|high-tech) )?"
                                     r"(?:zone|park)|\bthe (?:(?:development|economic) )?zone\b",
                                     re.I)),
    ("districts and counties", re.compile(r"哪[个些](?:区县|县区|区|县)|^全县|(?<!郡)县里|"
                                          r"(?:该|这个|本)县|which (?:district|county)|"
                                          r"\bthe county\b", re.I)),
    # A development zone's own report calls it 全区 / 该区 too.
    ("districts and zones", re.compile(rf"^全区|(?<![{_AREA_WORDS}])区里|(?:该|这个|本)区(?![域划])|"
                                       r"\bthe district\b", re.I)),
    ("cities", re.compile(r"哪[个些](?:城市|市)|^全市|(?<![城都超夜股楼门集])市里|(?:该|这个|本)市(?!场)|"
                          r"市委书记|市长|which city|\bthe city\b|\bthe mayor\b|"
                          r"\bcity party secretary\b", re.I)),
    ("provinces", re.compile(r"哪[个些]省|^全省|省里|which province|\bthe province\b", re.I)),
    ("local governments", re.compile(r"哪[个些](?:地方|地区)|哪里|"
                                     r"which (?:locality|localities|local|place|region)|"
                                     r"^where\b", re.I)),
]


_PLENUM = re.compile(rf"{PLENARY_NAMES}|\bplenary\b|\bplenum\b", re.I)


# In either script: without_filter_words removes it from the question as asked.
_WORK_REPORT = re.compile(r"政府工作[报報]告|\bgovernment work reports?\b", re.I)


def asks_plenum(question: str) -> bool:
    """The question is about what a plenary session (全会) said."""
    return bool(_PLENUM.search(to_simplified(question)))


def asked_doc_type(question: str) -> str | None:
    """The document type a question asks about by name: a plenary session's communiqué, or a
    government work report (a party committee's 工作报告 at a plenum is neither)."""
    if asks_plenum(question):
        return "communique"
    return "work_report" if _WORK_REPORT.search(to_simplified(question)) else None


# A year that dates the report asked about (“2019年政府工作报告”, “2024年区委全会”, "the 2015
# government work report"), not one the report speaks of (“2025年的各项指标”, "the 2035 goals").
_REPORT_WORDS_ZH = rf"(?:政府工作报告|工作报告|报告|{PLENARY_NAMES}|会议|公报|讲话)"
_YEAR_ZH = re.compile(rf"((?:19|20)\d\d)\s*年(?:度)?(?:召开的|发布的|的)?[\u4e00-\u9fff]{{0,6}}?"
                      rf"{_REPORT_WORDS_ZH}")
_REPORT_WORDS_EN = r"(?:work report|report|plenum|plenary|communiqu[eé]|meeting|speech)"
_YEAR_EN = re.compile(rf"\b((?:19|20)\d\d)(?:'s)?\s+(?:[a-z-]+\s+){{0,3}}?{_REPORT_WORDS_EN}s?\b|"
                      rf"\b{_REPORT_WORDS_EN}s?\s+(?:of|in|from|for)\s+((?:19|20)\d\d)\b", re.I)


def without_filter_words(question: str, plan: PlacePlan) -> str:
    """The question less the words its plan turned into filters: the report's year and
    "government work report". Left in, they rank each report's title and opening first (the
    passages that repeat them), over the passages about what was asked."""
    if not (plan.year or plan.asked_type == "work_report"):
        return question
    text = question
    if plan.year:
        text = re.sub(rf"{plan.year}\s*年度?|\b{plan.year}\b", " ", text)
    if plan.asked_type == "work_report":
        text = _WORK_REPORT.sub(" ", text)
    text = " ".join(text.split())
    return text if re.search(r"[\u4e00-\u9fff]{2}|[A-Za-z]{3}", text) else question


def asked_year(question: str) -> str | None:
    """The year of the report a question asks about, if it names one."""
    m = _YEAR_ZH.search(to_simplified(question)) or _YEAR_EN.search(question)
    return next((g for g in m.groups() if g), None) if m else None


def asked_kind(question: str) -> str | None:
    simple = to_simplified(question).strip()
    return next((kind for kind, pattern in _ASKED_PATTERNS if pattern.search(simple)), None)


def _outermost_first(names: list[str]) -> list[str]:
    """Drop a place already covered by another named one (丽水 covers 莲都)."""
    keep = []
    for n in names:
        above = set(ancestors(n))
        if not any(o in above for o in names if o != n):
            keep.append(n)
    return keep


def _describe(f: Filters) -> str:
    parts = []
    if f.localities:
        parts.append("locality " + ", ".join(f.localities))
    if f.doc_ids:
        parts.append("report " + ", ".join(f.doc_ids))
    if f.doc_types:
        parts.append("type " + ", ".join(f.doc_types))
    if f.levels:
        parts.append("level " + ", ".join(f.levels))
    if f.plenary:
        parts.append("plenary sessions only")
    if f.date_from or f.date_to:
        parts.append(f"dates {f.date_from or '…'} to {f.date_to or '…'}")
    return "; ".join(parts)
