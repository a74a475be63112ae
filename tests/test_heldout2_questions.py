"""The second held-out question set (tests/data/heldout2_questions.jsonl) is usable as written.

Every span must be found the way the evaluator looks for it: in the normalised cleaned text of
its report (scripts/check_devset.py) and inside at least one chunk that the index cuts from that
report (`evaluation.relevant_counts`), else the question could never be scored as a hit. No
retrieval is run here: the set stays held out.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from policyrag.config import Settings
from policyrag.evaluation import load_questions, normalise, relevant_counts
from policyrag.ingest.chunking import chunk_text
from policyrag.ingest.documents import load_documents
from tests.devset_checker import checker

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
HELDOUT2 = DATA / "heldout2_questions.jsonl"
EARLIER = (DATA / "dev_questions.jsonl", DATA / "heldout_questions.jsonl")
FIELDS = ("id", "q", "doc", "spans", "lang", "kind", "place")
SPAN_CHARS = (4, 30)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def docs(seeds_dir):
    loaded, errors = load_documents([seeds_dir])
    assert not errors
    return loaded


def unanswerable(path: Path, docs) -> list[str]:
    """Ids of questions none of whose spans lies inside one chunk of their report."""
    settings = Settings()
    chunks = [(c.doc_id, c.text) for d in docs
              for c in chunk_text(d.doc_id, d.text, settings.chunk_max_chars,
                                  settings.chunk_overlap_chars)]
    questions = load_questions(path, {d.doc_id for d in docs})
    return [qid for qid, n in relevant_counts(questions, chunks).items() if n == 0]


def test_every_span_occurs_in_its_report_and_labels_match_the_text(seeds_dir):
    result = checker.check(HELDOUT2, seeds_dir)
    assert result.errors == []
    assert result.n == 60


def test_every_question_can_be_hit_by_a_chunk_of_its_report(docs):
    assert unanswerable(HELDOUT2, docs) == []


def test_a_span_from_another_report_is_caught(tmp_path, seeds_dir, docs):
    rows = _rows(HELDOUT2)
    rows[0]["spans"] = ["五城五高地"]  # Wenzhou's phrase, put on a Liandu question
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    assert unanswerable(bad, docs) == [rows[0]["id"]]
    assert any(e.startswith(f"{rows[0]['id']}: span") for e in checker.check(bad, seeds_dir).errors)


def test_every_question_has_all_fields_and_short_spans():
    rows = _rows(HELDOUT2)
    assert [r["id"] for r in rows] == [f"g{i:02d}" for i in range(1, 61)]
    for r in rows:
        missing = [f for f in FIELDS if not r.get(f)]
        assert not missing, (r["id"], missing)
        assert all(SPAN_CHARS[0] <= len(normalise(s)) <= SPAN_CHARS[1] for s in r["spans"]), r
        # "deictic" marks a place-less question that points at its place ("the district").
        assert r.get("deictic", False) in (False, True)
        assert not (r.get("deictic") and r["place"] != "none"), r["id"]


def test_make_up_covers_languages_places_kinds_and_reports_evenly():
    rows = _rows(HELDOUT2)
    lang = Counter(r["lang"] for r in rows)
    assert lang == {"zh-Hans": 25, "zh-Hant": 10, "en": 25}
    place = Counter(r["place"] for r in rows)
    assert place["named"] >= 20 and place["none"] >= 20
    assert sum(bool(r.get("deictic")) for r in rows) >= 10
    kind = Counter(r["kind"] for r in rows)
    assert set(kind) == {"fact", "paraphrase"} and min(kind.values()) >= 25
    assert set(Counter(r["doc"] for r in rows).values()) == {12}


def test_questions_and_spans_are_new_to_the_earlier_sets():
    """The set is held out only if it asks new things: no repeated question, and no span that
    contains, or is contained in, a span of the same report in an earlier set."""
    earlier = [r for path in EARLIER for r in _rows(path)]
    asked = {r["q"] for r in earlier}
    used = [(r["doc"], normalise(s)) for r in earlier for s in r["spans"]]
    for r in _rows(HELDOUT2):
        assert r["q"] not in asked, r["id"]
        for span in map(normalise, r["spans"]):
            clash = [u for doc, u in used if doc == r["doc"] and (span in u or u in span)]
            assert not clash, (r["id"], span, clash)
