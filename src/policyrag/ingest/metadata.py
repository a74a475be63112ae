"""Extract a report's metadata: title, locality, date and meeting; let a sidecar override it."""

from __future__ import annotations

import datetime
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from policyrag.ingest import dates, doctype, locality
from policyrag.ingest.gazetteer import Place
from policyrag.script import to_simplified


@dataclass
class Metadata:
    title: str | None = None
    locality: str | None = None
    locality_level: str | None = None
    locality_parent: str | None = None
    date: str | None = None
    date_inferred: bool = False
    meeting: str | None = None
    doc_type: str | None = None


# A report names its place, date and meeting in its opening pages; reading only these keeps a
# 5 MB file from costing minutes of script conversion and gazetteer matching.
HEAD_CHARS = 20_000
# Where a signature and its date sit: the last lines.
TAIL_CHARS = 400


def extract(raw: str, cleaned: str, stated_title: str | None = None) -> Metadata:
    """`raw` still has bylines and dates the cleaner removes; `cleaned` is the report body.

    `stated_title` is a title given with the text (a web page's, a collection's `title`
    field, a sidecar's): it tells what the text is better than its first line does."""
    tail = _simple(raw[-TAIL_CHARS:]) if len(raw) > HEAD_CHARS else ""
    raw, cleaned = raw[:HEAD_CHARS], cleaned[:HEAD_CHARS]
    simple = to_simplified(cleaned)
    raw_simple = _simple(raw)
    tail = tail or raw_simple[-TAIL_CHARS:]
    title = stated_title or extract_title(cleaned)
    title_simple = _simple(title or "")
    kind = doctype.classify(title_simple, raw_simple)
    place = locality.issuing_place(raw_simple, title_simple, kind)
    date, inferred = dates.extract_date(raw_simple, tail, title_simple, kind == "regulation")
    return Metadata(
        title=title,
        locality=place.name if place else None,
        locality_level=place.level if place else None,
        locality_parent=place.parent if place else None,
        date=date,
        date_inferred=inferred,
        meeting=extract_meeting(simple, cleaned),
        doc_type=kind,
    )


def _simple(text: str) -> str:
    # Full-width brackets and digits (（新闻联播 ２０１８０２２０）) read as their ASCII forms.
    return to_simplified(unicodedata.normalize("NFKC", text))


_DATE_LINE = re.compile(r"[\d\s\-/.:年月日号]*$|\d{1,2}月|\d+[\-/.:]")


def extract_title(cleaned: str) -> str | None:
    first = cleaned.split("\n", 1)[0].strip()
    # "2025年政府工作报告" is a headline; "2021-08-20" or "8月20日" alone is a date line.
    is_headline = (4 <= len(first) <= 60 and not re.search(r"[。!?;]", first[:-1])
                   and not first.endswith(("。", ",")) and not _DATE_LINE.match(first))
    return first if is_headline else None


def extract_locality(raw_simple: str, title_simple: str) -> Place | None:
    """The issuing body's place in a simplified text (kept for callers that know no type)."""
    kind = doctype.classify(title_simple, raw_simple)
    return locality.issuing_place(raw_simple, title_simple, kind)


def extract_date(text: str) -> tuple[str | None, bool]:
    return dates.extract_date(text, text[-TAIL_CHARS:])


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
    return {k: {key: _plain(value) for key, value in v.items()}
            for k, v in data.items() if isinstance(v, dict)}


def _plain(value: object) -> object:
    """TOML reads bare dates and times (`published = 2021-01-05`) as Python objects, which
    the index's JSON rows cannot hold: they are kept as the ISO text the user wrote."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def front_matter(text: str) -> tuple[dict[str, str], str]:
    """Simple `key: value` front matter between --- lines at the top of a Markdown file."""
    m = re.match(r"\A---\n(.*?)\n---\n", text, re.S)
    if not m:
        return {}, text
    fields = dict(re.findall(r"^(\w+)\s*:\s*(.+?)\s*$", m.group(1), re.M))
    return fields, text[m.end():]
