"""Abstractive answers: a generative model rewrites the cited points, and every sentence is checked.

The extractive answer comes first (see `answer.py`); its points are numbered [1], [2], … and
handed to a `Generator` (see `generate.py`) with the question, per locality. The model writes a
short answer in the question's language (English question, English answer; traditional
question, traditional answer: written in simplified, converted with OpenCC), each sentence
ending with the markers of the points it used. A llama.cpp grammar holds local models to that
"sentence [n]" shape. Each sentence is then checked against the points it cites
(`checker.py`); those that fail are dropped and counted. Each kept sentence becomes a point
whose citations are those of the points it names, so the JSON shape stays that of an extractive
answer.

Nothing here may fail the user: no model, a model that cannot be reached, or output of which
too little passes the check all fall back to the extractive points, with a notice that says so.
Generated text is never shown before it passed the check: streaming hands out checked
sentences only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from policyrag.answer.checker import Context, check_sentence, check_translation, is_echo
from policyrag.answer.extractive import (
    ABSTRACTIVE,
    EXTRACTIVE,
    Answer,
    Citation,
    LocalityAnswer,
    Point,
    question_kind,
)
from policyrag.answer.generate import GenerationUnavailable, Generator, load_generator
from policyrag.script import detect_script, to_simplified, to_traditional

DEFAULT_MAX_TOKENS = 160
POINT_CHARS = 110      # each point is shown to the model cut to this many characters
# The model sees only the best few points of a locality: the prompt is most of the time to the
# first sentence (prefill runs at ~35-100 tokens/s on one core), and a 1.5B model cites more
# faithfully from three points than from five.
GEN_POINTS = 3
# A "what are the priorities" answer goes through the list, one short sentence a point.
GEN_POINTS_PRIORITIES = 5
LIST_POINT_CHARS = 60
MAX_SENTENCES = 3
MAX_SENTENCES_EN = 2   # each English sentence costs a translation call (~2-5 s) on top
MAX_SENTENCE_CHARS_ZH = 60   # the grammar cuts a sentence here (see output_grammar)
MAX_SENTENCE_CHARS_EN = 300  # a Chinese sentence of 60 characters may need 250
# A priorities answer names each point's heading: given 60 characters, the model copied whole
# list items ("三要奋力开创…新局面,充分发挥…,提升…") and the copy check dropped them.
LIST_SENTENCE_CHARS_ZH = 32
MIN_KEPT_SHARE = 0.5   # fewer checked sentences than this share of those written: fall back
_MARKER = re.compile(r"\[(\d{1,2})\]")
_CJK = re.compile(r"[\u4e00-\u9fff]")
# Sentence ends, with any markers that follow the punctuation kept on the sentence.
_SENTENCE = re.compile(r".+?(?:[。！？!?]|\.(?=\s|$|\[))(?:\s*\[\d{1,2}\])*|.+$", re.S)
# A sentence in the grammar's shape is complete once its markers are closed by a full stop.
_STREAMED_END = re.compile(r"(?:\[\d{1,2}\])+\s*[。.]")
# Small models name the points in words (“要点1指出，…”, "Point 2 says ...") or number their
# sentences (“1、…”): the markers say it.
_POINT_REFERENCE = re.compile(
    r"^\s*(?:\d{1,2}|[一二三四五六七八九十])[、.．)）]\s*|^\s*[(（]\d{1,2}[)）]\s*|要点(?=\[)|"
    r"(?:根据|据)?要点\s*\d+(?:\s*[和、与及]\s*\d+)*(?:中|里)?(?:指出|强调|提到|提出|表明|显示|说明)?了?[，,]?"
    r"|\b(?:according to |as )?points? \d+(?:\s*(?:and|,)\s*\d+)*(?: (?:says|states|notes|shows))?,? ?",
    re.I)

LANGS = ("en", "zh-Hans", "zh-Hant")

# The system text and the worked example (one user turn and the answer to it) stay the same for
# every question, so llama.cpp reuses their evaluated prefix from the previous question. The
# example is in words unlikely in the reports (forest spas, tea festivals): a sentence repeating
# them, or using their words where the points do not, is dropped as an echo. It shows the shape
# the checker wants: short sentences in the writer's own words, each ending in the markers of
# the points it uses, the source place as subject, and an irrelevant point left out.
_SYSTEM = {
    "zh-Hans": ("你根据编号要点回答问题。只写要点里有的内容，不添加要点中没有的事实、数字、地名或人名。"
                "用一到三句话作答，每句不超过40字，用自己的话简要概括，不照抄原句；"
                "每句末尾写出所依据要点的编号。"),
}
_SYSTEM["en"] = _SYSTEM["zh-Hans"]  # English answers are written in Chinese, then translated
_EXAMPLE = (
    "问题：某县怎样做旺乡村旅游？\n地区：某县\n要点：\n"
    "[1]开辟森林康养步道，扶持精品民宿集群，让茶农多一份收入。\n"
    "[2]举办采茶节和山地马拉松，叫响“茶香某县”名号。\n"
    "[3]新建农村污水管网。\n请回答。",
    "某县开辟森林康养步道、扶持民宿，让茶农增收[1]。某县还借采茶节和马拉松叫响名号[2]。",
)
_TRANSLATE_SYSTEM = ("Translate the user's Chinese sentence from a local-government report into "
                     "one plain English sentence. Write place and person names in pinyin. Output "
                     "only the translation.")
TRANSLATION_TOKENS = 200
# One English sentence: no Chinese characters, no markers (they are put back afterwards).
TRANSLATION_GRAMMAR = "\n".join([
    f'root ::= [A-Z] ch{{3,{MAX_SENTENCE_CHARS_EN - 20}}} "."',
    r'ch ::= [^\[\]\n.!?\u3000-\u303f\u4e00-\u9fff\uff00-\uffef] | [0-9] "." [0-9]',
])
_LABELS = ("问题", "地区", "要点", "请回答。")
LIST_ASK = "请逐条概括：每句只写一个要点的主旨，不超过25字，句末写这个要点的编号。"


def question_language(question: str | None, fallback: str = "zh-Hans") -> str:
    """'en' for a question with no Chinese, else the question's Chinese script."""
    if not question:
        return fallback
    if not _CJK.search(question):
        return "en" if re.search(r"[A-Za-z]", question) else fallback
    return "zh-Hant" if detect_script(question) == "traditional" else "zh-Hans"


def _shorten(text: str, limit: int = POINT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_CLAUSE = re.compile(r"[^，,；;。：:！？]+[，,；;。：:！？]?")


def focus(text: str, words: set[str], limit: int = POINT_CHARS) -> str:
    """A long point cut to its clauses that share most words with the question, in their
    order, within `limit` characters: a shorter prompt is a faster first sentence, and fewer
    clauses leave the model less to copy out. The check still reads the whole point."""
    from policyrag.index.lexical import tokenize

    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    clauses = _CLAUSE.findall(text)
    score = [len(words & set(tokenize(c))) for c in clauses]
    keep: set[int] = set()
    used = 0
    for i in sorted(range(len(clauses)), key=lambda i: (-score[i], i)):
        if used + len(clauses[i]) > limit and keep:
            continue
        keep.add(i)
        used += len(clauses[i])
    out = "".join(clauses[i] for i in sorted(keep))
    return _shorten(out.rstrip("，,；;：:") + ("。" if out[-1:] not in "。！？" else ""), limit)


def build_prompt(question: str | None, locality: str | None, points: list[Point],
                 lang: str, sources: list[str | None] | None = None,
                 terms: str | None = None, listing: bool = False) -> tuple[str, str]:
    """(system, prompt) asking for an answer that cites the numbered points. Each point is
    labelled with the place whose report it quotes (`sources`), so that a question asking
    "which district…" is answered from the reports, not guessed. The model always writes
    simplified Chinese: an English answer is translated afterwards (see `Rewriter`). `terms`
    (an English question's Chinese search terms) pick the clauses of long points shown."""
    q_label, loc_label, pts_label, ask = _LABELS
    if question is None:
        question = "这份报告的主要工作重点是什么？"
    from policyrag.index.lexical import tokenize

    words = set(tokenize(f"{question} {terms or ''}"))
    sources = sources or [None] * len(points)
    one = locality or (sources[0] if len(set(sources)) == 1 else None)
    lines = [f"{q_label}：{to_simplified(question)}"]
    if one:
        lines.append(f"{loc_label}：{to_simplified(one)}")
    lines.append(f"{pts_label}：")
    for n, (p, source) in enumerate(zip(points, sources, strict=True), 1):
        label = f"（{to_simplified(source)}）" if source and not one else ""
        lines.append(f"[{n}]{label}"
                     f"{focus(to_simplified(p.text), words, LIST_POINT_CHARS if listing else POINT_CHARS)}")
    lines.append(LIST_ASK if listing else ask)
    return _SYSTEM["en" if lang == "en" else "zh-Hans"], "\n".join(lines)


def instructions_text(system: str) -> str:
    """What a sentence may not echo: the system text and the worked example."""
    return system + "\n示例：" + "\n".join(_EXAMPLE)


def generation_points(points: list[Point], priorities: bool = False) -> list[Point]:
    """The points the model sees: the best few by score, in report order."""
    n = GEN_POINTS_PRIORITIES if priorities else GEN_POINTS
    if len(points) <= n:
        return list(points)
    best = sorted(range(len(points)), key=lambda i: -points[i].score)[:n]
    return [points[i] for i in sorted(best)]


def output_grammar(lang: str, n_points: int, sentences: int = MAX_SENTENCES,
                   subject: str | None = None, chars: int = MAX_SENTENCE_CHARS_ZH) -> str:
    """GBNF for `sentences` sentences at most, each text then one to three markers of given
    points then a full stop, a Chinese one of `chars` characters at most; English forbids
    Chinese characters, Chinese forbids Latin words.
    A Chinese answer about a known place opens with its name: left free, the 1.5B model cut
    路桥区 to 桥区 (and then read 路桥 as "road bridge")."""
    numbers = " | ".join(f'"{n}"' for n in range(1, n_points + 1))
    more = " sent?" * (sentences - 1)
    if lang == "en":
        first = "sent"
        sent = f'sent ::= [A-Z] ch{{8,{MAX_SENTENCE_CHARS_EN - 1}}} " "? cite cite? cite? "." " "?'
        ch = r'ch ::= [^\[\]\n.!?\u3000-\u303f\u4e00-\u9fff\uff00-\uffef] | [0-9] "." [0-9]'
    else:
        first = "first" if subject else "sent"
        sent = f"sent ::= ch{{4,{chars}}} cite cite? cite? \"。\""
        if subject:
            sent += (f'\nfirst ::= "{subject}" ch{{2,{chars - len(subject)}}} '
                     'cite cite? cite? "。"')
        # No colon or bracket: small models otherwise open with “要点1：” and copy the point
        # after it, or write “（要点[1]）”.
        ch = r"ch ::= [^\[\]\n。！？!?.:：()（）a-zA-Z ]"
    return "\n".join([f"root ::= {first}{more}", sent, ch, 'cite ::= "[" num "]"',
                      f"num ::= {numbers}"])


class UnusableOutput(ValueError):
    """The model answered, but too little of it passed the check."""


@dataclass
class Checked:
    """One locality's generated answer after the check."""

    points: list[Point] = field(default_factory=list)
    written: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    # (sentence, reason) of each dropped sentence: for benchmarks and debugging, never shown.
    rejected: list[tuple[str, str]] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return bool(self.points) and len(self.points) >= MIN_KEPT_SHARE * self.written

    def why_not(self) -> str:
        if not self.written:
            return "the model wrote no sentence"
        reasons = ", ".join(f"{r} ({n})" for r, n in self.dropped.most_common(3))
        return (f"{len(self.points)} of {self.written} generated sentences passed the check "
                f"against the cited points; dropped: {reasons}")


def point_texts(points: list[Point], sources: list[str | None] | None = None) -> list[str]:
    """What each point supports, as the checker reads it: its text, after the place whose
    report it quotes (the model was shown that place beside the point)."""
    sources = sources or [None] * len(points)
    return [(f"{to_simplified(src)}：" if src else "") + to_simplified(" ".join(p.text.split()))
            for p, src in zip(points, sources, strict=True)]


def split_sentences(text: str) -> list[str]:
    return [m.group(0).strip() for m in _SENTENCE.finditer(text or "") if m.group(0).strip()]


class SentenceChecker:
    """Checks sentences one by one as they arrive; kept ones become points with citations."""

    def __init__(self, points: list[Point], lang: str, context: Context,
                 on_point: Callable[[Point], None] | None = None,
                 sources: list[str | None] | None = None,
                 chars: int = MAX_SENTENCE_CHARS_ZH) -> None:
        self.points = points
        self.lang = lang
        self.chars = chars  # the grammar's cap on a Chinese sentence
        self.context = context
        self.on_point = on_point
        self._texts = point_texts(points, sources)
        self.result = Checked()

    def add(self, sentence: str) -> None:
        sentence = _POINT_REFERENCE.sub("", sentence).strip()
        if not sentence:
            return
        self.result.written += 1
        if self.lang != "en" and _cut_off(sentence, self.lang, self.chars):
            sentence = _last_whole_clause(sentence) or sentence
        reason = _cut_off(sentence, self.lang, self.chars) or check_sentence(
            sentence, self._texts, self.lang, self.context)
        if reason is not None and reason.startswith(_MISCITED):
            sentence, reason = self._recited(sentence, reason)
        if reason is not None:
            self.result.dropped[reason.split(" (")[0]] += 1
            self.result.rejected.append((sentence, reason))
            return
        numbers = list(dict.fromkeys(int(x) for x in _MARKER.findall(sentence)))
        cites: list[Citation] = []
        for n in numbers:
            cites += [c for c in self.points[n - 1].citations if c not in cites]
        if self.lang == "zh-Hant":
            sentence = to_traditional(sentence)
        elif self.lang == "zh-Hans":
            sentence = to_simplified(sentence)
        self.result.points.append(Point(sentence, cites))
        if self.on_point is not None:
            self.on_point(renumber(self.result.points, self.points)[-1])

    def _recited(self, sentence: str, reason: str) -> tuple[str, str | None]:
        """A sentence citing one point that fails against it, but passes against exactly one
        other point, cites that one: a small model that skips an off-topic first point numbers
        the rest one too low. The sentence is checked in full against the point it now cites."""
        cited = set(_MARKER.findall(sentence))
        if len(cited) != 1:
            return sentence, reason
        body = _MARKER.sub("", sentence).strip().rstrip("。.").rstrip()
        form = "{} [{}]." if self.lang == "en" else "{}[{}]。"
        passing = [form.format(body, n) for n in range(1, len(self.points) + 1)
                   if str(n) not in cited]
        passing = [s for s in passing
                   if check_sentence(s, self._texts, self.lang, self.context) is None]
        return (passing[0], None) if len(passing) == 1 else (sentence, reason)

    def feed(self, pieces: Iterable[str]) -> str:
        """Check each sentence of a stream as soon as it is complete; returns the full text."""
        buffer, full = "", []
        for piece in pieces:
            full.append(piece)
            buffer += piece
            while m := _STREAMED_END.search(buffer):
                self.add(buffer[:m.end()])
                buffer = buffer[m.end():]
        if buffer.strip():
            self.add(buffer)
        return "".join(full)


# Words an English sentence cannot end on; a Chinese one cannot end on a comma or a list mark.
_DANGLING = re.compile(r"\b(?:is|are|was|of|the|a|an|and|or|to|in|on|for|with|by|as|its|their)"
                       r"\s*(?:\[\d+\])+\s*\.?$|[，、；,;：:]\s*(?:\[\d+\])+\s*。?$", re.I)


def _cut_off(sentence: str, lang: str, chars: int = MAX_SENTENCE_CHARS_ZH) -> str | None:
    """A sentence the length limit (or the model) broke off mid-way is no answer."""
    body = _MARKER.sub("", sentence).strip().rstrip("。.")
    if _DANGLING.search(sentence) or any(body.count(a) > body.count(b)
                                          for a, b in ("《》", "“”", "（）", "()")):
        return "sentence broken off"
    if len(body) >= (MAX_SENTENCE_CHARS_EN if lang == "en" else chars) - 1:
        return "sentence broken off at the length limit"
    return None


# Reasons a sentence's content does not match the point it cites (so another point might).
_MISCITED = ("words not supported", "place not in its points", "name not in its points",
             "number not in its points")
_CLAUSE_END = re.compile(r"[，,；;、]")  # a list cut after an item still says true things
MIN_CLAUSE_CHARS = 12


def _last_whole_clause(sentence: str) -> str | None:
    """A Chinese sentence broken off mid-clause (at the length limit, or “…打造“[2]。”), cut
    back to its last comma with its markers kept; None when too little would be left. What is
    left is checked like any sentence."""
    m = re.search(r"((?:\[\d{1,2}\])+)\s*。?\s*$", sentence)
    if not m:
        return None
    body = sentence[:m.start()]
    ends = [e.start() for e in _CLAUSE_END.finditer(body)]
    if not ends or ends[-1] < MIN_CLAUSE_CHARS:
        return None
    return body[:ends[-1]] + m.group(1) + "。"


def check_answer(text: str, points: list[Point], lang: str,
                 context: Context | None = None) -> Checked:
    """Every sentence of a whole generated answer checked (see `checker.check_sentence`)."""
    checker = SentenceChecker(points, lang, context or Context())
    if any(is_echo(text or "", system) for system in _SYSTEM.values()):
        checker.result.written = max(len(split_sentences(text)), 1)
        checker.result.dropped["echoes the prompt"] += checker.result.written
        return checker.result
    for sentence in split_sentences(text):
        checker.add(sentence)
    return checker.result


def parse_answer(text: str, points: list[Point], lang: str,
                 context: Context | None = None) -> list[Point]:
    """The checked answer as points, markers renumbered; UnusableOutput when too little passes."""
    result = check_answer(text, points, lang, context)
    if not result.usable:
        raise UnusableOutput(result.why_not())
    return renumber(result.points, points)


_MARKER_RUN = re.compile(r"(?:\[\d+\])+")


def _sorted_markers(m: re.Match[str]) -> str:
    numbers = sorted({int(x) for x in _MARKER.findall(m.group(0))})
    return "".join(f"[{n}]" for n in numbers)


def renumber(out: list[Point], points: list[Point]) -> list[Point]:
    """Markers name the model's input points; rewrite them to number the answer's citations.

    After this, [m] in a locality's text is its m-th distinct citation in order of first use,
    the numbering that the human output and the batch report list as sources. Returns copies.
    """
    number: dict[Citation, int] = {}
    for p in out:
        for c in p.citations:
            number.setdefault(c, len(number) + 1)

    def sub(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if not 1 <= n <= len(points):
            return ""
        return "".join(f"[{number[c]}]" for c in points[n - 1].citations)

    renumbered = []
    for p in out:
        text = _MARKER.sub(sub, p.text)
        renumbered.append(Point(_MARKER_RUN.sub(_sorted_markers, text), list(p.citations),
                                p.score))
    return renumbered


GeneratorSource = Callable[[], Generator]
# Called with (locality, point) for each checked sentence as soon as it passed.
OnPoint = Callable[[str | None, Point], None]


class Rewriter:
    """Turns extractive answers into abstractive ones with one generator, loaded on first use.

    `generator` may be a Generator, a zero-argument factory, or None for `load_generator(backend)`.
    A failure to load is remembered, so a batch asks only once.
    """

    def __init__(self, generator: Generator | GeneratorSource | None = None,
                 backend: str = "auto", max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self._source = generator
        self.backend = backend
        self.max_tokens = max_tokens
        self._generator: Generator | None = None
        self._unavailable: str | None = None
        # The check of each locality of the last rewrite, dropped sentences included (for
        # benchmarks/abstractive.py; never part of an answer).
        self.last_checks: list[Checked] = []
        self._sources: dict[str, str] = {}
        self._priorities = False
        self._terms: str | None = None  # an English question's Chinese search terms
        self._shown: list[Point] = []  # the points the model saw for the current locality

    def generator(self) -> Generator:
        if self._unavailable:
            raise GenerationUnavailable(self._unavailable)
        if self._generator is None:
            try:
                if self._source is None:
                    self._generator = load_generator(self.backend)
                elif callable(self._source) and not hasattr(self._source, "generate"):
                    self._generator = self._source()
                else:
                    self._generator = self._source  # type: ignore[assignment]
            except GenerationUnavailable as exc:
                self._unavailable = str(exc)
                raise
        return self._generator

    def rewrite(self, extractive: Answer, on_point: OnPoint | None = None,
                places: Iterable[str] = (), sources: Mapping[str, str] | None = None) -> Answer:
        """The abstractive answer, or the extractive one with a notice saying why not.

        `places` (the index's localities) lets an English question's romanised place names
        reach the model in characters; `sources` (doc_id → the locality of its report, see
        `index_context`) tells the model, and the check, whose report each point quotes."""
        self.last_checks = []
        if not extractive.answered:  # nothing to write from: the passages are off the question
            return extractive
        places = list(places)
        self._sources = dict(sources or {})
        self._priorities = extractive.question is None or question_kind(
            extractive.question, places) == "priorities"
        try:
            generator = self.generator()
        except GenerationUnavailable as exc:
            return _fallback(extractive, f"no generative model available ({exc})")
        lang = question_language(extractive.question, _doc_language(extractive))
        question = extractive.question
        named: str | None = None  # the place an English question names, in characters
        self._terms = None
        if lang == "en" and question:
            from policyrag.search.translate import translate_query, with_place_characters

            self._terms = translate_query(question, places)  # cached by the search before

            question = with_place_characters(question, places)
            named = next((p for p in places if p in question), None)
        rewritten: list[LocalityAnswer] = []
        problems: list[str] = []
        written = kept = 0
        self.last_checks = []
        for loc in extractive.localities:
            if not loc.points:
                rewritten.append(loc)
                continue
            try:
                result = self._locality(generator, question, loc, lang, on_point, named)
            except GenerationUnavailable as exc:
                problems.append(f"{loc.locality}: {exc}" if loc.locality else str(exc))
                rewritten.append(loc)
                continue
            written += result.written
            self.last_checks.append(result)
            if not result.usable:
                problems.append(f"{loc.locality}: {result.why_not()}" if loc.locality
                                else result.why_not())
                rewritten.append(loc)
                continue
            kept += len(result.points)
            rewritten.append(LocalityAnswer(loc.locality, loc.doc_ids,
                                            renumber(result.points, self._shown)))
        check = {"sentences_written": written, "sentences_kept": kept}
        done = len([x for x in extractive.localities if x.points]) - len(problems)
        if done <= 0 and problems:
            answer = _fallback(extractive, "too little of the model's answer could be checked "
                               "against the reports (" + "; ".join(problems) + ")")
            answer.check = check
            return answer
        notices = []
        if problems:
            notices.append("the generated answer did not pass the check for " + "; ".join(problems)
                           + "; those localities show the extractive points instead")
        if written > kept and not problems:
            notices.append(f"{written - kept} of {written} generated sentences were left out: "
                           "the cited points did not support them")
        return Answer(extractive.question, ABSTRACTIVE, rewritten,
                      "; ".join(notices) or None, extractive.doc_id, scope=extractive.scope,
                      check=check)

    def _locality(self, generator: Generator, question: str | None, loc: LocalityAnswer,
                  lang: str, on_point: OnPoint | None, named: str | None = None) -> Checked:
        emit = (lambda p: on_point(loc.locality, p)) if on_point else None
        if lang != "en":
            return self._write(generator, question, loc, lang, emit)
        # English: written and checked in Chinese first, where the check can compare words with
        # the reports', then each kept sentence translated and checked again (markers, numbers,
        # names, policy terms, no Chinese left). A direct English answer can only be checked
        # through a small glossary, and small models invent freely in English.
        chinese = self._write(generator, question, loc, "zh-Hans", None, named,
                              most=MAX_SENTENCES_EN)
        return self._translate(generator, question, loc, chinese, emit)

    def _write(self, generator: Generator, question: str | None, loc: LocalityAnswer,
               lang: str, emit: Callable[[Point], None] | None,
               named: str | None = None, most: int = MAX_SENTENCES) -> Checked:
        points = self._shown = generation_points(loc.points, self._priorities)
        sources = self._sources_of(points)
        # Each locality is asked about its own report: “各地区分别…” led the model to write
        # about “各地区” instead of the place.
        asked = None if self._priorities and loc.locality else question
        system, prompt = build_prompt(asked, loc.locality or named, points, lang, sources,
                                      self._terms, listing=self._priorities)
        context = Context(question or "", loc.locality, instructions_text(system))
        chars = LIST_SENTENCE_CHARS_ZH if self._priorities else MAX_SENTENCE_CHARS_ZH
        checker = SentenceChecker(points, lang, context, emit, sources, chars)
        if getattr(generator, "supports_grammar", False):
            # One place behind every point (the locality answered for, or the only report
            # quoted) opens the answer: the model otherwise guesses a place, or cuts 路桥区 to 桥区.
            subject = loc.locality or named or (sources[0] if len(set(sources)) == 1 else None)
            subject = to_simplified(subject) if subject else None
            # A priorities answer goes through the list: a sentence a point, each citing freely
            # (forcing the n-th sentence to cite [n] made the model describe the wrong point).
            most = len(points) if self._priorities and lang != "en" else most
            grammar = output_grammar(lang, len(points), min(len(points), most),
                                     subject if lang != "en" else None, chars)
            checker.feed(generator.stream(prompt, system=system,  # type: ignore[attr-defined]
                                          max_tokens=self.max_tokens, temperature=0.0,
                                          grammar=grammar, examples=[_EXAMPLE]))
            return checker.result
        text = generator.generate(prompt, system=instructions_text(system),
                                  max_tokens=self.max_tokens, temperature=0.0)
        if is_echo(text, system):
            return Checked(written=1, dropped=Counter({"echoes the prompt": 1}))
        for sentence in split_sentences(text):
            checker.add(sentence)
        return checker.result

    def _sources_of(self, points: list[Point]) -> list[str | None]:
        """The locality of the report each point quotes, where known."""
        return [next((self._sources[c.doc_id] for c in p.citations
                      if self._sources.get(c.doc_id)), None) for p in points]

    def _translate(self, generator: Generator, question: str | None, loc: LocalityAnswer,
                   chinese: Checked, emit: Callable[[Point], None] | None) -> Checked:
        out = Checked(written=chinese.written, dropped=Counter(chinese.dropped),
                      rejected=list(chinese.rejected))
        shown = self._shown
        sources = self._sources_of(shown)
        texts = point_texts(shown, sources)
        grammar = ({"grammar": TRANSLATION_GRAMMAR}
                   if getattr(generator, "supports_grammar", False) else {})
        for point in chinese.points:  # markers still name the model's input points
            source = _MARKER.sub("", point.text).strip().rstrip("。")
            marks = "".join(f"[{n}]" for n in dict.fromkeys(_MARKER.findall(point.text)))
            english = generator.generate(source, system=_translate_system(source),
                                         max_tokens=TRANSLATION_TOKENS, temperature=0.0,
                                         **grammar)  # type: ignore[call-arg]
            english = " ".join(_MARKER.sub("", english).split()).rstrip(".")
            sentence = f"{english} {marks}."
            context = Context(question or "", loc.locality, _TRANSLATE_SYSTEM)
            reason = (_cut_off(sentence, "en")
                      or check_translation(sentence, source, texts, context))
            if reason is not None:
                out.dropped[reason.split(" (")[0]] += 1
                out.rejected.append((sentence, reason))
                continue
            out.points.append(Point(sentence, list(point.citations)))
            if emit is not None:
                emit(renumber(out.points, shown)[-1])
        return out


def render_in_english(answer: Answer, generator: Generator | None = None) -> int:
    """Give each quoted Chinese point of `answer` an English rendering (`Point.translation`),
    written by the generative model and checked like a translated answer sentence (places,
    numbers and terms of the source kept, no Chinese left); a rendering that fails the check is
    left out. Returns how many points got one. Raises GenerationUnavailable without a model.
    About 1.5–2.5 s a point with the packaged model on 2 cores, hence only on request."""
    generator = generator or load_generator("auto")
    grammar = ({"grammar": TRANSLATION_GRAMMAR}
               if getattr(generator, "supports_grammar", False) else {})
    rendered = 0
    for loc in answer.localities:
        for point in loc.points:
            source = to_simplified(" ".join(point.text.split())).rstrip("。;；")
            english = generator.generate(source, system=_translate_system(source),
                                         max_tokens=TRANSLATION_TOKENS, temperature=0.0,
                                         **grammar)  # type: ignore[call-arg]
            english = " ".join(_MARKER.sub("", english).split()).rstrip(".")
            context = Context(answer.question or "", loc.locality, _TRANSLATE_SYSTEM)
            if english and check_translation(f"{english} [1].", source, [source],
                                             context) is None:
                point.translation = english + "."
                rendered += 1
    return rendered


def _translate_system(source: str) -> str:
    """The translation instructions, with the pinyin of the sentence's place and person names:
    told nothing, the model reads 路桥 as "road bridge" and spells 吴舜泽 "Wu Shengze"."""
    from policyrag.answer.checker import person_english, place_english, source_people, source_places

    found = source_places(source)
    names = [f"{p} = {place_english(p)}" for p in found if not any(p != q and p in q for q in found)]
    people = [f"{p} = {person_english(p)}" for p in source_people(source)]
    return (_TRANSLATE_SYSTEM + (f" Place names: {'; '.join(names)}." if names else "")
            + (f" Person names: {'; '.join(people)}." if people else ""))


def index_context(index: object) -> dict:
    """The `places` and `sources` keyword arguments of `Rewriter.rewrite` for an open index."""
    documents = getattr(index, "documents", {})
    return {"places": index.localities(),  # type: ignore[attr-defined]
            "sources": {d: doc.locality for d, doc in documents.items() if doc.locality}}


def _doc_language(answer: Answer) -> str:
    quotes = "".join(c.quote for loc in answer.localities for p in loc.points
                     for c in p.citations)[:2000]
    return "zh-Hant" if quotes and detect_script(quotes) == "traditional" else "zh-Hans"


def _fallback(extractive: Answer, why: str) -> Answer:
    notice = f"abstractive mode unavailable: {why}. Showing the extractive answer instead"
    return Answer(extractive.question, EXTRACTIVE, extractive.localities, notice,
                  extractive.doc_id, scope=extractive.scope)
