"""Extractive answers: the report sentences that answer a question, each with its citation.

Retrieval picks the passages (hybrid BM25 + dense by default); the report text around them is
cut into sentences (`chunking.sentence_spans`, plus a cut before an enumeration that follows a
colon), each sentence is scored against the question with the same embedding model as the index
(plus a little lexical overlap), and maximal marginal relevance (MMR) picks relevant sentences that
do not repeat each other. The points come out in the report's order and in its own script, and
every one cites `{doc_id, chunk_id, start, end, quote}` with `quote == doc.text[start:end]`.

Reports list their priorities as enumerations: 一是…二是…, ——抓…, 一要…二要…, 要突出…, 聚焦….
For "what were the priorities" questions those items are preferred, and a whole-report summary
(`summarize_document`) is built from them and from sentence centrality, with no question at all.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import takewhile

import numpy as np

from policyrag.answer.framing import ANNOUNCE, framing
from policyrag.engine import Engine
from policyrag.index.lexical import GLOSSARY, tokenize
from policyrag.ingest.chunking import sentence_spans
from policyrag.ingest.documents import Document
from policyrag.script import to_simplified
from policyrag.search.retrieval import Filters, Hit, QueryError, Reranker, Searcher, prepare_query

EXTRACTIVE, ABSTRACTIVE = "extractive", "abstractive"
MODES = (EXTRACTIVE, ABSTRACTIVE)

DEFAULT_POINTS = 5          # points per locality for an ordinary question
MAX_ENUM_POINTS = 10        # a priorities answer may list a whole enumeration up to this size
MMR_LAMBDA = 0.7            # relevance vs. novelty
MIN_CHARS = 8               # shorter sentences (titles, datelines) are never points
SHORT_HEADER = 30           # an enumeration header shorter than this takes its next sentence
DOCS_PER_ANSWER = 3         # reports read whole for one answer (one locality, or all)
LEXICAL_WEIGHT = 0.35       # share of question words found in a sentence, added to its cosine
RELATIVE_FLOOR = 0.65       # a topical point must score at least this share of the best one

_NUM = "一二三四五六七八九十"
# Enumeration markers at the start of a (simplified) sentence, by family; a family must occur at
# least twice in a row (a "run") to count as an enumeration.
ENUM_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("是", re.compile(rf"^(?:其)?[{_NUM}]{{1,3}}是")),                 # 一是…二是…
    ("要", re.compile(rf"^[{_NUM}]{{1,3}}要(?!求)")),                  # 一要…二要…
    ("第", re.compile(rf"^第[{_NUM}]{{1,3}}[,，、:：是]")),             # 第一,…
    ("、", re.compile(rf"^[{_NUM}]{{1,3}}[、.．]")),                    # 一、…
    ("()", re.compile(rf"^[(（][{_NUM}\d]{{1,3}}[)）]")),               # (一)…
    ("1.", re.compile(r"^\d{1,2}[、.．](?!\d)")),                        # 1. …
    ("——", re.compile(r"^(?:——|—|--|－－)\s*\S")),                        # ——抓…
    ("突出", re.compile(r"^要?突出")),                                     # 要突出…
    ("聚焦", re.compile(r"^聚焦")),                                        # 聚焦…
    ("抓", re.compile(r"^(?:要)?(?:抓好|抓实|抓牢|狠抓)")),               # 抓好…
    ("坚持", re.compile(r"^要?坚持(?!以)")),                               # 坚持…
]
_ORDINAL_FAMILIES = {"是", "要", "第", "、", "()", "1."}
# Paragraphs that each open with the speaker stressing a point (“全会强调,…”, “吳舜澤強調,要…”)
# list a report's themes too, less explicitly: this family counts only at a paragraph's start,
# and weighs less than an explicit list, unless that list sits inside one of its paragraphs
# (see _nested).
_STRESS = re.compile(r"^(?:全会|会议|大会|[\u4e00-\u9fff]{2,4})(?:强调|指出|要求|提出)[,，:：]")
STRESS_FAMILY = "强调"
# …and of those, the ones that give an instruction (“吴舜泽强调,要…”), not a review of the year.
_DIRECTIVE = re.compile(r"^\S{0,8}?(?:强调|指出|要求|提出)[,，:：]\s*要")
# A colon followed by an enumeration marker starts a new unit: “…锚定“五大新坐标”:一是…”.
_COLON_ENUM = re.compile(rf"[:：](?=\s*(?:[{_NUM}]{{1,3}}[是要]|——|第[{_NUM}]))")
_LEADING_ORDINAL = re.compile(rf"^(?:其)?([{_NUM}]{{1,3}})")

# "What were the priorities" questions, in Chinese or English.
_PRIORITY_Q = re.compile(
    r"重点|重點|优先|優先|主要任务|主要任務|主要工作|工作重心|重心|核心任务|核心任務|"
    r"中心任务|中心任務|重中之重|着力|着重|抓手|部署|主攻|聚焦|"
    r"哪些工作|哪些方面|什么工作|什麼工作|主要内容|主要內容|要点|要點|"
    r"priorit|focus|key (?:task|area|work|point)|main (?:task|goal|point|area|theme|work)|"
    r"emphas|agenda|plans? for|what (?:did|does|will) .{0,40}(?:do|plan|pursue)",
    re.I,
)
# Meeting logistics that never answer a question about policy.
_BOILERPLATE = re.compile(
    r"出席会议|出席會議|主持会议|主持會議|参加会议|參加會議|作工作报告|作工作報告|作报告|作報告|"
    r"作总结讲话|作總結講話|(?:召开|召開|举行|舉行)[。.]?$|视频形式|視頻形式|记者|記者|编辑|編輯|来源:|"
    r"本报讯|本報訊|网讯|網訊|"
    r"(?:书记|書記|市长|市長|区长|區長|县长|縣長|主任)[^,，。]{0,12}"
    r"(?:部署工作|讲话|講話|主持|出席|指出|强调|強調)[。.]?$|"
    r"^全会充分肯定|^全會充分肯定"
)


NOT_ANSWERED = ("the reports do not seem to answer this: no passage found speaks of enough of "
                "the question's words. The points below are the nearest passages, not an answer")


class AnswerError(QueryError):
    """A question that cannot be answered as asked (unknown document, bad option)."""


# ---------------------------------------------------------------- the answer, as JSON sees it


@dataclass(frozen=True)
class Citation:
    doc_id: str
    chunk_id: str
    start: int
    end: int
    quote: str

    def to_dict(self) -> dict:
        return {"doc_id": self.doc_id, "chunk_id": self.chunk_id, "start": self.start,
                "end": self.end, "quote": self.quote}


@dataclass
class Point:
    text: str
    citations: list[Citation]
    score: float = 0.0
    # An English rendering of a quoted Chinese point: machine translation, checked.
    translation: str | None = None

    def to_dict(self) -> dict:
        out: dict = {"text": self.text, "citations": [c.to_dict() for c in self.citations]}
        if self.translation:
            out["translation"] = self.translation
        return out


@dataclass
class LocalityAnswer:
    locality: str | None
    doc_ids: list[str]
    points: list[Point]

    def to_dict(self) -> dict:
        return {"locality": self.locality, "doc_ids": list(self.doc_ids),
                "points": [p.to_dict() for p in self.points]}


@dataclass
class Answer:
    question: str | None
    mode: str
    localities: list[LocalityAnswer]
    # Set when abstractive mode fell back to extractive; said to the user, and kept in JSON.
    notice: str | None = None
    # False when the passages found do not speak of the question: the points are then the
    # nearest passages, said to be so, not an answer.
    answered: bool = True
    doc_id: str | None = None  # summarize-doc only
    # The place filter the question's own place names applied, said so the user can lift it.
    scope: str | None = None
    # Abstractive mode: how many generated sentences were written and how many passed the
    # check against their cited points (see checker.py).
    check: dict | None = None

    def to_dict(self) -> dict:
        out: dict = {"question": self.question, "mode": self.mode,
                     "localities": [loc.to_dict() for loc in self.localities]}
        if self.scope:
            out["scope"] = self.scope
        if self.doc_id is not None:
            out["doc_id"] = self.doc_id
        if self.notice:
            out["notice"] = self.notice
        if not self.answered:
            out["answered"] = False
        if self.check is not None:
            out["check"] = dict(self.check)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Answer:
        """The inverse of `to_dict` (the web UI keeps answers as dicts)."""
        localities = [
            LocalityAnswer(loc.get("locality"), list(loc.get("doc_ids", [])),
                           [Point(p["text"], [Citation(**c) for c in p["citations"]])
                            for p in loc.get("points", [])])
            for loc in data.get("localities", [])]
        return cls(data.get("question"), data.get("mode", EXTRACTIVE), localities,
                   notice=data.get("notice"), doc_id=data.get("doc_id"),
                   scope=data.get("scope"), check=data.get("check"))


# ---------------------------------------------------------------- documents as sentence units


@dataclass
class Unit:
    """A sentence of a report (or an enumeration item cut out of one)."""

    doc_id: str
    index: int          # position in the document's unit list
    start: int
    end: int
    paragraph: int
    simplified: str
    family: str | None = None   # enumeration family when the unit opens an enumeration item
    run: int | None = None      # id of the enumeration run it belongs to (per document)
    tokens: set[str] | None = None  # BM25 tokens, computed on first use
    framing: str | None = None  # a review, study duty or announcement, never a priority


@dataclass
class Run:
    """Consecutive enumeration items of one family: a report's own list of priorities."""

    run_id: int
    family: str
    units: list[int] = field(default_factory=list)
    intro: int | None = None  # the unit that announces the list (“…七个方面具体工作:”)


@dataclass
class Segmented:
    doc: Document
    units: list[Unit]
    runs: list[Run]
    vectors: np.ndarray | None = None


def _enum_family(simplified: str) -> str | None:
    for family, pattern in ENUM_PATTERNS:
        if pattern.match(simplified):
            return family
    return None


def _ordinal(simplified: str) -> int | None:
    m = _LEADING_ORDINAL.match(simplified)
    if not m:
        return None
    return _cn_number(m.group(1))


def _cn_number(s: str) -> int | None:
    if not s or any(ch not in _NUM for ch in s):
        return None
    if s == "十":
        return 10
    if s.startswith("十"):
        return 10 + _NUM.index(s[1]) + 1
    if len(s) == 1:
        return _NUM.index(s) + 1
    if s.endswith("十"):
        return (_NUM.index(s[0]) + 1) * 10
    return (_NUM.index(s[0]) + 1) * 10 + _NUM.index(s[-1]) + 1


def _split_units(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for s in sentence_spans(text):
        start = s.start
        for m in _COLON_ENUM.finditer(text, s.start, s.end):
            if m.end() - start >= 2:
                spans.append((start, m.end()))
                start = m.end()
        while start < s.end and text[start].isspace():
            start += 1
        if start < s.end:
            spans.append((start, s.end))
    return spans


def segment(doc: Document) -> Segmented:
    units: list[Unit] = []
    paragraph, prev_end = 0, 0
    for start, end in _split_units(doc.text):
        new_paragraph = not units or "\n" in doc.text[prev_end:start]
        if units and new_paragraph:
            paragraph += 1
        prev_end = end
        simplified = to_simplified(doc.text[start:end])
        family = _enum_family(simplified.lstrip())
        if family is None and new_paragraph and _STRESS.match(simplified):
            family = STRESS_FAMILY
        units.append(Unit(doc.doc_id, len(units), start, end, paragraph, simplified, family,
                          framing=framing(simplified)))
    return Segmented(doc, units, _find_runs(units))


def _find_runs(units: list[Unit]) -> list[Run]:
    """Group enumeration items into runs.

    A run continues while the same family recurs; it ends at a sentence that announces a new
    list (one ending in a colon), after a long stretch without an item, or, for ordinal
    families, when the count restarts at one.
    """
    runs: list[Run] = []
    open_runs: dict[str, Run] = {}
    last_seen: dict[str, int] = {}
    for u in units:
        if u.family is None:
            if u.simplified.rstrip().endswith((":", "：")):
                open_runs.clear()
            continue
        run = open_runs.get(u.family)
        ordinal = _ordinal(u.simplified) if u.family in _ORDINAL_FAMILIES else None
        if run is not None:
            last = units[last_seen[u.family]]
            # A whole paragraph without an item, or a count back at one, ends the list.
            if u.paragraph - last.paragraph >= 2 or u.index - last.index > 20 or ordinal == 1:
                run = None
        if run is None:
            run = Run(len(runs), u.family)
            runs.append(run)
            open_runs[u.family] = run
        run.units.append(u.index)
        last_seen[u.family] = u.index
    kept = [r for r in runs if len(r.units) >= 2]
    for new_id, r in enumerate(kept):
        r.run_id = new_id
        r.intro = _intro(units, r)
        for i in r.units:
            units[i].run = new_id
    for u in units:
        if u.family is not None and u.run is None:
            u.family = None
    return kept


# Words that only say "which priorities, where": a priorities question made of nothing else asks
# for a report's main list, not for one topic.
_GENERIC = (
    "地区 地方 各地 各地区 分别 各自 工作 作为 重点 重点工作 优先 主要 任务 主要任务 方面 哪些 什么 "
    "哪个 内容 要点 部署 抓手 着力 着重 聚焦 主攻 今年 明年 下半年 下一步 今后 未来 报告 会议 全会 "
    "提出 强调 计划 安排 列为 列入 当作 作 为 重心 工作重心 核心 中心 重头 重中之重 侧重 关注 "
    "抓 抓好 要务 主抓 政府 市 区 县 经开区 开发区 高新区 新区 领域 问题 把 了 是 有 "
    "what which did does do will each every all locality localities region regions place places "
    "city cities district districts county counties area areas government governments report "
    "reports prioritize prioritise prioritized prioritised priorities priority main key focus "
    "focused focuses their its they was were been be have has had top most important emphasis "
    "emphasize emphasise emphasized plan plans planned agenda work tasks task goals goal themes "
    "theme points point next year this that list give me tell summarize summarise about"
)
_GENERIC_WORDS = frozenset(_GENERIC.split())


def question_kind(question: str, places: Iterable[str] = ()) -> str:
    """'priorities' (a bare "what were the priorities"), 'topic-priorities' or 'topic'."""
    from policyrag.ingest.gazetteer import find_places, same_place

    simplified = to_simplified(question)
    if not _PRIORITY_Q.search(simplified):
        return "topic"
    places = list(places)

    def is_place(token: str) -> bool:
        if any(same_place(token, p) for p in places):
            return True
        found = find_places(token)
        return bool(found) and found[0].start == 0 and found[-1].end == len(token)

    rest = [t for t in tokenize(simplified) if t not in _GENERIC_WORDS
            and t.rstrip("s") not in _GENERIC_WORDS and not is_place(t)]
    return "topic-priorities" if rest else "priorities"


_COUNTED = re.compile(rf"([{_NUM}两\d]{{1,3}})(个|大|项|条|篇|点|方面|件)")


# Words by which a report announces its work plan (“…七个方面具体工作:”, “…作为重中之重”).
_ANNOUNCED = re.compile(r"工作|任务|重点|方面|坐标|局面|行动|举措|重中之重|主方向|主线|着力|着重|抓好")


def _count(token: str) -> int | None:
    if token.isdigit():
        return int(token)
    return 2 if token == "两" else _cn_number(token)


def _intro(units: list[Unit], run: Run) -> int | None:
    """The sentence that announces a list: one that names its size (“…抓好这五个方面。”,
    “…七个方面具体工作:”) a few sentences before it, else the sentence just before it in the
    same paragraph."""
    first = run.units[0]
    window = []
    for i in range(first - 1, max(first - 5, -1), -1):
        if units[i].family == run.family:
            break
        window.append(i)
    # “五个方面” says more than “五大…”, which is as often a slogan as a count.
    for strong in (True, False):
        for i in window:
            if any(_count(m.group(1)) == len(run.units) and (not strong or m.group(2) != "大")
                   for m in _COUNTED.finditer(units[i].simplified)):
                return i
    before = first - 1
    if before >= 0 and units[before].family != run.family and (
            units[before].paragraph == units[first].paragraph
            or units[before].simplified.rstrip().endswith((":", "："))):
        return before
    return None


def _nested(seg: Segmented, run: Run) -> bool:
    """True for a list inside one item of a longer list (“五篇促增收文章: 一是…” within one of
    the paragraphs a secretary's speech is made of): the outer list holds the priorities."""
    paragraphs = {seg.units[i].paragraph for i in run.units}
    if len(paragraphs) != 1:
        return False
    (para,) = paragraphs
    for other in seg.runs:
        outer = {seg.units[i].paragraph for i in other.units}
        if other is not run and len(outer) >= 3 and para in outer and _directive(seg, other):
            return True
    return False


def _directive(seg: Segmented, run: Run) -> bool:
    """A list of instructions (“吴舜泽强调,要…” paragraph after paragraph) rather than paragraphs
    that merely open alike (“全会指出,今年以来…” reviewing the year among them)."""
    if run.family != STRESS_FAMILY:
        return True
    hits = sum(bool(_DIRECTIVE.match(seg.units[i].simplified)) for i in run.units)
    return hits >= 0.6 * len(run.units)


def _stand_ins(seg: Segmented, i: int) -> list[int]:
    """The units that stand for list item `i`: itself, or, for an item that only announces work
    (“吴舜泽强调,要有的放矢抓好重点工作”), the instructions after it in its paragraph
    (“要全速争资争项…”); an item that reviews the year or recalls a duty stands for nothing."""
    u = seg.units[i]
    if u.framing is None:
        return [i]
    if u.framing != ANNOUNCE:
        return []
    same_paragraph = takewhile(lambda v: v.paragraph == u.paragraph, seg.units[i + 1:])
    return [v.index for v in same_paragraph if v.framing is None
            and (re.match(r"要(?!求)", v.simplified) or _enum_family(v.simplified))]


def is_priority_question(question: str, places: Iterable[str] = ()) -> bool:
    return question_kind(question, places) == "priorities"


def _boilerplate(u: Unit) -> bool:
    return bool(_BOILERPLATE.search(u.simplified)) and u.family is None


# ---------------------------------------------------------------- selection


def mmr(relevance: np.ndarray, similarity: np.ndarray, n: int,
        lam: float = MMR_LAMBDA) -> list[int]:
    """Maximal marginal relevance: indices of `n` items, relevant and not like each other."""
    chosen: list[int] = []
    left = list(range(len(relevance)))
    while left and len(chosen) < n:
        redundancy = (similarity[np.ix_(left, chosen)].max(axis=1) if chosen
                      else np.zeros(len(left)))
        scores = lam * relevance[left] - (1 - lam) * redundancy
        best = left[int(np.argmax(scores))]
        chosen.append(best)
        left.remove(best)
    return chosen


def question_concepts(question: str, lexicon: tuple[str, ...] = (),
                      places: Iterable[str] = ()) -> list[frozenset[str]]:
    """What a sentence should mention to answer the question, as groups of alternative tokens.

    Chinese words of the question count one each; an English question counts through the
    glossary (“private” is 民间 or 民营). Place names are left out (the answer is already
    narrowed to the place) and so are the words of "which priorities" phrasing.
    """
    from policyrag.ingest.gazetteer import same_place

    places = list(places)
    tokens = [t for t in tokenize(question, lexicon) if not t.isascii()
              and not any(same_place(t, p) for p in places)]
    groups = [frozenset([t]) for t in dict.fromkeys(tokens) if t not in _GENERIC_WORDS]
    lowered = question.lower()
    groups += [frozenset(tokenize(zh)) for en, zh in GLOSSARY.items()
               if en in lowered and en not in ("priorit", "focus")]
    if not groups:
        groups = [frozenset([t]) for t in dict.fromkeys(tokens)]
    return groups


# Sentence units and their vectors, per (model, report revision, lexicon): shared by every
# Answerer in the process (a batch, the web UI), bounded, oldest dropped first.
SEGMENT_CACHE = 256
_SEGMENTS: dict[tuple, Segmented] = {}
_SEGMENTS_LOCK = threading.Lock()


def _said(point: Point) -> str:
    return re.sub(r"\s+", "", to_simplified(point.text))


class Answerer:
    """Builds extractive answers from an Engine; keeps sentence vectors per report revision."""

    def __init__(self, engine: Engine, reranker: Reranker | None = None,
                 retrieval: str | None = None) -> None:
        self.engine = engine
        self.reranker = reranker
        self.retrieval = retrieval
        self._chunks: tuple[object, dict[str, list]] | None = None

    # -- plumbing
    def searcher(self) -> Searcher:
        s = self.engine.searcher()
        s.reranker = self.reranker
        return s

    def segmented(self, doc: Document) -> Segmented:
        embedder = self.engine.embedder
        key = (embedder.name, embedder.revision, doc.doc_id, doc.content_hash,
               self.engine.index.lexicon)
        with _SEGMENTS_LOCK:
            seg = _SEGMENTS.get(key)
        if seg is None:
            seg = segment(doc)
            texts = [u.simplified for u in seg.units]
            seg.vectors = (embedder.encode(texts, "passage") if texts
                           else np.zeros((0, 1), np.float32))
            with _SEGMENTS_LOCK:
                if len(_SEGMENTS) >= SEGMENT_CACHE:
                    _SEGMENTS.pop(next(iter(_SEGMENTS)))
                _SEGMENTS[key] = seg
        return seg

    def _chunk_id(self, doc_id: str, start: int, end: int) -> str:
        index = self.engine.index
        if self._chunks is None or self._chunks[0] is not index:
            by_doc: dict[str, list] = {}
            for c in index.chunks:
                by_doc.setdefault(c.doc_id, []).append(c)
            self._chunks = (index, by_doc)
        best, overlap = f"{doc_id}#0", -1
        for c in self._chunks[1].get(doc_id, []):
            o = min(end, c.end) - max(start, c.start)
            if o > overlap:
                best, overlap = c.chunk_id, o
        return best

    def citation(self, doc: Document, u: Unit) -> Citation:
        return Citation(doc.doc_id, self._chunk_id(doc.doc_id, u.start, u.end), u.start, u.end,
                        doc.text[u.start:u.end])

    # -- public API
    def ask(self, question: str, *, by_locality: bool = False, k: int | None = None,
            filters: Filters | None = None, places: bool = True) -> Answer:
        question = (question or "").strip()
        index = self.engine.index
        if k is not None and k < 1:
            raise AnswerError("-k must be at least 1")
        localities = index.localities()
        searcher = self.searcher()
        prepare_query(question, index)  # validates the question as asked
        # “How does Luqiao …” is answered from Luqiao's reports (and those of places under it);
        # “2019年政府工作报告…” from that year's work reports, ranked by the rest of the question.
        plan = searcher.plan(question, filters, places)
        asked = plan.query or question
        # Adds hanzi for romanised places and Chinese terms for English questions, so that
        # sentences are scored on the words the reports use.
        prepared = searcher.expand(asked)
        kind = question_kind(question, localities)
        depth = max(3 * (k or DEFAULT_POINTS), 10)
        if by_locality:
            groups = list(searcher.search_by_locality(asked, depth, plan.filters,
                                                      self.retrieval,
                                                      every=kind == "priorities").items())
        else:
            groups = [(None, searcher.ranked(asked, depth, plan.filters, self.retrieval))]
        qvec = self.engine.embedder.encode([to_simplified(prepare_query(asked, index))],
                                           "query")[0]
        concepts = question_concepts(prepared, index.lexicon, localities)
        answer = Answer(question, EXTRACTIVE,
                        [self._answer_group(loc, hits, qvec, concepts, kind, k)
                         for loc, hits in groups], scope=plan.notice)
        if kind != "priorities" and not self._supported(prepared, concepts,
                                                          [h for _, hs in groups for h in hs]):
            answer.answered = False
            answer.notice = NOT_ANSWERED
        return answer

    def _supported(self, words: str, concepts: list[frozenset[str]], hits: list[Hit]) -> bool:
        """Whether the passages found speak of the question at all: one of the best mentions
        enough of its words, or BM25 matches them strongly. Calibrated on the development
        questions against questions the reports do not answer (benchmarks/offtopic.py)."""
        settings = self.engine.settings
        best = sorted(hits, key=lambda h: -h.score)[:3]
        if not best or not concepts:
            return bool(best)
        cover = max(sum(1 for c in concepts if c & set(tokenize(to_simplified(h.text),
                                                                  self.engine.index.lexicon)))
                    for h in best) / len(concepts)
        if cover >= settings.answered_coverage:
            return True
        index = self.engine.index
        rows = [index.chunk_row(h.chunk_id) for h in best]
        bm25 = index.bm25().scores(tokenize(words, index.lexicon))[rows]
        return float(bm25.max()) >= settings.answered_bm25

    def summarize_document(self, doc_id: str, k: int | None = None) -> Answer:
        index = self.engine.index
        doc = index.documents.get(doc_id)
        if doc is None:
            known = ", ".join(sorted(index.documents)) or "none"
            raise AnswerError(f"no report with id {doc_id!r} in the index (known: {known})")
        seg = self.segmented(doc)
        vecs = seg.vectors
        centroid = vecs.mean(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        relevance = vecs @ centroid
        points = self._select(seg, list(range(len(seg.units))), relevance, "priorities", k)
        return Answer(None, EXTRACTIVE, [LocalityAnswer(doc.locality, [doc.doc_id], points)],
                      doc_id=doc.doc_id)

    # -- internals
    def _answer_group(self, locality: str | None, hits: list[Hit], qvec: np.ndarray,
                      concepts: list[frozenset[str]], kind: str, k: int | None
                      ) -> LocalityAnswer:
        if not hits:
            return LocalityAnswer(locality, [], [])
        index = self.engine.index
        doc_order = list(dict.fromkeys(h.doc_id for h in hits))
        # Retrieval picks the reports and the passages; every sentence of the best reports is
        # then scored, passages found by retrieval getting a head start, since a report's own
        # list of priorities (or the one sentence that answers) may lie beyond the top passages.
        whole = kind == "priorities"
        docs_in_play = doc_order[:DOCS_PER_ANSWER]
        points: list[Point] = []
        for rank_doc, doc_id in enumerate(docs_in_play):
            seg = self.segmented(index.documents[doc_id])
            doc_hits = [(r, h) for r, h in enumerate(hits) if h.doc_id == doc_id]
            cos = seg.vectors @ qvec
            rel = np.zeros(len(seg.units), np.float32)
            for u in seg.units:
                prior = max((0.08 / (1 + 0.5 * r) for r, h in doc_hits
                             if u.start < h.end and u.end > h.start), default=0.0)
                tokens = self._tokens(u)
                overlap = sum(1 for c in concepts if c & tokens) / max(len(concepts), 1)
                rel[u.index] = (float(cos[u.index]) + LEXICAL_WEIGHT * overlap + prior
                                - 0.05 * rank_doc)
            points.extend(self._select(seg, range(len(seg.units)), rel, kind, k))
        # The same sentence in two reports (a story carried twice) is one point.
        seen: set[str] = set()
        points = [p for p in points if not (_said(p) in seen or seen.add(_said(p)))]
        if kind != "priorities" and points:
            # Keep only points near the best one: a weak sentence is worse than none.
            best = max(p.score for p in points)
            points = [p for p in points if p.score >= RELATIVE_FLOOR * best]
        if len(docs_in_play) > 1:
            limit = k or (MAX_ENUM_POINTS + 2 if whole else DEFAULT_POINTS)
            keep = sorted(points, key=lambda p: -p.score)[:limit]
            order = {d: i for i, d in enumerate(docs_in_play)}
            points = sorted(keep, key=lambda p: (order[p.citations[0].doc_id],
                                                 p.citations[0].start))
        doc_ids = list(dict.fromkeys(c.doc_id for p in points for c in p.citations))
        return LocalityAnswer(locality, doc_ids, points)

    def _tokens(self, u: Unit) -> set[str]:
        if u.tokens is None:
            u.tokens = set(tokenize(u.simplified, self.engine.index.lexicon))
        return u.tokens

    def _select(self, seg: Segmented, candidates: Sequence[int], relevance: np.ndarray,
                kind: str, k: int | None) -> list[Point]:
        """Pick points among `candidates` (unit indices) of one report.

        A bare priorities question gets the report's main enumeration (all of it when it fits)
        and up to two leading sentences from the rest; other questions get MMR over relevance,
        with a small preference for enumeration items when the question is about priorities.
        """
        units = seg.units
        # Framing says nothing about priorities; it may still answer a topical question.
        pool = [i for i in candidates if self._eligible(seg, units[i])
                and (kind == "topic" or units[i].framing is None)]
        if not pool:
            return []
        score_of = {i: float(relevance[i]) for i in pool}
        sim = seg.vectors @ seg.vectors.T
        if kind == "priorities" and seg.runs:
            main = self._main_run(seg, relevance)
            items = [j for i in main.units for j in _stand_ins(seg, i) if j in score_of]
            n_items = min(len(items), k or MAX_ENUM_POINTS)
            n_lead = 2 if k is None else max(0, min(2, k - n_items))
            chosen = self._mmr(items, score_of, sim, n_items, lam=0.9)
            # Leads: the sentence announcing the list, then the best of the rest.
            if n_lead and main.intro in score_of:
                chosen.append(main.intro)
                n_lead -= 1
            rest = [i for i in pool if i not in main.units and i not in chosen
                    and (units[i].run is not None or len(units[i].simplified) >= 20)]
            bonus = {i: 0.12 if units[i].run is not None else 0.0 for i in rest}
            lead_scores = {i: score_of[i] + bonus[i] for i in rest}
            chosen += self._mmr(rest, lead_scores, sim, n_lead, avoid=chosen)
        else:
            if kind != "topic":
                score_of = {i: sc + (0.1 if units[i].run is not None else 0.0)
                            for i, sc in score_of.items()}
            chosen = self._mmr(pool, score_of, sim, k or DEFAULT_POINTS)
        return self._points(seg, sorted(chosen), score_of)

    @staticmethod
    def _mmr(pool: list[int], score_of: dict[int, float], sim: np.ndarray, n: int,
             lam: float = MMR_LAMBDA, avoid: Sequence[int] = ()) -> list[int]:
        if not pool or n <= 0:
            return []
        rel = np.array([score_of[i] for i in pool], np.float32)
        # Items already chosen elsewhere count as "selected" for redundancy only.
        ids = list(avoid) + pool
        picked = mmr(np.concatenate([np.full(len(avoid), 9.0, np.float32), rel]),
                     sim[np.ix_(ids, ids)], len(avoid) + n, lam)
        return [ids[j] for j in picked if j >= len(avoid)]

    @staticmethod
    def _eligible(seg: Segmented, u: Unit) -> bool:
        if len(u.simplified) < MIN_CHARS or _boilerplate(u):
            return False
        title = to_simplified(seg.doc.title or "").strip()
        return not (u.index == 0 and title and u.simplified.strip() == title)

    def _main_run(self, seg: Segmented, relevance: np.ndarray) -> Run:
        """The report's main list of priorities: long, relevant, announced as work or tasks."""
        def weight(run: Run) -> float:
            mean = float(np.mean([relevance[i] for i in run.units]))
            intro = seg.units[run.intro].simplified if run.intro is not None else ""
            announced = 0.1 if _ANNOUNCED.search(intro) else 0.0
            implicit = 0.15 if run.family == STRESS_FAMILY else 0.0
            return mean + 0.03 * min(len(run.units), 10) + announced - implicit
        # A list inside one item of another is a detail of that item, never the main list.
        outer = [r for r in seg.runs if not _nested(seg, r)] or seg.runs
        return max(outer, key=weight)

    def _points(self, seg: Segmented, chosen: list[int], score_of: dict[int, float]
                ) -> list[Point]:
        """Points in report order; a short enumeration header takes the sentence after it."""
        doc, units = seg.doc, seg.units
        taken = set(chosen)
        points: list[Point] = []
        skip: set[int] = set()
        for i in chosen:
            if i in skip:
                continue
            group = [i]
            u = units[i]
            nxt = i + 1
            if (u.family is not None and len(u.simplified) < SHORT_HEADER and nxt < len(units)
                    and units[nxt].family is None and units[nxt].paragraph == u.paragraph):
                group.append(nxt)
                if nxt in taken:
                    skip.add(nxt)
            cites = [self.citation(doc, units[j]) for j in group]
            text = "".join(c.quote for c in cites)
            points.append(Point(text, cites, max(score_of.get(j, 0.0) for j in group)))
        return points


def check_citations(answer: Answer, documents: dict[str, Document]) -> list[str]:
    """Problems with an answer's citations (empty when every quote matches its offsets)."""
    problems = []
    for loc in answer.localities:
        for p in loc.points:
            for c in p.citations:
                doc = documents.get(c.doc_id)
                if doc is None or doc.text[c.start:c.end] != c.quote:
                    problems.append(f"{c.doc_id}[{c.start}:{c.end}] does not match its quote")
    return problems

