"""Checks shared by the tests of the held-out question sets (no retrieval is run by any of them).

A question can only be scored as a hit if one of its spans lies inside a chunk that the index
cuts from its report, and a held-out set only measures something new if it neither repeats an
earlier question nor reuses an earlier span of the same report.
"""

from __future__ import annotations

import json
from pathlib import Path

from policyrag.config import Settings
from policyrag.evaluation import load_questions, normalise, relevant_counts
from policyrag.ingest.chunking import chunk_text
from policyrag.ingest.documents import Document

DATA = Path(__file__).resolve().parent / "data"
FIELDS = ("id", "q", "doc", "spans", "lang", "kind", "place")
SPAN_CHARS = (4, 30)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def write_rows(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), "utf-8")
    return path


def unanswerable(path: Path, docs: list[Document]) -> list[str]:
    """Ids of questions none of whose spans lies inside one chunk of their report."""
    settings = Settings()
    chunks = [(c.doc_id, c.text) for d in docs
              for c in chunk_text(d.doc_id, d.text, settings.chunk_max_chars,
                                  settings.chunk_overlap_chars)]
    questions = load_questions(path, {d.doc_id for d in docs})
    return [qid for qid, n in relevant_counts(questions, chunks).items() if n == 0]


def field_problems(path: Path) -> list[tuple]:
    """Questions with a missing field, a span outside SPAN_CHARS, or a misplaced "deictic"."""
    problems = []
    for r in rows(path):
        missing = [f for f in FIELDS if not r.get(f)]
        if missing:
            problems.append((r.get("id"), "missing", missing))
        long_or_short = [s for s in r.get("spans", ())
                         if not SPAN_CHARS[0] <= len(normalise(s)) <= SPAN_CHARS[1]]
        if long_or_short:
            problems.append((r["id"], "span length", long_or_short))
        # "deictic" marks a place-less question that points at its place ("the district").
        if r.get("deictic", False) not in (False, True) or (r.get("deictic")
                                                            and r["place"] != "none"):
            problems.append((r["id"], "deictic", r.get("deictic")))
    return problems


def reused(path: Path, earlier: tuple[Path, ...]) -> list[tuple]:
    """Questions asked before, and spans that contain, or are contained in, a span of the same
    report in an earlier set."""
    before = [r for p in earlier for r in rows(p)]
    asked = {r["q"] for r in before}
    used = [(r["doc"], normalise(s)) for r in before for s in r["spans"]]
    found = []
    for r in rows(path):
        if r["q"] in asked:
            found.append((r["id"], "question", r["q"]))
        for span in map(normalise, r["spans"]):
            clash = [u for doc, u in used if doc == r["doc"] and (span in u or u in span)]
            if clash:
                found.append((r["id"], span, clash))
    return found
