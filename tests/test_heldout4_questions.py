"""The fourth held-out question set (tests/data/heldout4_questions.jsonl) is usable as written.

Like the third set it asks in the mix users ask in (named places, pointers such as 区里 or "the
city", and questions only the content identifies), but about passages none of the four earlier
sets used, so that it measures search on questions nobody has tuned against. No retrieval is
run here: the set stays held out.
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

HELDOUT4 = DATA / "heldout4_questions.jsonl"
EARLIER = (DATA / "dev_questions.jsonl", DATA / "heldout_questions.jsonl",
           DATA / "heldout2_questions.jsonl", DATA / "heldout3_questions.jsonl")


def test_every_span_occurs_in_its_report_and_labels_match_the_text(seeds_dir):
    result = checker.check(HELDOUT4, seeds_dir)
    assert result.errors == []
    # Spans sit within 4-20 characters and each identifies one report only.
    assert result.warnings == []
    assert result.n == 60


def test_every_question_can_be_hit_by_a_chunk_of_its_report(seed_documents):
    assert unanswerable(HELDOUT4, seed_documents) == []


def test_every_question_has_all_fields_and_short_spans():
    assert [r["id"] for r in rows(HELDOUT4)] == [f"h4_{i:02d}" for i in range(1, 61)]
    assert field_problems(HELDOUT4) == []


def test_make_up_is_the_mix_users_ask_in():
    items = rows(HELDOUT4)
    assert Counter(r["lang"] for r in items) == {"zh-Hans": 24, "zh-Hant": 12, "en": 24}
    assert Counter(r["place"] for r in items) == {"named": 24, "none": 36}
    assert sum(bool(r.get("deictic")) for r in items) == 12
    kind = Counter(r["kind"] for r in items)
    assert set(kind) == {"fact", "paraphrase"} and min(kind.values()) >= 27
    assert set(Counter(r["doc"] for r in items).values()) == {12}


def test_questions_and_spans_are_new_to_all_earlier_sets():
    """No repeated question, and no span that contains, or is contained in, a span of the same
    report in the development set or any of the three earlier held-out sets."""
    assert reused(HELDOUT4, EARLIER) == []


def test_a_span_reused_from_the_third_held_out_set_is_caught(tmp_path):
    items = rows(HELDOUT4)
    earlier = next(r for r in rows(DATA / "heldout3_questions.jsonl")
                   if r["doc"] == items[0]["doc"])
    items[0]["spans"] = [earlier["spans"][0][1:]]  # a shorter span contained in the old one
    assert [hit[0] for hit in reused(write_rows(tmp_path / "bad.jsonl", items), EARLIER)] \
        == [items[0]["id"]]
