"""Lexical retrieval: segmentation that keeps place names and slogans whole, and BM25 scores."""

from __future__ import annotations

import math

import pytest

from policyrag.index import lexical
from policyrag.index.lexical import BM25, slogans, tokenize


def test_quoted_slogans_become_whole_tokens():
    text = "抓“双招双引”塑造发展实力,推进“七優享”工程"
    lexicon = tuple(slogans([text]))
    assert lexicon == ("七优享", "双招双引")
    assert "双招双引" not in tokenize("抓双招双引塑造发展实力")  # jieba alone cuts it in two
    assert {"双招双引", "七优享"} <= set(tokenize(text, lexicon))


def test_a_slogan_token_is_followed_by_its_words():
    # At scale the collection's quoted phrases run up to 8 characters; kept only whole, a
    # report's "有为政府" would share no token with a question about 政府 and 市场.
    lexicon = ("有为政府", "有效市场", "全面建成小康社会")
    tokens = tokenize("让有为政府与有效市场紧密结合,全面建成小康社会", lexicon)
    assert {"有为政府", "有效市场", "全面建成小康社会"} <= set(tokens)
    assert {"政府", "市场", "小康社会"} <= set(tokens)
    bm25 = BM25([tokens, tokenize("政府工作报告审议通过", lexicon),
                 tokenize("市场监管部门开展检查", lexicon)])
    scores = bm25.scores(tokenize("政府与市场应当是什么关系", lexicon))
    assert scores.argmax() == 0


def test_place_names_stay_whole_in_either_script():
    simplified = tokenize("路桥区深化改革，莲都区推进共同富裕")
    assert {"路桥区", "莲都区", "共同富裕"} <= set(simplified)
    assert tokenize("路橋區深化改革，蓮都區推進共同富裕") == simplified


def test_bm25_scores_follow_okapi():
    # N=3, average length 2; "a" is in two of three chunks, so its idf is floored.
    bm25 = BM25([["a", "b"], ["a"], ["c", "c", "d"]])
    idf_rare = math.log(2.5) - math.log(1.5)
    floor = 0.25 * (3 * idf_rare - idf_rare) / 4
    k1, b = 1.5, 0.75

    def term(idf: float, tf: float, length: float) -> float:
        return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / 2))

    assert bm25.scores(["c"]) == pytest.approx([0, 0, term(idf_rare, 2, 3)], rel=1e-5)
    assert bm25.scores(["a"]) == pytest.approx([term(floor, 1, 2), term(floor, 1, 1), 0],
                                               rel=1e-5)
    # A repeated query term counts twice; an unknown one not at all.
    assert bm25.scores(["c", "c", "zzz"]) == pytest.approx(2 * bm25.scores(["c"]), rel=1e-6)
    assert not bm25.scores([]).any() and not BM25([]).scores(["a"]).size


def test_bm25_finds_only_chunks_with_the_term_and_prefers_the_short_one():
    chunks = [tokenize(t) for t in ("推进民间投资,激发民间投资活力,建设现代化产业体系",
                                    "民间投资", "发展海洋经济")]
    scores = BM25(chunks).scores(tokenize("民间投资"))
    assert scores[1] > scores[0] > 0 and scores[2] == 0


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLICYRAG_CACHE_DIR", str(tmp_path))
    lexical._base_freq.cache_clear()
    lexical._tokenizer.cache_clear()
    yield tmp_path
    lexical._base_freq.cache_clear()
    lexical._tokenizer.cache_clear()


def test_dictionary_cache_is_written_once_and_a_broken_one_is_rebuilt(fresh_cache):
    text = "丽水经开区抓“双招双引”,温州市推进五城五高地建设"
    expected = tokenize(text, ("双招双引",))
    (cached,) = fresh_cache.glob("jieba-*.marshal")
    lexical._base_freq.cache_clear()
    lexical._tokenizer.cache_clear()
    assert tokenize(text, ("双招双引",)) == expected  # read back from the cache

    cached.write_bytes(b"\x00 not a marshal file")
    lexical._base_freq.cache_clear()
    lexical._tokenizer.cache_clear()
    assert tokenize(text, ("双招双引",)) == expected
    assert cached.stat().st_size > 1_000_000  # rewritten whole


def test_one_index_lexicon_does_not_leak_into_another(fresh_cache):
    assert "双招双引" in tokenize("抓双招双引", ("双招双引",))
    assert "双招双引" not in tokenize("抓双招双引", ())


def test_english_questions_get_the_glossarys_chinese_words():
    assert set(lexical.glossary_terms("How does Luqiao attract private investment?")) >= \
        {"民间 民营", "投资", "招引 招商 引进"}
    assert lexical.glossary_terms("路桥如何吸引民间投资") == []
    assert lexical.glossary_terms("路桥如何吸引private投资") == []  # mostly Chinese


def test_an_english_question_finds_the_chinese_report_by_bm25_alone(engine):
    # Without the glossary BM25 sees only 丽水 (added for "Lishui") and ranks by the place name.
    hits = engine.search("What does Lishui do to raise rural incomes?", k=3, mode="lexical")
    assert hits[0].locality == "丽水市" and "增收" in hits[0].text
