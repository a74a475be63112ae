"""The second held-out question set (tests/data/heldout2_questions.jsonl) is usable as written.

Every span must be found the way the evaluator looks for it: in the normalised cleaned text of
its report (scripts/check_devset.py) and inside at least one chunk that the index cuts from that
report (`evaluation.relevant_counts`), else the question could never be scored as a hit. No
retrieval is run here: the set stays held out.
"""

from __future__ import annotations

from collections import Counter

from tests.devset_checker import checker
from tests.questionset_checks import (
    DATA,
    field_problems,
    reused,
    rows,
    unanswerable,
    write_rows,
)

HELDOUT2 = DATA / "heldout2_questions.jsonl"
EARLIER = (DATA / "dev_questions.jsonl", DATA / "heldout_questions.jsonl")


def test_every_span_occurs_in_its_report_and_labels_match_the_text(seeds_dir):
    result = checker.check(HELDOUT2, seeds_dir)
    assert result.errors == []
    assert result.n == 60


def test_every_question_can_be_hit_by_a_chunk_of_its_report(seed_documents):
    assert unanswerable(HELDOUT2, seed_documents) == []


def test_a_span_from_another_report_is_caught(tmp_path, seeds_dir, seed_documents):
    items = rows(HELDOUT2)
    items[0]["spans"] = ["五城五高地"]  # Wenzhou's phrase, put on a Liandu question
    bad = write_rows(tmp_path / "bad.jsonl", items)
    assert unanswerable(bad, seed_documents) == [items[0]["id"]]
    assert any(e.startswith(f"{items[0]['id']}: span") for e in checker.check(bad, seeds_dir).errors)


def test_every_question_has_all_fields_and_short_spans():
    assert [r["id"] for r in rows(HELDOUT2)] == [f"g{i:02d}" for i in range(1, 61)]
    assert field_problems(HELDOUT2) == []


def test_make_up_covers_languages_places_kinds_and_reports_evenly():
    items = rows(HELDOUT2)
    lang = Counter(r["lang"] for r in items)
    assert lang == {"zh-Hans": 25, "zh-Hant": 10, "en": 25}
    place = Counter(r["place"] for r in items)
    assert place["named"] >= 20 and place["none"] >= 20
    assert sum(bool(r.get("deictic")) for r in items) >= 10
    kind = Counter(r["kind"] for r in items)
    assert set(kind) == {"fact", "paraphrase"} and min(kind.values()) >= 25
    assert set(Counter(r["doc"] for r in items).values()) == {12}


def test_questions_and_spans_are_new_to_the_earlier_sets():
    """The set is held out only if it asks new things: no repeated question, and no span that
    contains, or is contained in, a span of the same report in an earlier set."""
    assert reused(HELDOUT2, EARLIER) == []
