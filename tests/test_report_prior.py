"""Passages from reports rank above news that merely shares the question's words (hybrid)."""

from __future__ import annotations

import gzip
import json

import pytest

from policyrag.config import Settings
from policyrag.engine import Engine
from policyrag.search.filtering import Filters

LUQIAO_REPORT = "002_e8d0747b3dfad330"
QUESTION = "聚焦民间投资,要怎样破冰山、立模式、激活力?"
# A news story that repeats the question's words without saying what any government plans.
NEWS = ("民间投资观察（新闻联播）\n央视网消息(新闻联播):记者今天走访多家企业,听他们谈民间投资。"
        "聚焦民间投资,企业家说,破冰山、立模式、激活力,说来容易做来难。"
        "民间投资怎样破冰山?立什么模式?怎样激活力?多位受访者各有看法。\n")


@pytest.fixture
def with_news(tmp_path, index_copy, embedder) -> Engine:
    coll = tmp_path / "news.jsonl.gz"
    with gzip.open(coll, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "news-1", "text": NEWS, "doc_type": "news"},
                            ensure_ascii=False) + "\n")
    eng = Engine(index_copy)
    eng._embedder = embedder
    eng.add([coll])
    eng = Engine(index_copy)  # reopen, as a new process would
    eng._embedder = embedder
    return eng


def _first(eng: Engine, **kw) -> str:
    return eng.search(QUESTION, 5, **kw)[0].doc_id


def test_the_report_outranks_news_that_only_repeats_the_question(with_news):
    assert with_news.index.documents["news-1"].doc_type == "news"
    assert _first(with_news) == LUQIAO_REPORT
    # Without the prior the word-for-word news story wins: the prior is what moves it.
    with_news.settings = Settings(report_prior=1.0)
    assert _first(with_news) == "news-1"


def test_types_the_user_chose_are_ranked_without_the_prior(with_news):
    hits = with_news.search(QUESTION, 5, Filters(doc_types=["news", "communique"]))
    assert hits[0].doc_id == "news-1"


def test_news_that_alone_holds_the_name_asked_for_keeps_its_place(with_news, tmp_path):
    coll = tmp_path / "more-news.jsonl.gz"
    story = ("鲲鹏智算产业园签约（新闻联播）\n央视网消息(新闻联播):鲲鹏智算产业园今天签约落地,"
             "园区将建设算力中心。\n")
    with gzip.open(coll, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "news-2", "text": story, "doc_type": "news"},
                            ensure_ascii=False) + "\n")
    with_news.add([coll])
    assert with_news.search("鲲鹏智算产业园有什么进展?", 5)[0].doc_id == "news-2"
