"""A question that names the year of the report it asks about (“2019年政府工作报告…”, "the 2015
government work report") searches the reports of that year, and one that names a government
work report searches work reports; both say so and can be lifted. A year the report merely
speaks of (“2025年的各项指标”) narrows nothing."""

from __future__ import annotations

import pytest

from policyrag.cli import main
from policyrag.engine import Engine
from policyrag.search.filtering import asked_doc_type, asked_year


@pytest.mark.parametrize("question, year", [
    ("2019年政府工作报告提出的增长目标是多少?", "2019"),
    ("浙江省2026年政府工作报告提出要建设哪些高地?", "2026"),
    ("2024年召开的區委全會部署了什麼?", "2024"),
    ("What growth target did the 2015 government work report set?", "2015"),
    ("What did the report of 2010 say about the financial crisis?", "2010"),
    # Years the report speaks of, not the report's own.
    ("哪次会议要求提前把2025年的各项指标谋划好?", None),
    ("哪次全会审议通过了2021—2025年行动方案?", None),
    ("Which city adopted the 2035 long-range goals at the 11th plenary?", None),
    ("How will the city reach its 2025 targets?", None),
])
def test_the_year_of_the_report_asked_about(question, year):
    assert asked_year(question) == year


@pytest.mark.parametrize("question, doc_type", [
    ("2018年政府工作报告的就业目标是多少?", "work_report"),
    ("What does the government work report say about jobs?", "work_report"),
    ("全会要求怎样抓落实?", "communique"),
    # A party committee's 工作报告 at a plenum is no government work report.
    ("Who delivered the work report at the district plenary session?", "communique"),
    ("区委工作报告提出了什么?", None),
])
def test_the_document_type_asked_about(question, doc_type):
    assert asked_doc_type(question) == doc_type


WORK_REPORT = ("2023年青田县人民政府工作报告\n"
               "——2023年1月10日在青田县第十八届人民代表大会第三次会议上\n"
               "县长 陈某\n各位代表：\n现在，我代表县人民政府向大会报告2023年政府工作，请予审议。\n"
               "一、2022年工作回顾\n过去一年，全县上下攻坚克难，经济社会发展取得新成效。"
               "地区生产总值稳步增长，一般公共预算收入持续增加，城乡居民收入稳步提高。"
               "重大项目加快推进，营商环境持续优化，民生实事全面完成。\n"
               "这一年，我们坚持项目为王，新开工亿元以上项目二十个，完成固定资产投资一百亿元。"
               "我们坚持改革创新，深化政务服务增值化改革，企业开办时间压缩到半天以内。\n"
               "二、2023年工作任务\n今年政府工作的重点是：加快建设侨乡进口商品城，"
               "办好华侨进口商品博览会，推动外贸稳中提质；新建学校三所、养老服务中心五家；"
               "深化政务服务增值化改革，持续优化营商环境；加强生态环境保护，守好绿水青山。\n"
               "做强石雕产业，培育石雕龙头企业。\n")


def _report(year: int, work: str) -> str:
    return (f"中共青田县委十四届全体（扩大）会议召开\n"
            f"{year}年12月28日，中共青田县委全体（扩大）会议召开。全会总结今年工作，部署明年任务。\n"
            f"全会强调，明年要重点抓好以下工作：{work}。\n")


@pytest.fixture
def two_years(fresh_index, embedder, tmp_path) -> Engine:
    """The seeds plus a county's plenum communiqués of 2022 and 2023, which differ in their
    priorities only, and its 2023 government work report."""
    folder = tmp_path / "new"
    folder.mkdir()
    (folder / "qingtian2022.txt").write_text(_report(2022, "做强侨乡经济，建设进口商品城"), "utf-8")
    (folder / "qingtian2023.txt").write_text(_report(2023, "做优石雕文化，擦亮石雕金名片"), "utf-8")
    (folder / "qingtian-work-2023.txt").write_text(WORK_REPORT, "utf-8")
    eng = Engine(fresh_index)
    eng._embedder = embedder
    eng.add([folder])
    return eng


def test_a_named_year_searches_that_years_reports_and_says_so(two_years):
    question = "青田县2022年全会部署明年抓好哪些工作?"
    plan = two_years.searcher().plan(question)
    assert plan.year == "2022" and "dated 2022" in plan.notice
    assert {h.doc_id for h in two_years.search(question, 5)} == {"qingtian2022"}
    # Lifted like the place filter: both years' reports answer.
    assert {h.doc_id for h in two_years.search(question, 5, places=False)} >= \
        {"qingtian2022", "qingtian2023"}


def test_a_year_with_no_report_is_said_and_searches_all_dates(two_years):
    plan = two_years.searcher().plan("青田县2019年全会部署了哪些工作?")
    assert plan.year is None and plan.filters.date_from is None
    assert "no report dated 2019 is indexed" in plan.notice


def test_the_scope_line_names_the_year(two_years, capsys):
    assert main(["search", "2023年青田县委全会要擦亮什么金名片?", "--index",
                 str(two_years.root), "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "scope:" in out and "dated 2023" in out and "qingtian2023" in out
    assert "qingtian2022" not in out


def test_a_named_work_report_searches_work_reports(two_years):
    doc = two_years.index.documents["qingtian-work-2023"]
    assert (doc.doc_type, doc.locality, doc.date[:4]) == ("work_report", "青田县", "2023")
    question = "青田县2023年政府工作报告把哪些工作作为重点?"
    plan = two_years.searcher().plan(question)
    assert plan.asked_type == "work_report" and "government work reports" in plan.notice
    assert {h.doc_id for h in two_years.search(question, 5)} == {"qingtian-work-2023"}
    # With no work report of the place, the place alone narrows the search.
    assert two_years.searcher().plan("莲都区政府工作报告提出了什么?").asked_type is None


def test_the_words_that_became_filters_do_not_rank(two_years):
    """Left in, “2023年…政府工作报告” ranks the report's title and opening first, the passage
    that repeats them, over the one about what was asked."""
    question = "青田县2023年政府工作报告对石雕产业有什么部署?"
    plan = two_years.searcher().plan(question)
    assert plan.query == "青田县 对石雕产业有什么部署?"
    first = two_years.search(question, 1)[0]
    assert first.doc_id == "qingtian-work-2023" and "做强石雕产业" in first.text
    # Nothing else to rank by: the question is kept whole.
    assert two_years.searcher().plan("2023年政府工作报告").query == "2023年政府工作报告"
