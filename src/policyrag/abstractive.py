"""Abstractive answers: a generative model rewrites the cited points, keeping their markers.

The extractive answer comes first (see `answer.py`); its points are numbered [1], [2], … and
handed to a `Generator` (see `generate.py`) with the question, per locality. The model writes a
short answer in the question's language (English question, English answer; traditional
question, traditional answer), ending each sentence with the markers of the points it used.
Each sentence becomes a point whose citations are those of the points it names, so the JSON
shape stays that of an extractive answer.

Nothing here may fail the user: no model, a model that cannot be reached, or output that is not
an answer (small models tend to echo the prompt, or drop the markers) all fall back to the
extractive points, with a notice that says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .answer import ABSTRACTIVE, EXTRACTIVE, Answer, Citation, LocalityAnswer, Point
from .generate import GenerationUnavailable, Generator, load_generator
from .script import detect_script, to_simplified, to_traditional

DEFAULT_MAX_TOKENS = 256
POINT_CHARS = 220      # each point is shown to the model cut to this many characters
_MARKER = re.compile(r"\[(\d{1,2})\]")
_CJK = re.compile(r"[\u4e00-\u9fff]")
# Sentence ends, with any markers that follow the punctuation kept on the sentence.
_SENTENCE = re.compile(r".+?(?:[。！？!?]|\.(?=\s|$|\[))(?:\s*\[\d{1,2}\])*|.+$", re.S)

LANGS = ("en", "zh-Hans", "zh-Hant")

_SYSTEM = {
    "en": ("You answer questions about Chinese local-government reports in English. Use only "
           "the numbered points you are given and do not add facts. End every sentence with "
           "the marker of each point it uses, such as [1] or [2][3]."),
    "zh-Hans": ("你根据给出的编号要点，用简体中文简要回答关于地方政府报告的问题。只能使用要点中的信息，"
                "不要编造。每句话末尾用方括号标出所依据要点的编号，如[1]或[2][3]。"),
}
_LABELS = {
    "en": ("Question", "Locality", "Points", "Write a short answer (at most {n} sentences) in "
           "English, with markers."),
    "zh-Hans": ("问题", "地区", "要点", "请用不超过{n}句话回答，并标注编号。"),
}


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


def build_prompt(question: str | None, locality: str | None, points: list[Point],
                 lang: str) -> tuple[str, str]:
    """(system, prompt) asking for an answer that cites the numbered points."""
    base = "en" if lang == "en" else "zh-Hans"
    q_label, loc_label, pts_label, ask = _LABELS[base]
    if question is None:
        question = ("What are the report's main priorities?" if base == "en"
                    else "这份报告的主要工作重点是什么？")
    lines = [f"{q_label}: {to_simplified(question) if base != 'en' else question}"]
    if locality:
        lines.append(f"{loc_label}: {locality}")
    lines.append(f"{pts_label}:")
    lines += [f"[{n}] {_shorten(to_simplified(p.text))}" for n, p in enumerate(points, 1)]
    lines += ["", ask.format(n=min(max(len(points), 2), 6))]
    return _SYSTEM[base], "\n".join(lines)


class UnusableOutput(ValueError):
    """The model answered, but not with a cited answer in the right language."""


def parse_answer(text: str, points: list[Point], lang: str) -> list[Point]:
    """The model's answer as points: one per sentence, citing the points its markers name.

    Raises UnusableOutput when the text is empty, echoes the prompt, names no valid point, or is
    in the wrong language.
    """
    text = (text or "").strip()
    if not text:
        raise UnusableOutput("the model returned nothing")
    scaffolding = [label for base in _LABELS.values() for label in base[:3]]
    if any(re.search(rf"(?m)^\s*{re.escape(label)}\s*[:：]", text) for label in scaffolding) \
            or any(system[:20] in text for system in _SYSTEM.values()):
        raise UnusableOutput("the model echoed the prompt instead of answering")
    for n, p in enumerate(points, 1):
        head = to_simplified(" ".join(p.text.split()))[:24]
        if len(head) >= 12 and head in to_simplified(text):
            raise UnusableOutput(f"the model copied point [{n}] instead of answering")
    body = _MARKER.sub("", text)
    cjk = len(_CJK.findall(body)) / max(len(re.sub(r"\s", "", body)), 1)
    if lang == "en" and cjk > 0.2:
        raise UnusableOutput("the model did not answer in English")
    if lang != "en" and cjk < 0.3:
        raise UnusableOutput("the model did not answer in Chinese")
    if lang == "zh-Hant":
        text = to_traditional(text)
    elif lang == "zh-Hans":
        text = to_simplified(text)

    out: list[Point] = []
    pending = ""  # a sentence without markers joins the next cited one
    for m in _SENTENCE.finditer(text):
        sentence = m.group(0).strip()
        if not sentence:
            continue
        numbers = [int(x) for x in _MARKER.findall(sentence)]
        valid = [n for n in dict.fromkeys(numbers) if 1 <= n <= len(points)]
        if numbers and not valid:
            raise UnusableOutput(f"the model cited points that do not exist: {numbers}")
        if not valid:
            pending = f"{pending} {sentence}".strip()
            continue
        cites: list[Citation] = []
        for n in valid:
            cites += [c for c in points[n - 1].citations if c not in cites]
        joiner = " " if lang == "en" else ""
        out.append(Point(joiner.join(x for x in (pending, sentence) if x), cites))
        pending = ""
    if not out:
        raise UnusableOutput("the answer carries no citation markers like [1]")
    if pending:
        out[-1].text += (" " if lang == "en" else "") + pending
    return _renumber(out, points)


def _renumber(out: list[Point], points: list[Point]) -> list[Point]:
    """Markers name the model's input points; rewrite them to number the answer's citations.

    After this, [m] in a locality's text is its m-th distinct citation in order of first use,
    the numbering that the human output and the batch report list as sources.
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

    for p in out:
        p.text = _MARKER.sub(sub, p.text)
        p.text = re.sub(r"(\[\d+\])(?:\1)+", r"\1", p.text)
    return out


GeneratorSource = Callable[[], Generator]


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

    def rewrite(self, extractive: Answer) -> Answer:
        """The abstractive answer, or the extractive one with a notice saying why not."""
        try:
            generator = self.generator()
        except GenerationUnavailable as exc:
            return _fallback(extractive, f"no generative model available ({exc})")
        lang = question_language(extractive.question, _doc_language(extractive))
        rewritten: list[LocalityAnswer] = []
        problems: list[str] = []
        for loc in extractive.localities:
            if not loc.points:
                rewritten.append(loc)
                continue
            system, prompt = build_prompt(extractive.question, loc.locality, loc.points, lang)
            try:
                text = generator.generate(prompt, system=system, max_tokens=self.max_tokens)
                points = parse_answer(text, loc.points, lang)
            except (GenerationUnavailable, UnusableOutput) as exc:
                problems.append(f"{loc.locality}: {exc}" if loc.locality else str(exc))
                rewritten.append(loc)
                continue
            rewritten.append(LocalityAnswer(loc.locality, loc.doc_ids, points))
        done = len([x for x in extractive.localities if x.points]) - len(problems)
        if done <= 0 and problems:
            return _fallback(extractive, "the model's output was not usable ("
                             + "; ".join(problems) + ")")
        notice = None
        if problems:
            notice = ("the model's output was not usable for " + "; ".join(problems)
                      + "; those localities show the extractive points instead")
        return Answer(extractive.question, ABSTRACTIVE, rewritten, notice, extractive.doc_id)


def _doc_language(answer: Answer) -> str:
    quotes = "".join(c.quote for loc in answer.localities for p in loc.points
                     for c in p.citations)[:2000]
    return "zh-Hant" if quotes and detect_script(quotes) == "traditional" else "zh-Hans"


def _fallback(extractive: Answer, why: str) -> Answer:
    notice = f"abstractive mode unavailable: {why}. Showing the extractive answer instead"
    return Answer(extractive.question, EXTRACTIVE, extractive.localities, notice,
                  extractive.doc_id)
