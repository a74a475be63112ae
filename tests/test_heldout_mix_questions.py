"""The third, fourth and fifth held-out question sets
(tests/data/heldout{3,4,5}_questions.jsonl) are usable as written.

They are the sets meant to judge search once the five seed reports are buried among thousands
of other government texts, so besides the checks of the second set they must ask in the mix
users ask in: named places, pointers such as 区里 or "the city", and questions only the content
identifies. Each is about passages no earlier set used, so that it measures search on questions
nobody has tuned against. No retrieval is run here: the sets stay held out.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.devset_checker import checker
from tests.questionset_checks import (
    DATA,
    field_problems,
    reused,
    rows,
    unanswerable,
    write_rows,
)

EARLIER = [DATA / f"{name}_questions.jsonl"
           for name in ("dev", "heldout", "heldout2", "heldout3", "heldout4", "heldout5")]
# Each set: its file, its id prefix, and the sets written before it.
SETS = {"heldout3": (EARLIER[3], "h3", EARLIER[:3]),
        "heldout4": (EARLIER[4], "h4", EARLIER[:4]),
        "heldout5": (EARLIER[5], "h5", EARLIER[:5])}


@pytest.fixture(params=sorted(SETS))
def qset(request) -> tuple[Path, str, list[Path]]:
    return SETS[request.param]


def test_every_span_occurs_in_its_report_and_labels_match_the_text(qset, seeds_dir):
    result = checker.check(qset[0], seeds_dir)
    assert result.errors == []
    # Spans sit within 4-20 characters and each identifies one report only.
    assert result.warnings == []
    assert result.n == 60


def test_every_question_can_be_hit_by_a_chunk_of_its_report(qset, seed_documents):
    assert unanswerable(qset[0], seed_documents) == []


def test_every_question_has_all_fields_and_short_spans(qset):
    path, prefix, _ = qset
    assert [r["id"] for r in rows(path)] == [f"{prefix}_{i:02d}" for i in range(1, 61)]
    assert field_problems(path) == []


def test_make_up_is_the_mix_users_ask_in(qset):
    items = rows(qset[0])
    assert Counter(r["lang"] for r in items) == {"zh-Hans": 24, "zh-Hant": 12, "en": 24}
    assert Counter(r["place"] for r in items) == {"named": 24, "none": 36}
    assert sum(bool(r.get("deictic")) for r in items) == 12
    kind = Counter(r["kind"] for r in items)
    assert set(kind) == {"fact", "paraphrase"} and min(kind.values()) >= 27
    assert set(Counter(r["doc"] for r in items).values()) == {12}


def test_questions_and_spans_are_new_to_all_earlier_sets(qset):
    """No repeated question, and no span that contains, or is contained in, a span of the same
    report in the development set or an earlier held-out set."""
    path, _, earlier = qset
    assert reused(path, earlier) == []


@pytest.mark.parametrize("change", ["longer", "shorter"])
def test_a_span_reused_from_the_set_before_is_caught(qset, change, tmp_path):
    path, _, earlier = qset
    items = rows(path)
    old = next(r for r in rows(earlier[-1]) if r["doc"] == items[0]["doc"])["spans"][0]
    # A span that contains the old one, or one the old one contains.
    items[0]["spans"] = [old + "的" if change == "longer" else old[1:]]
    assert [hit[0] for hit in reused(write_rows(tmp_path / "bad.jsonl", items), earlier)] \
        == [items[0]["id"]]
