"""Place-aware questions, locality filters with the places under them, and filter errors."""

from __future__ import annotations

import gzip
import json

import pytest

from policyrag.cli import main
from policyrag.ingest.doctype import is_plenary
from policyrag.search.filtering import Filters, plenary
from policyrag.search.retrieval import QueryError
from tests.conftest import SEED_LOCALITIES

LIANDU, LISHUI, LUQIAO, ZONE, WENZHOU = SEED_LOCALITIES


def _localities(hits) -> set[str]:
    return {h.locality for h in hits}


def test_a_place_named_in_the_question_limits_the_search_to_it(engine):
    s = engine.searcher()
    plan = s.plan("路桥如何吸引民间投资？")
    assert plan.named == ["路桥区"] and "路桥区" in plan.notice
    assert _localities(engine.search("路桥如何吸引民间投资？", 10)) == {"路桥区"}
    # …and the user can lift it: then other reports compete again.
    assert len(_localities(engine.search("路桥如何吸引民间投资？", 10, places=False))) > 1


@pytest.mark.parametrize("question", ["How does Luqiao plan to attract private investment?",
                                      "路橋如何吸引民間投資？"])
def test_english_and_traditional_place_names_limit_the_search_too(engine, question):
    assert _localities(engine.search(question, 8)) == {"路桥区"}


@pytest.mark.parametrize("question", [
    "How does the Lishui Development Zone help firms sell abroad?",
    "What does the Lishui Economic-Technological Development Zone ask of its officials?",
    "Which reform does the Lishui ETDZ treat as its No. 1 project?"])
def test_a_zone_named_in_english_is_the_zone_not_its_city(engine, question):
    assert _localities(engine.search(question, 8)) == {"丽水经开区"}
    # The city's own name, alone, still means the city and the places under it.
    assert len(_localities(engine.search("How does Lishui help firms sell abroad?", 20))) > 1


def test_the_translator_sees_the_zone_by_its_chinese_name():
    from policyrag.search.translate import _without_places

    question, named = _without_places("What does the Lishui economic development zone ask "
                                      "leaders to do?", list(SEED_LOCALITIES.values()))
    assert named == ["丽水经开区"] and "Lishui" not in question


def test_a_city_includes_its_districts_and_zones(engine):
    hits = engine.search("改革", 40, Filters(localities=["丽水"]))
    assert _localities(hits) == {"莲都区", "丽水市", "丽水经开区"}
    assert _localities(engine.search("改革", 40, Filters(localities=["Lishui"]))) == \
        {"莲都区", "丽水市", "丽水经开区"}
    # The zone alone is not its city.
    assert _localities(engine.search("改革", 40, Filters(localities=["丽水经开区"]))) == \
        {"丽水经开区"}


def test_a_province_includes_every_place_under_it(engine):
    assert _localities(engine.search("改革", 60, Filters(localities=["浙江"]))) == \
        set(SEED_LOCALITIES.values())


def test_a_named_place_without_reports_is_said_with_the_nearest_names(engine):
    plan = engine.searcher().plan("深圳市如何推进住房保障？")
    assert plan.missing == ["深圳市"] and plan.named == []
    assert "深圳市" in plan.notice and "all reports were searched" in plan.notice
    assert engine.search("深圳市如何推进住房保障？", 3)  # searched everything, said so


@pytest.mark.parametrize("question, missing", [
    ("How is Shenzhen making housing affordable?", ["深圳市"]),
    ("What is Guangdong doing for manufacturing?", ["广东省"]),
    # Two cities are spelt Suzhou (苏州, 宿州): neither has reports here, so both are said.
    ("How does Suzhou develop its economy?", ["宿州市", "苏州市"]),
])
def test_a_place_named_in_english_without_reports_is_said(engine, question, missing):
    plan = engine.searcher().plan(question)
    assert sorted(plan.missing) == missing and plan.named == []
    assert all(m in plan.notice for m in missing) and "all reports were searched" in plan.notice
    assert engine.search(question, 3)  # searched everything, said so


@pytest.mark.parametrize("question", [
    "How does Taizhou's Luqiao district attract investment?",  # 台州 (Luqiao's city), not 泰州
    "How does Lishui plan to raise incomes?",
    "How do localities attract private investment?",
])
def test_an_english_name_of_an_indexed_place_is_not_said_to_be_missing(engine, question):
    assert engine.searcher().plan(question).missing == []


def test_ordinary_words_that_are_also_county_names_are_not_places(engine):
    # 富裕 is a county in Heilongjiang and a word in 共同富裕.
    plan = engine.searcher().plan("如何推进共同富裕？")
    assert plan.named == [] and plan.missing == [] and plan.notice is None


def test_masks_equal_the_per_document_rule(engine):
    view = engine.index.view()
    chunks = engine.index.chunks
    docs = engine.index.documents
    for f in (Filters(localities=["丽水"]), Filters(localities=["Wenzhou", "莲都"]),
              Filters(date_from="2024-01"), Filters(date_to="2021"),
              Filters(doc_ids=[next(iter(docs))]), Filters(localities=["浙江"], date_from="2024"),
              Filters(plenary=True, doc_types=["communique"])):
        expected = [i for i, c in enumerate(chunks) if f.admits(docs[c.doc_id])]
        assert view.rows(f).tolist() == expected, f


def test_a_plain_string_is_one_locality_not_a_list_of_letters():
    assert Filters(localities="Wenzhou").localities == ["Wenzhou"]
    assert Filters(doc_ids="abc", doc_types="news").doc_ids == ["abc"]


@pytest.mark.parametrize("filters, message", [
    (Filters(date_from="2024-13-45"), "'2024-13-45' is not a date"),
    (Filters(date_to="abc"), "'abc' is not a date"),
    (Filters(localities=["Wenzou"]), "nearest known: 温州市"),
    (Filters(doc_ids=["000_e9f0a6d5a56f891"]), "nearest: 000_e9f0a6d5a56f891f"),
])
def test_bad_filter_values_are_errors_naming_them(engine, filters, message):
    with pytest.raises(QueryError, match=message):
        engine.search("改革", 5, filters)


def test_k_zero_is_an_error_not_the_default(engine):
    with pytest.raises(QueryError, match="at least 1"):
        engine.search("改革", 0)


def test_cli_filter_errors_exit_2_and_name_the_value(cli):
    for argv, needle in ((["--from", "2024-13-45"], "2024-13-45"),
                         (["--locality", "Wenzou"], "温州市"), (["-k", "0"], "at least 1")):
        rc, out, err = cli("search", "改革", *argv)
        assert rc == 2 and needle in err, (argv, err)


def test_cli_says_which_filter_left_nothing(cli):
    rc, out, _ = cli("search", "改革", "--from", "2031")
    assert rc == 0 and "date filter" in out


def test_cli_shows_the_place_filter_and_lifts_it(cli):
    rc, out, _ = cli("search", "路桥如何吸引民间投资？", "--json")
    data = json.loads(out)
    assert "路桥区" in data["scope"] and {h["locality"] for h in data["hits"]} == {"路桥区"}
    rc, out, _ = cli("search", "路桥如何吸引民间投资？", "--all-places", "--json", "-k", "10")
    data = json.loads(out)
    assert "scope" not in data and len({h["locality"] for h in data["hits"]}) > 1


def test_cli_answer_to_a_place_question_is_headed_by_that_place(cli):
    rc, out, _ = cli("ask", "路桥如何吸引民间投资？")
    assert rc == 0
    assert "== 路桥区 ·" in out and "All localities" not in out


def _collection(path, rows) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


REGULATION = ("温州市烟花爆竹安全管理条例\n第一条 为了加强烟花爆竹安全管理,预防安全事故,根据有关法律、"
              "法规,结合本市实际,制定本条例。\n第二条 本市行政区域内烟花爆竹的生产、经营、运输、燃放,"
              "适用本条例。\n第三条 下列场所禁止燃放烟花爆竹:(一)国家机关办公场所;(二)文物保护单位;"
              "(三)车站、码头等交通枢纽。全市要把安全生产作为重点工作,压实责任。\n")


def test_collections_build_and_comparisons_leave_out_regulations(tmp_path, seed_copy, embedder,
                                                                 capsys):
    """A JSON Lines collection is one input; its regulation is searchable but is no
    locality's priorities in the by-locality comparison."""
    from policyrag.answer.extractive import Answerer
    from policyrag.engine import Engine

    coll = tmp_path / "more.jsonl.gz"
    _collection(coll, [{"id": "reg-1", "title": "温州市烟花爆竹安全管理条例", "text": REGULATION,
                        "doc_type": "regulation", "locality": "温州市"},
                       {"text": "   "}])
    root = tmp_path / "idx"
    # The blank line is skipped and named by file and line; the rest is indexed.
    assert main(["index", "build", str(seed_copy), str(coll), "--index", str(root)]) == 1
    assert "more.jsonl.gz:2" in capsys.readouterr().err
    eng = Engine(root)
    eng._embedder = embedder
    reg = eng.index.documents["reg-1"]
    assert reg.source.endswith("more.jsonl.gz#reg-1") and reg.doc_type == "regulation"
    assert any(h.doc_id == "reg-1" for h in eng.search("燃放烟花爆竹的禁止场所", 5))
    answer = Answerer(eng).ask("各地区分别把哪些工作作为重点？", by_locality=True)
    cited = {c.doc_id for loc in answer.localities for p in loc.points for c in p.citations}
    assert "reg-1" not in cited and len(answer.localities) == 5
    # Asked for, regulations are compared too.
    typed = Answerer(eng).ask("烟花爆竹", by_locality=True,
                              filters=Filters(doc_types=["regulation"]))
    assert [loc.locality for loc in typed.localities] == ["温州市"]


def test_by_locality_lists_only_localities_whose_reports_answer(engine):
    from policyrag.answer.extractive import Answerer

    # Only Wenzhou's report speaks of its four ports and its southern gateway.
    groups = engine.searcher().search_by_locality("四港联动 南大门", 3)
    assert list(groups) == ["温州市"]
    assert all(h.locality == "温州市" for h in groups["温州市"])
    every = engine.searcher().search_by_locality("四港联动 南大门", 3, every=True)
    assert set(every) == set(SEED_LOCALITIES.values())
    # A priorities question is answered by every locality, cities before districts and zones.
    answer = Answerer(engine).ask("各地区分别把哪些工作作为重点？", by_locality=True)
    names = [a.locality for a in answer.localities]
    assert sorted(names[:2]) == ["丽水市", "温州市"] and set(names) == set(SEED_LOCALITIES.values())


@pytest.mark.parametrize("question, kind, allowed", [
    ("哪个区说本地经济是从老百姓那里起步、靠民间兴旺起来的?", "districts and counties",
     {"莲都区", "路桥区"}),
    ("哪個開發區要讓企業儘早納入統計?", "development zones", {"丽水经开区"}),
    ("经开区怎样保证重点工程的用地和钱?", "development zones", {"丽水经开区"}),
    ("Which city wants to be the southern gateway of the Yangtze River Delta?", "cities",
     {"丽水市", "温州市"}),
    # "The district" / 市里, unnamed: a government at that level speaks.
    ("区里对干部队伍建设提出了什么要求?", "districts and zones", {"莲都区", "路桥区", "丽水经开区"}),
    ("該區的項目庫除了近期可實施，還要做到什麼?", "districts and zones",
     {"莲都区", "路桥区", "丽水经开区"}),
    ("What does the mayor want the city to do about investment?", "cities", {"丽水市", "温州市"}),
    ("市里在文化和旅游方面有什么打算?", "cities", {"丽水市", "温州市"}),
    # The pointer after a leading phrase, in either script.
    ("在法治和民主方面,區裡打算怎麼做?", "districts and zones", {"莲都区", "路桥区", "丽水经开区"}),
    ("在双循环格局中,市里要当好什么角色?", "cities", {"丽水市", "温州市"}),
    ("How will the zone keep track of new risks as it develops?", "development zones",
     {"丽水经开区"}),
])
def test_a_question_asking_which_kind_of_place_searches_those_reports(engine, question, kind,
                                                                      allowed):
    plan = engine.searcher().plan(question)
    assert plan.asked_kind == kind and kind in plan.notice
    assert _localities(engine.search(question, 10)) <= allowed


@pytest.mark.parametrize("question", ["社区里的养老服务怎么改善?", "城市里的老旧小区怎样改造?",
                                      "市区里的交通怎样改善?", "为全省大局多作贡献指的是什么?"])
def test_words_that_only_contain_a_pointer_ask_about_no_level(engine, question):
    """社区里 is "in the community", not 区里 ("the district"); 全省 after the start speaks of
    the level above the one that says it."""
    plan = engine.searcher().plan(question)
    assert plan.asked_kind is None and plan.filters.is_empty()


def test_a_question_about_a_plenary_session_searches_the_communiques(engine):
    """“全会…” / "the plenary": what a plenary session said is in its communiqué, not in news
    or regulations; said in the notice, and lifted with the place filter."""
    plan = engine.searcher().plan("全会要求对老百姓的呼声作出怎样的回应?")
    assert plan.plenum and plan.filters.doc_types == ["communique"]
    assert "communiqués" in plan.notice
    assert engine.searcher().plan("How does the plenary describe this year?").plenum
    assert not engine.searcher().plan("全会要求怎样?", places=False).plenum
    assert not engine.searcher().plan("民间投资怎样扩大?").plenum


STATE_COUNCIL = ("李克强主持召开国务院常务会议\n"
                 "国务院总理李克强主持召开国务院常务会议。会议要求,各部门要认真回应群众呼声和诉求,"
                 "对群众反映强烈的问题限时办结,回应群众呼声要快,回应群众诉求要实。\n")


@pytest.mark.parametrize("title, meeting, opening, expected", [
    ("区委七届六次全体(扩大)会议暨区政府全体会议举行", "", "", True),
    ("", "中共青田县委十四届六次全体（扩大）会议", "", True),
    ("九三学社十四届六中全会在京召开（新闻联播 20221218）", "", "", True),
    # A communiqué headed only "公报" speaks as the session does.
    ("公报", "", "会议由县委常委会主持。全会听取和讨论了县委常委会工作报告。", True),
    ("李克强主持召开国务院常务会议", "国务院常务会", "会议指出,要回应群众呼声。", False),
    ("中共中央政治局召开会议 讨论拟提请十九届二中全会审议的文件", "", "", False),
    # News of studying a plenum quotes it, and is still not one.
    ("李克强主持召开国务院党组会议 学习贯彻党的十九届六中全会精神", "国务院党组会",
     "会议强调。全会审议通过的决议是新时代的纲领性文献。", False),
])
def test_which_documents_are_about_a_plenary_session(title, meeting, opening, expected):
    assert is_plenary(title, meeting, opening) is expected


def test_a_plenary_question_is_not_answered_from_another_meeting(index_copy, embedder, tmp_path):
    """News of a State Council executive meeting is a meeting communiqué too; a question about
    what the plenary session (全会) asked searches the plenary sessions' communiqués, said in the
    notice, and --all-places lifts it."""
    from policyrag.engine import Engine

    coll = tmp_path / "meeting.jsonl.gz"
    with gzip.open(coll, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "state-council", "text": STATE_COUNCIL,
                             "doc_type": "communique"}, ensure_ascii=False) + "\n")
    eng = Engine(index_copy)
    eng._embedder = embedder
    eng.add([coll])
    question = "全会要求怎样回应群众呼声和诉求?"
    plan = eng.searcher().plan(question)
    assert plan.filters.plenary and "plenary sessions' communiqués" in plan.notice
    hits = eng.search(question, 10)
    assert hits and "state-council" not in {h.doc_id for h in hits}
    assert all(plenary(eng.index.documents[h.doc_id]) for h in hits)
    assert eng.search(question, 1, places=False)[0].doc_id == "state-council"


def test_the_kind_of_place_asked_about_is_a_filter_that_can_be_lifted(engine):
    question = "哪个区说本地经济是从老百姓那里起步?"
    assert engine.searcher().plan(question, places=False).filters.is_empty()
    assert len(_localities(engine.search(question, 20, places=False))) > 2


QINGTIAN = ("中共青田县委十四届六次全体（扩大）会议召开\n"
            "12月28日，中共青田县委十四届六次全体（扩大）会议召开。全会深入学习贯彻党的二十届三中全会精神，"
            "总结今年工作，部署明年任务。\n"
            "全会强调，明年要重点抓好以下工作：一是做强侨乡经济，推动华侨要素回流，建设进口商品城；"
            "二是做优石雕文化，擦亮千年石雕金名片；三是做实生态富民，发展稻鱼共生系统。\n"
            "会议强调，我县要在丽水建设共同富裕示范区进程中作出青田贡献。\n")


def test_an_added_county_report_is_compared_and_found_by_its_locality(fresh_index, embedder,
                                                                       tmp_path):
    """A county the seeds do not cover: placed by its issuing body (中共青田县委), listed in the
    by-locality comparison, and found with --locality Qingtian and under 丽水."""
    from policyrag.answer.extractive import Answerer
    from policyrag.engine import Engine

    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "qingtian.txt").write_text(QINGTIAN, "utf-8")
    eng = Engine(fresh_index)
    eng._embedder = embedder
    eng.add([tmp_path / "new"])
    doc = eng.index.documents["qingtian"]
    assert (doc.locality, doc.locality_level, doc.locality_parent, doc.doc_type) == \
        ("青田县", "county", "丽水市", "communique")
    answer = Answerer(eng).ask("各地区分别把哪些工作作为重点？", by_locality=True)
    qingtian = next(a for a in answer.localities if a.locality == "青田县")
    assert any("侨乡经济" in p.text for p in qingtian.points)
    assert _localities(eng.search("石雕", 5, Filters(localities=["Qingtian"]))) == {"青田县"}
    assert "青田县" in _localities(eng.search("石雕 侨乡", 20, Filters(localities=["丽水"])))


@pytest.mark.parametrize("text, name, found", [
    ("What does Zhejiang plan for private investment?", "浙江", True),
    ("What does Zhejiang plan for private investment?", "吉安", False),  # zhe-JIAN-g
    ("What did Nanjing's mayor say?", "安吉", False),                      # n-ANJI-ng
    ("What did Nanjing's mayor say?", "南京", True),
    ("How will Li Shui grow?", "丽水", True),
    ("What did Xi'an plan?", "西安", True),
    ("What did Lishui's party secretary ask?", "丽水", True),
])
def test_a_romanised_name_counts_only_as_whole_words(text, name, found):
    from policyrag.ingest.gazetteer import spelled_in, spelled_words

    assert spelled_in(name, spelled_words(text)) is found


JIAN = ("中共吉安市委全体（扩大）会议召开\n"
        "12月26日，中共吉安市委全体（扩大）会议召开。全会强调，要大力提振民间投资，"
        "支持民营企业发展壮大。\n")


def test_a_place_inside_another_name_is_not_searched(fresh_index, embedder, tmp_path):
    """"Zhejiang" holds "jian", a spelling of 吉安: a question about Zhejiang must not also
    search Ji'an's reports."""
    from policyrag.engine import Engine

    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "jian.txt").write_text(JIAN, "utf-8")
    eng = Engine(fresh_index)
    eng._embedder = embedder
    eng.add([tmp_path / "new"])
    assert eng.index.documents["jian"].locality == "吉安市"
    plan = eng.searcher().plan("What does Zhejiang plan for private investment?")
    assert plan.filters.localities == ["浙江省"]
    assert "吉安市" not in _localities(eng.search("What does Zhejiang plan for private "
                                                    "investment?", 10))
