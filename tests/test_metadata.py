"""Metadata extracted from the five seeds, and sidecar / front-matter overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from policyrag.documents import load_documents
from policyrag.gazetteer import find_places, same_place
from tests.conftest import SEED_LOCALITIES, SEEDS


@pytest.fixture(scope="module")
def docs():
    found, errors = load_documents([SEEDS])
    assert not errors
    return {d.doc_id: d for d in found}


def test_all_five_seeds_load_with_their_file_names_as_ids(docs):
    assert set(docs) == set(SEED_LOCALITIES)


@pytest.mark.parametrize(("doc_id", "locality"), SEED_LOCALITIES.items())
def test_locality_is_the_reports_own_not_every_place_it_mentions(docs, doc_id, locality):
    assert docs[doc_id].locality == locality


def test_locality_levels_and_parents(docs):
    assert docs["000_e9f0a6d5a56f891f"].locality_parent == "丽水市"
    assert docs["002_e8d0747b3dfad330"].locality_parent == "台州市"
    assert docs["003_44711a7aea527f8e"].locality_level == "zone"
    assert docs["004_c93a4296dfa4c8a6"].locality_level == "city"


def test_titles_only_from_headlines(docs):
    assert docs["000_e9f0a6d5a56f891f"].title == "区委十四届十一次全体(扩大)会议召开"
    assert docs["004_c93a4296dfa4c8a6"].title == "市委十二届十一次全体(扩大)会议举行"
    # These reports open with a dated sentence, not a headline.
    assert docs["001_758a5b4942a02065"].title is None
    assert docs["003_44711a7aea527f8e"].title is None
    assert docs["003_44711a7aea527f8e"].display_title == "跨越式高质量发展推进会"


def test_dates_explicit_inferred_or_partial(docs):
    assert docs["002_e8d0747b3dfad330"].date == "2024-09-30"
    assert not docs["002_e8d0747b3dfad330"].date_inferred
    # 10月31日 + 二十届三中全会 (2024) -> 2024-10-31, marked as inferred.
    assert docs["001_758a5b4942a02065"].date == "2024-10-31"
    assert docs["001_758a5b4942a02065"].date_inferred
    # 8月20日 with no year and no plenum to place it: no date rather than half of one.
    assert docs["000_e9f0a6d5a56f891f"].date is None
    # Only 十九届五中全会 places it: the year.
    assert docs["004_c93a4296dfa4c8a6"].date == "2020"


def test_meetings(docs):
    assert docs["000_e9f0a6d5a56f891f"].meeting == "区委十四届十一次全体(扩大)会议"
    assert docs["003_44711a7aea527f8e"].meeting == "跨越式高质量发展推进会"
    assert "交流會" in docs["001_758a5b4942a02065"].meeting


def test_traditional_report_is_marked(docs):
    assert docs["001_758a5b4942a02065"].script == "traditional"
    assert docs["000_e9f0a6d5a56f891f"].script == "simplified"


def test_sidecar_overrides_extraction(tmp_path: Path):
    (tmp_path / "a.txt").write_text((SEEDS / "004_c93a4296dfa4c8a6.txt").read_text("utf-8"),
                                    "utf-8")
    (tmp_path / "metadata.toml").write_text(
        '["a.txt"]\ndate = "2020-12-29"\nlocality = "温州市"\nurl = "https://example.org/x"\n',
        "utf-8")
    (doc,), errors = load_documents([tmp_path])
    assert not errors
    assert doc.date == "2020-12-29" and doc.extra["url"] == "https://example.org/x"


def test_bad_sidecar_is_reported_not_fatal(tmp_path: Path):
    (tmp_path / "a.txt").write_text("莲都区召开会议。全区上下要抓好落实。", "utf-8")
    (tmp_path / "metadata.toml").write_text("this is = = not toml", "utf-8")
    docs, errors = load_documents([tmp_path])
    assert not docs and "metadata.toml" in str(errors[0])


def test_markdown_front_matter(tmp_path: Path):
    (tmp_path / "r.md").write_text("---\nlocality: 路桥区\ntitle: 路桥会议\n---\n会议强调,要抓好落实。",
                                   "utf-8")
    (doc,), _ = load_documents([tmp_path])
    assert doc.locality == "路桥区" and doc.title == "路桥会议"
    assert doc.text == "会议强调,要抓好落实。"


def test_common_words_that_are_county_names_are_not_localities():
    names = {m.place.name for m in find_places("建设共同富裕示范区,奋力前进,振兴乡村")}
    assert "富裕县" in names  # the raw gazetteer matches the word...
    docs_text = "区委全会召开。全区上下要建设共同富裕示范区,奋力前进,为莲都贡献力量。丽水市莲都区委"
    from policyrag.metadata import extract_locality

    assert extract_locality(docs_text, "").name == "莲都区"  # ...the report's own place wins


@pytest.mark.parametrize("query", ["莲都", "莲都区", "蓮都", "Liandu", "liandu"])
def test_locality_filter_names(query):
    assert same_place(query, "莲都区")
    assert not same_place(query, "丽水市")


def test_a_report_hundreds_of_pages_long_keeps_its_metadata(docs):
    from policyrag.metadata import extract

    seed = (SEEDS / "002_e8d0747b3dfad330.txt").read_text("utf-8")
    one = docs["002_e8d0747b3dfad330"]
    # 2.5 MB: the opening decides, as in the report itself (this once took 40 s).
    long = extract(seed * 300, one.text * 300)
    assert (long.locality, long.title, long.date, long.meeting) == \
        (one.locality, one.title, one.date, one.meeting)
