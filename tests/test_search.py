"""Search on the real default model and a real FAISS index of the seeds."""

from __future__ import annotations

import json

import pytest

from policyrag.cli import main
from policyrag.search.retrieval import Filters, QueryError
from tests.conftest import SEED_LOCALITIES, TRADITIONAL_SEED

HIT_FIELDS = {"doc_id", "source", "locality", "date", "title", "chunk_id", "text", "score",
              "start", "end"}


def top_doc(engine, query, **kw):
    return engine.search(query, 3, **kw)[0].doc_id


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_specific_question_finds_its_report(engine, mode):
    assert top_doc(engine, "路桥如何吸引民间投资", mode=mode) == "002_e8d0747b3dfad330"


def test_simplified_question_finds_traditional_report_and_shows_its_script(engine):
    hits = engine.search("奋斗实干、担当争先效能建设活动赛比争先", 3)
    assert hits[0].doc_id == TRADITIONAL_SEED
    assert "爭先" in hits[0].text  # shown in the report's own script


def test_traditional_question_finds_simplified_report(engine):
    assert top_doc(engine, "經開區如何抓雙招雙引") == "003_44711a7aea527f8e"
    assert top_doc(engine, "溫州五城五高地建設") == "004_c93a4296dfa4c8a6"


def test_english_questions_find_the_right_chinese_report(engine):
    assert top_doc(engine, "How does Luqiao plan to attract private investment?") == \
        "002_e8d0747b3dfad330"
    assert top_doc(engine, "Wenzhou's 14th five-year plan proposal") == "004_c93a4296dfa4c8a6"


def test_locality_filter_in_any_script_or_pinyin(engine):
    for name in ["温州", "溫州市", "Wenzhou"]:
        hits = engine.search("发展", 5, Filters(localities=[name]))
        assert hits and {h.locality for h in hits} == {"温州市"}


def test_date_and_document_filters(engine):
    hits = engine.search("改革", 10, Filters(date_from="2024-01-01"))
    assert hits and all(h.date >= "2024" for h in hits)
    assert {h.doc_id for h in engine.search("改革", 10, Filters(doc_ids=["000_e9f0a6d5a56f891f"]))} \
        == {"000_e9f0a6d5a56f891f"}
    # An unknown locality is an error that names it, not a silent empty result.
    with pytest.raises(QueryError, match="北京"):
        engine.search("改革", 5, Filters(localities=["北京"]))


def test_hit_offsets_point_into_the_cleaned_document(engine):
    for h in engine.search("生态环境保护", 5):
        assert engine.index.documents[h.doc_id].text[h.start:h.end] == h.text


def test_empty_query_is_refused(engine):
    with pytest.raises(QueryError):
        engine.search("  \x00 ", 3)


def test_cli_json_contract(index_dir, capsys):
    assert main(["search", "招商引资", "-k", "2", "--json", "--index", str(index_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"] == "招商引资" and len(out["hits"]) == 2
    assert set(out["hits"][0]) == HIT_FIELDS
    assert out["hits"][0]["locality"] in SEED_LOCALITIES.values()


def test_cli_batch_is_json_lines_in_input_order(index_dir, tmp_path, capsys):
    queries = ["温州十四五规划", "", "How does Luqiao attract private investment?", "莲都 产业"]
    batch = tmp_path / "q.txt"
    batch.write_text("\n".join(queries), "utf-8")
    assert main(["search", "--batch", str(batch), "-k", "3", "--json",
                 "--index", str(index_dir)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["query"] for x in lines] == [q for q in queries if q]
    assert all(len(x["hits"]) == 3 for x in lines)
    assert lines[0]["hits"][0]["locality"] == "温州市"


def test_cli_human_output_is_readable(index_dir, capsys):
    assert main(["search", "双招双引", "--index", str(index_dir), "--locality", "丽水经开区"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1. 丽水经开区 · 跨越式高质量发展推进会 · 2024-09-04")
    assert "双招双引" in out


def test_cli_missing_index_says_how_to_build(tmp_path, capsys):
    assert main(["search", "招商", "--index", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "no index at" in err and "policyrag index build" in err
