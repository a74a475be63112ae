"""Abstractive answers: the sentence checker against adversarial output, and the real packaged
generator end to end (Qwen2.5-Coder-1.5B, GGUF, on CPU) on the session index of the seeds."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from policyrag.answer import packaged_model
from policyrag.answer.abstractive import (
    LIST_SENTENCE_CHARS_ZH,
    Rewriter,
    SentenceChecker,
    UnusableOutput,
    check_answer,
    output_grammar,
    parse_answer,
)
from policyrag.answer.checker import Context, check_sentence, check_translation
from policyrag.answer.extractive import Answerer, Citation, Point, check_citations
from policyrag.ingest.documents import load_documents

# Three sentences of the Luqiao report (seed 002), as the extractive answer numbers them.
LUQIAO_POINTS = [
    "会议强调,路桥的发展起步于民、兴盛于民、潜力在民。要锚定主方向,把民营经济创新发展的体制机制改革"
    "作为重中之重,用好改革关键招、打好破立组合拳,在夯实本底中再创优势。",
    "聚焦民间投资,破冰山、立模式、激活力。创新政府和社会资本合作模式,构建大平台+项目链的牵引机制、"
    "科学推+精准配的运作机制、基金池+政策包的赋能机制,推动民间资本敢投、愿投、会投。",
    "优化民生“七优享”制度体系,强化品质型公共服务供给,完善全生命周期人口服务。",
]
LUQIAO = Context("路桥如何吸引民间投资？", "路桥区")
LUQIAO_EN = Context("How does Luqiao plan to attract private investment?", "路桥区")


def _check(sentence: str, lang: str = "zh-Hans", context: Context = LUQIAO) -> str | None:
    return check_sentence(sentence, LUQIAO_POINTS, lang, context)


# ---------------------------------------------------------------- the checker, no model


@pytest.mark.parametrize("sentence,lang", [
    ("路桥以体制机制改革激发民营经济创新发展[1]。", "zh-Hans"),
    ("路橋以體制機制改革激發民營經濟創新發展[1]。", "zh-Hant"),
    ("路桥创新政府和社会资本合作模式，推动民间资本投资[2]。", "zh-Hans"),
    ("Luqiao will attract private investment through new models of cooperation with social "
     "capital [2].", "en"),
])
def test_supported_sentences_pass(sentence, lang):
    context = LUQIAO_EN if lang == "en" else LUQIAO
    assert _check(sentence, lang, context) is None


@pytest.mark.parametrize("sentence,lang,reason", [
    # an invented figure
    ("路桥计划新增民间投资50亿元[2]。", "zh-Hans", "number not in its points"),
    ("Luqiao plans 50 billion yuan of private investment [2].", "en", "number not in its points"),
    # a place the cited points never name
    ("温州创新政府和社会资本合作模式，推动民间资本投资[2]。", "zh-Hans", "place not in its points"),
    ("Hangzhou will attract private investment with new cooperation models [2].", "en",
     "name not in its points"),
    # a person the points never name
    ("区委书记张三强调要激发民营经济活力[1]。", "zh-Hans", "name not in its points"),
    # markers missing, or naming a point that was not given
    ("路桥创新政府和社会资本合作模式，推动民间资本投资。", "zh-Hans", "no citation marker"),
    ("路桥创新政府和社会资本合作模式，推动民间资本投资[7]。", "zh-Hans", "does not exist"),
    # the prompt echoed
    ("问题：路桥如何吸引民间投资？[1]", "zh-Hans", "echoes the prompt"),
    # the wrong language, or Chinese left inside English
    ("Luqiao attracts private investment through cooperation [2].", "zh-Hans",
     "not written in Chinese"),
    ("Luqiao is focusing on民间投资 and new cooperation models [2].", "en",
     "not written in English"),
    # a point copied out word for word
    ("创新政府和社会资本合作模式,构建大平台+项目链的牵引机制、科学推+精准配的运作机制[2]。", "zh-Hans",
     "copies a point"),
    # words the cited point does not support (it is about public services, not taxes)
    ("路桥计划对民营企业减免税收，并设立专项基金[3]。", "zh-Hans", "not supported"),
    ("Luqiao will cut taxes for foreign firms and build an airport [3].", "en",
     "no term it uses|not supported"),
])
def test_adversarial_sentences_are_rejected(sentence, lang, reason):
    context = LUQIAO_EN if lang == "en" else LUQIAO
    why = _check(sentence, lang, context)
    assert why is not None
    assert re.search(reason, why), why


SOURCE = "路桥创新政府和社会资本合作模式，推动民间资本投资"


@pytest.mark.parametrize("english,reason", [
    ("Luqiao is creating new models of cooperation between government and social capital to "
     "draw in private investment [2].", None),
    ("Luqiao will draw 30 billion yuan of private investment [2].", "number not in its points"),
    # a number in words (the 0.5B model wrote "Fourteen is the aid of blood transfusion…")
    ("Luqiao will draw fourteen private investment projects [2].", "number not in its points"),
    ("Hangzhou will draw in private investment through new cooperation [2].", "name"),
    ("Luqiao is drawing in 民间资本 through new cooperation [2].", "not written in English"),
    ("Luqiao is drawing in private investment through new cooperation.", "lost its markers"),
    ("Luqiao is drawing in private investment through new cooperation [5].", "lost its markers"),
    # who acted, invented: the points speak of the district, not the Party's central committee
    ("The CPC Central Committee will help Luqiao draw in private investment [2].",
     "actor not in its points"),
])
def test_translations_of_checked_sentences_are_checked_too(english, reason):
    why = check_translation(english, SOURCE, LUQIAO_POINTS, LUQIAO_EN)
    assert why is None if reason is None else (why is not None and reason in why), why


def test_echoed_instructions_are_rejected():
    context = Context(LUQIAO.question, LUQIAO.locality,
                      "示例：“某县推广智慧灌溉节约用水[1]。它还修缮古村落[2][3]。”")
    assert check_sentence("它还修缮古村落[2]。", LUQIAO_POINTS, "zh-Hans", context).startswith(
        "echoes the prompt")
    # …and so are the example's words slipped into an otherwise supported sentence.
    why = check_sentence("路桥创新政府和社会资本合作模式，推广智慧灌溉，推动民间资本投资[2]。",
                         LUQIAO_POINTS, "zh-Hans", context)
    assert why and why.startswith("echoes the prompt")


def _points() -> list[Point]:
    cites = [Citation("002", f"002#{i}", 10 * i, 10 * i + 9, text[:9])
             for i, text in enumerate(LUQIAO_POINTS)]
    return [Point(text, [c]) for text, c in zip(LUQIAO_POINTS, cites, strict=True)]


def test_kept_sentences_cite_their_points_renumbered_in_order_of_use():
    pts = _points()
    out = parse_answer("路桥创新政府和社会资本合作模式，推动民间资本投资[2]。"
                       "路桥以体制机制改革激发民营经济创新发展[1][2]。", pts, "zh-Hans", LUQIAO)
    assert [p.text for p in out] == ["路桥创新政府和社会资本合作模式，推动民间资本投资[1]。",
                                     "路桥以体制机制改革激发民营经济创新发展[1][2]。"]
    assert out[0].citations == pts[1].citations
    assert out[1].citations == pts[0].citations + pts[1].citations


def test_unsupported_sentences_are_dropped_and_counted():
    result = check_answer("路桥创新政府和社会资本合作模式，推动民间资本投资[2]。"
                          "路桥以体制机制改革激发民营经济创新发展[1]。"
                          "路桥计划新增民间投资50亿元[2]。", _points(), "zh-Hans", LUQIAO)
    assert result.written == 3 and len(result.points) == 2 and result.usable
    assert result.dropped == {"number not in its points": 1}
    assert all("50" not in p.text for p in result.points)


def test_too_little_surviving_is_unusable_and_says_why():
    with pytest.raises(UnusableOutput, match=r"0 of 2 .*number not in its points"):
        parse_answer("路桥计划新增民间投资50亿元[2]。温州明年投资300亿元[1]。", _points(), "zh-Hans",
                     LUQIAO)
    with pytest.raises(UnusableOutput, match="echoes the prompt"):
        parse_answer("问题: 路桥如何吸引民间投资？\n要点:\n[1] 会议强调", _points(), "zh-Hans")


class FixedGenerator:
    """A model that always writes the same (adversarial) text, to exercise the fallback."""

    name = "fixed"

    def __init__(self, text: str) -> None:
        self.text = text

    def generate(self, prompt, *, system=None, max_tokens=512, temperature=0.2):
        return self.text


def test_invented_answer_falls_back_to_extractive_with_a_notice(engine):
    extractive = Answerer(engine).ask("路桥如何吸引民间投资？", k=2)
    invented = "路桥明年将新增民间投资80亿元[1]。温州市长李四宣布减税[2]。"
    answer = Rewriter(FixedGenerator(invented)).rewrite(extractive)
    assert answer.mode == "extractive" and answer.localities == extractive.localities
    assert "extractive" in answer.notice and "0 of 2" in answer.notice
    data = answer.to_dict()
    assert data["notice"] == answer.notice and data["check"]["sentences_kept"] == 0
    assert "80亿" not in json.dumps(data, ensure_ascii=False)


def test_grammar_names_only_the_given_points():
    grammar = output_grammar("zh-Hans", 3, 2)
    assert '"1" | "2" | "3"' in grammar and '"4"' not in grammar
    assert "a-zA-Z" in grammar  # no Latin words in a Chinese answer
    assert r"\u4e00-\u9fff" in output_grammar("en", 2)  # no Chinese in an English one
    assert 'first ::= "路桥区"' in output_grammar("zh-Hans", 2, 2, "路桥区")


def test_a_priorities_sentence_is_capped_short_and_cut_back_to_a_whole_clause():
    """A priorities answer states each point's heading: the grammar caps its sentences, and
    one broken off at that cap keeps its whole clauses instead of being dropped as a copy."""
    grammar = output_grammar("zh-Hans", 5, 5, "温州市", chars=LIST_SENTENCE_CHARS_ZH)
    assert f"ch{{2,{LIST_SENTENCE_CHARS_ZH - 3}}}" in grammar
    point = Point("三要奋力开创循环枢纽构建新局面,充分发挥资源优势,高标准打造新消费高地,"
                  "深化区域战略协作,提升对外开放格局。", [])
    context = Context("各地区分别把哪些工作作为重点？", "温州市")
    capped = SentenceChecker([point], "zh-Hans", context, sources=["温州市"],
                             chars=LIST_SENTENCE_CHARS_ZH)
    capped.add("温州要奋力开创循环枢纽构建新局面,充分发挥资源优势,高标准打造新[1]。")  # at the cap
    assert [p.text for p in capped.result.points] == ["温州要奋力开创循环枢纽构建新局面,充分发挥资源优势[1]。"]
    # Without the cap, the model's whole-item copy is still refused.
    whole = SentenceChecker([point], "zh-Hans", context, sources=["温州市"])
    whole.add("三要奋力开创循环枢纽构建新局面,充分发挥资源优势,高标准打造新消费高地,深化区域战略协作[1]。")
    assert whole.result.dropped == {"copies a point word for word": 1}


def test_a_place_name_cut_short_is_rejected():
    # The 1.5B model wrote 桥区 for 路桥区, then translated it "Bridge District".
    assert "桥区" in _check("桥区通过创新政府和社会资本合作模式，吸引民间投资[2]。", "zh-Hans",
                          Context("How does 路桥区 plan to attract private investment?", None))
    why = check_translation("Bridge District draws in private investment through new "
                            "cooperation models [2].", "路桥区创新合作模式，吸引民间投资",
                            LUQIAO_POINTS, LUQIAO_EN)
    assert why and "lost a place name" in why


def test_the_place_whose_report_a_point_quotes_may_be_named():
    """“Which city…?” is answered from the source: the model is told each point's place, and
    the check accepts that place, but still no other."""
    point = Point("要以本地发展的“稳进立”为全省大局多作贡献。", [])
    context = Context("哪个市要求以本地发展的“稳进立”为全省大局多作贡献?", None)
    kept = SentenceChecker([point], "zh-Hans", context, sources=["丽水市"])
    kept.add("丽水市要求以发展的“稳进立”为全省多作贡献[1]。")
    assert len(kept.result.points) == 1
    unsourced = SentenceChecker([point], "zh-Hans", context)
    unsourced.add("丽水市要求以发展的“稳进立”为全省多作贡献[1]。")
    assert unsourced.result.dropped == {"place not in its points": 1}
    wrong = SentenceChecker([point], "zh-Hans", context, sources=["丽水市"])
    wrong.add("温州市要求以发展的“稳进立”为全省多作贡献[1]。")
    assert wrong.result.dropped == {"place not in its points": 1}


def test_a_sentence_broken_off_mid_clause_is_cut_back_to_its_last_whole_clause():
    checker = SentenceChecker(_points(), "zh-Hans", LUQIAO)
    checker.add("路桥创新政府和社会资本合作模式，推动民间资本投资，构建大平台+项目链的“[2]。")
    assert [p.text for p in checker.result.points] == ["路桥创新政府和社会资本合作模式，推动民间资本投资[2]。"]
    # What is left is checked like any sentence: an invented figure before the cut still fails.
    checker.add("路桥计划新增民间投资50亿元，推动民间资本敢投、愿投、会投，构建大平台+项目链的“[2]。")
    assert checker.result.dropped == {"number not in its points": 1}


def test_an_answer_naming_the_phrase_the_question_quotes_is_no_copy():
    point = ("围绕全力夺取“三季进、全年红”奋斗目标,刘志伟明确了目标只能高不能低、行动只能快不能慢、"
             "势头只能增不能减的“三个工作导向”和七个方面具体工作:")
    question = "哪里提出了目标只能高不能低、行动只能快不能慢、势头只能增不能减的“三个工作导向”?"
    answer = "刘志伟明确了目标只能高不能低、行动只能快不能慢、势头只能增不能减的“三个工作导向”[1]。"
    assert check_sentence(answer, [f"丽水经开区：{point}"], "zh-Hans",
                          Context(question, None)) is None
    # The same sentence copies the point when the question did not ask for that phrase.
    why = check_sentence(answer, [f"丽水经开区：{point}"], "zh-Hans",
                         Context("丽水经开区有哪些工作导向?", None))
    assert why and "copies a point" in why


def test_words_tagged_as_names_that_are_no_names_pass():
    # jieba tags 智慧 and 福祉 as person names; a name begins with a surname (张三 does).
    point = ["路桥区：聚焦民心思进,强队伍、聚智慧、争一流,增进民生福祉。"]
    assert check_sentence("路桥区强队伍、聚智慧，增进民生福祉[1]。", point, "zh-Hans", LUQIAO) is None
    why = check_sentence("路桥区张三强调强队伍、聚智慧[1]。", point, "zh-Hans", LUQIAO)
    assert why and "name not in its points" in why


def test_a_translation_may_name_a_zone_in_english():
    source = "丽水经开区坚持抓党建促发展"
    points = ["丽水经开区坚持抓党建促发展,各级领导干部特别是“一把手”坚决把抓落实摆在首要位置。"]
    ok = "Lishui Economic Development Zone uses Party building to drive development [1]."
    assert check_translation(ok, source, points, Context("Which zone?", None)) is None
    lost = "The zone uses Party building to drive development [1]."
    assert "lost a place name" in check_translation(lost, source, points,
                                                    Context("Which zone?", None))


# ---------------------------------------------------------------- the packaged model

def _require_model() -> None:
    if importlib.util.find_spec("llama_cpp") is None or not packaged_model.available():
        pytest.fail("abstractive tests need the generate extra: pip install -e '.[generate]'")


@pytest.mark.slow
def test_packaged_model_answers_in_chinese_with_checked_citations(cli, seed_copy):
    _require_model()
    rc, out, err = cli("ask", "路桥如何吸引民间投资？", "--mode", "abstractive", "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["mode"] == "abstractive", data.get("notice")
    assert "unavailable" not in (data.get("notice") or "")
    assert data["check"]["sentences_kept"] >= 1
    points = data["localities"][0]["points"]
    docs = {d.doc_id: d for d in load_documents([seed_copy])[0]}
    for p in points:
        assert "[" in p["text"] and p["citations"]
        body = re.sub(r"\[\d+\]|\W", "", p["text"])
        assert sum("\u4e00" <= ch <= "\u9fff" for ch in body) > 0.8 * len(body)
        for c in p["citations"]:
            assert docs[c["doc_id"]].text[c["start"]:c["end"]] == c["quote"]
            assert c["doc_id"] == "002_e8d0747b3dfad330"  # Luqiao's report


@pytest.mark.slow
def test_packaged_model_answers_an_english_question_in_english(engine, seed_copy):
    _require_model()
    extractive = Answerer(engine).ask("What does Luqiao plan for its trade and logistics markets?",
                                      k=2)
    answer = Rewriter().rewrite(extractive, places=engine.index.localities())
    assert answer.mode == "abstractive", answer.notice
    docs = {d.doc_id: d for d in load_documents([seed_copy])[0]}
    assert not check_citations(answer, docs)
    for p in answer.localities[0].points:
        assert p.citations and not any("\u4e00" <= ch <= "\u9fff" for ch in p.text)
        assert re.search(r"\[\d+\]\.$", p.text)
    assert "Luqiao" in answer.localities[0].points[0].text  # the place, in pinyin


@pytest.mark.slow
def test_packaged_model_answers_the_english_private_investment_question_in_english(cli):
    """The issue's own English question: an English answer from Luqiao's report, no fallback."""
    _require_model()
    rc, out, err = cli("ask", "How does Luqiao attract private investment?", "--mode",
                       "abstractive", "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["mode"] == "abstractive", data.get("notice")
    points = data["localities"][0]["points"]
    assert points and "Luqiao" in points[0]["text"]
    for p in points:
        assert re.search(r"^[A-Z][^\u4e00-\u9fff]+ (?:\[\d+\])+\.$", p["text"]), p["text"]
        assert {c["doc_id"] for c in p["citations"]} == {"002_e8d0747b3dfad330"}
    assert any("invest" in p["text"].lower() for p in points)


@pytest.mark.slow
def test_packaged_model_by_locality_writes_each_seed_locality(cli):
    """`--by-locality --mode abstractive`: every seed locality is answered in checked
    generated sentences, each short enough to state a point rather than copy it."""
    _require_model()
    rc, out, err = cli("ask", "各地区分别把哪些工作作为重点？", "--by-locality", "--mode",
                       "abstractive", "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["mode"] == "abstractive", data.get("notice")
    localities = {loc["locality"]: loc["points"] for loc in data["localities"]}
    assert {"莲都区", "丽水市", "路桥区", "丽水经开区", "温州市"} <= set(localities)
    for name, points in localities.items():
        assert points and all(p["citations"] for p in points), name
        for p in points:  # a generated sentence, not the extractive quote
            assert re.search(r"(?:\[\d+\])+。$", p["text"]), (name, p["text"])
            assert len(re.sub(r"\[\d+\]", "", p["text"])) <= LIST_SENTENCE_CHARS_ZH + 1
    assert "extractive points instead" not in (data.get("notice") or "")


@pytest.mark.slow
def test_english_question_extractive_points_get_a_checked_english_rendering(cli):
    """--translate-points: the quotes stay Chinese, each gets an English rendering marked as
    machine translation, or none when it fails the check (and the note says how many)."""
    _require_model()
    question = "How does Luqiao plan to attract private investment?"
    rc, out, err = cli("ask", question, "--translate-points", "--json")
    assert rc == 0, err
    points = json.loads(out)["localities"][0]["points"]
    rendered = [p for p in points if p.get("translation")]
    assert rendered, points
    for p in rendered:
        assert re.search(r"[\u4e00-\u9fff]{4}", p["text"])  # the quote, in Chinese
        assert not re.search(r"[\u4e00-\u9fff]", p["translation"])
    assert any("invest" in p["translation"].lower() for p in rendered)
    rc, out, _ = cli("ask", question, "--translate-points")
    assert "EN (machine translation):" in out


@pytest.mark.slow
def test_translate_query_writes_chinese_terms_once_and_caches_them(tmp_path, monkeypatch):
    _require_model()
    from policyrag.answer.generate import ENV_GGUF_PATH, find_packaged_gguf
    from policyrag.search import translate

    monkeypatch.setenv(ENV_GGUF_PATH, str(find_packaged_gguf()))
    monkeypatch.setenv("POLICYRAG_CACHE_DIR", str(tmp_path))
    places = ["莲都区", "丽水市", "路桥区", "丽水经开区", "温州市"]
    question = "How does Luqiao plan to attract private investment?"
    terms = translate.translate_query(question, places)
    assert terms and "路桥" in terms and "投资" in terms
    assert not re.search(r"[A-Za-z]", terms)
    cache = tmp_path / translate.CACHE_FILE
    ((key, stored),) = json.loads(cache.read_text("utf-8")).items()
    assert stored == terms
    # A repeated question is answered from the cache, not by the model.
    cache.write_text(json.dumps({key: "缓存 命中"}, ensure_ascii=False), "utf-8")
    assert translate.translate_query(question, places) == "缓存 命中"
    assert translate.translate_query("路桥如何吸引民间投资？", places) is None  # already Chinese
    monkeypatch.setenv(ENV_GGUF_PATH, str(tmp_path / "absent.gguf"))
    assert translate.translate_query("What about rural roads?") is None  # no generator


def test_a_sentence_citing_the_point_next_to_its_own_cites_the_one_that_supports_it():
    """The 1.5B model skipped an off-topic first point and numbered the rest one too low: the
    sentence then cites the point that supports it, when exactly one does; a sentence no
    single point supports is still dropped."""
    points = [Point("8月20日,区委十四届十一次全体(扩大)会议举行,全会坚持以新思想为指导。", []),
              Point("要突出“双招双引”,提升创新引领的勇气。莲都要实现跨越式高质量发展,必须坚持创新引领。", []),
              Point("要突出人民至上,提升百姓生活的福气。人民对美好生活的向往,就是我们的奋斗目标。", [])]
    context = Context("各地区分别把哪些工作作为重点？", "莲都区")
    checker = SentenceChecker(points, "zh-Hans", context, sources=["莲都区"] * 3)
    checker.add("莲都区要突出“双招双引”,提升创新引领的勇气[1]。")
    assert [p.text for p in checker.result.points] == ["莲都区要突出“双招双引”,提升创新引领的勇气[2]。"]
    checker.add("莲都区要引进外资五十亿元,建设国际机场[2]。")
    assert len(checker.result.points) == 1 and checker.result.dropped


def test_an_english_sentence_opening_with_one_is_no_name():
    why = check_translation("One is to promote industrial revitalization and increase income [1].",
                            "一是产业振兴促增收", ["一是产业振兴促增收,集中力量做大做强产业体系。"],
                            Context("What did each locality prioritize?", "丽水市"))
    assert why is None or "name" not in why


def test_the_translation_prompt_spells_the_sentence_s_people_and_places():
    """Told nothing, the 1.5B model wrote "Wu Shengze" for 吴舜泽, which the check then drops."""
    from policyrag.answer.abstractive import _translate_system

    system = _translate_system("吴舜泽强调,路桥区要深入推进基本公共服务一体化改革")
    assert "吴舜泽 = Wu Shunze" in system and "路桥区 = Luqiao District" in system
    assert "Person names" not in _translate_system("要全速争资争项,用心用情用力服务企业")
