"""Measuring retrieval: question files, span-based relevance, ranking metrics, key-point coverage.

A question names the report that answers it (`doc`) and a few short `spans`; a retrieved chunk
is relevant when it comes from that report and contains at least one span. Both sides are
compared after `normalise` (pinyin glosses stripped, traditional folded to simplified, NFKC,
whitespace removed), so a span written in either script matches a chunk in either script.

Metrics, per question, averaged over questions:

- recall@k: 1 if a relevant chunk is among the first k hits, else 0 (the "answer found in the
  top k" rate; a question counts once however many of its chunks are retrieved).
- MRR@10: 1 / rank of the first relevant hit within the first 10, else 0.
- nDCG@10: binary gains, DCG = sum(rel_i / log2(i + 1)), divided by the ideal DCG of
  min(R, 10) relevant chunks, where R is how many chunks of the corpus are relevant to the
  question (overlapping chunks can both hold a span).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from policyrag.ingest.cleaning import strip_pinyin
from policyrag.script import to_simplified

CUTOFFS = (1, 3, 5, 10)
DEPTH = 10  # MRR and nDCG are taken at 10; recall@10 needs 10 hits too
METRICS = tuple(f"recall@{c}" for c in CUTOFFS) + ("mrr@10", "ndcg@10")
REQUIRED = ("id", "q", "doc", "spans")
_SPACE = re.compile(r"\s+")


class QuestionFileError(ValueError):
    """A question or key-points file that cannot be used; the message names file and line."""


# ---- normalisation ---------------------------------------------------------------------------

@lru_cache(maxsize=65536)
def normalise(text: str) -> str:
    """The form spans and chunks are compared in: no pinyin, simplified, NFKC, no whitespace."""
    text = unicodedata.normalize("NFKC", text or "")
    text = to_simplified(strip_pinyin(text))
    # OpenCC may emit compatibility forms again; a second NFKC keeps the result a fixed point.
    text = unicodedata.normalize("NFKC", text)
    return _SPACE.sub("", text).casefold()


# ---- questions -------------------------------------------------------------------------------

@dataclass
class Question:
    id: str
    q: str
    doc: str
    spans: list[str]
    lang: str | None = None
    kind: str | None = None
    line: int = 0
    place: str | None = None  # "named" when the question names its place, else "none"

    @property
    def norm_spans(self) -> tuple[str, ...]:
        return tuple(s for s in (normalise(x) for x in self.spans) if s)

    def relevant(self, doc_id: str, text: str) -> bool:
        if doc_id != self.doc:
            return False
        body = normalise(text)
        return any(s in body for s in self.norm_spans)


def parse_questions(lines: Iterable[str], source: str = "<questions>",
                    known_docs: Collection[str] | None = None) -> list[Question]:
    """Questions from JSON Lines; blank lines and lines starting with # are skipped."""
    questions: list[Question] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuestionFileError(f"{where}: not valid JSON ({exc.msg} at column "
                                    f"{exc.colno})") from exc
        if not isinstance(row, dict):
            raise QuestionFileError(f"{where}: expected a JSON object "
                                    '{"id", "q", "doc", "spans"}')
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise QuestionFileError(f"{where}: missing field(s) {', '.join(missing)}; each "
                                    'line needs {"id", "q", "doc", "spans"}')
        qid, q, doc, spans = (row[k] for k in REQUIRED)
        if not isinstance(qid, (str, int)) or isinstance(qid, bool) or not str(qid).strip():
            raise QuestionFileError(f"{where}: id must be a non-empty string")
        qid = str(qid)
        if qid in seen:
            raise QuestionFileError(f"{where}: duplicate id {qid!r} (first on line {seen[qid]})")
        if not isinstance(q, str) or not q.strip():
            raise QuestionFileError(f"{where}: q must be a non-empty string (the question)")
        if not isinstance(doc, str) or not doc.strip():
            raise QuestionFileError(f"{where}: doc must be a doc_id string")
        if (not isinstance(spans, list) or not spans
                or not all(isinstance(s, str) and normalise(s) for s in spans)):
            raise QuestionFileError(f"{where}: spans must be a non-empty list of non-empty "
                                    "strings")
        for opt in ("lang", "kind", "place"):
            if row.get(opt) is not None and not isinstance(row[opt], str):
                raise QuestionFileError(f"{where}: {opt} must be a string")
        if known_docs is not None and doc not in known_docs:
            raise QuestionFileError(
                f"{where}: unknown doc {doc!r}; the index holds "
                f"{', '.join(sorted(known_docs)) or 'no reports'} (see: policyrag index info)")
        seen[qid] = n
        questions.append(Question(qid, q, doc, list(spans), row.get("lang"), row.get("kind"), n,
                                  row.get("place")))
    if not questions:
        raise QuestionFileError(f"{source}: no questions in the file")
    return questions


def load_questions(path: Path | str, known_docs: Collection[str] | None = None) -> list[Question]:
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionFileError(f"cannot read {path}: {exc}") from exc
    return parse_questions(text.splitlines(), str(path), known_docs)


# ---- metrics ---------------------------------------------------------------------------------

def recall_at(rels: Sequence[bool], k: int) -> float:
    return 1.0 if any(rels[:k]) else 0.0


def reciprocal_rank(rels: Sequence[bool], k: int = DEPTH) -> float:
    for i, rel in enumerate(rels[:k], 1):
        if rel:
            return 1.0 / i
    return 0.0


def ndcg_at(rels: Sequence[bool], k: int = DEPTH, n_relevant: int | None = None) -> float:
    """Binary nDCG; `n_relevant` is how many relevant items exist (default: those in `rels`)."""
    dcg = sum(1.0 / math.log2(i + 1) for i, rel in enumerate(rels[:k], 1) if rel)
    ideal_n = sum(map(bool, rels)) if n_relevant is None else n_relevant
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(ideal_n, k) + 1))
    return dcg / ideal if ideal else 0.0


def first_rank(rels: Sequence[bool]) -> int | None:
    return next((i for i, rel in enumerate(rels, 1) if rel), None)


def question_scores(rels: Sequence[bool], n_relevant: int | None = None) -> dict[str, float]:
    out = {f"recall@{c}": recall_at(rels, c) for c in CUTOFFS}
    out["mrr@10"] = reciprocal_rank(rels, DEPTH)
    out["ndcg@10"] = ndcg_at(rels, DEPTH, n_relevant)
    return out


def mean_scores(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return dict.fromkeys(METRICS, 0.0)
    return {m: sum(r[m] for r in rows) / len(rows) for m in METRICS}


# ---- running a question set ------------------------------------------------------------------

# A search function: (question text, number of hits) -> ranked (doc_id, chunk text) pairs.
SearchFn = Callable[[str, int], Sequence[tuple[str, str]]]


@dataclass
class Outcome:
    id: str
    q: str
    doc: str
    lang: str | None
    kind: str | None
    rank: int | None          # rank of the first relevant hit within DEPTH, or None
    n_relevant: int           # relevant chunks in the whole corpus
    scores: dict[str, float]
    top: list[dict[str, str]] = field(default_factory=list)  # first hits, for the misses list
    place: str | None = None


@dataclass
class Report:
    mode: str
    k: int
    outcomes: list[Outcome]

    def overall(self) -> dict[str, float]:
        return mean_scores([o.scores for o in self.outcomes])

    def by(self, attr: str) -> dict[str, dict[str, float]]:
        groups: dict[str, list[dict[str, float]]] = {}
        for o in self.outcomes:
            groups.setdefault(getattr(o, attr) or "-", []).append(o.scores)
        return {g: {"n": len(rows), **mean_scores(rows)} for g, rows in sorted(groups.items())}

    def misses(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.rank is None or o.rank > self.k]

    def unanswerable(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.n_relevant == 0]

    def to_dict(self, per_question: bool = False) -> dict:
        out = {"mode": self.mode, "k": self.k, "n": len(self.outcomes),
               "overall": self.overall(), "by_lang": self.by("lang"), "by_kind": self.by("kind"),
               "misses": [asdict(o) for o in self.misses()],
               "unanswerable": [o.id for o in self.unanswerable()]}
        if per_question:
            out["questions"] = [asdict(o) for o in self.outcomes]
        return out


def relevant_counts(questions: Sequence[Question],
                    chunks: Iterable[tuple[str, str]]) -> dict[str, int]:
    """How many chunks of the corpus each question's spans occur in."""
    by_doc: dict[str, list[Question]] = {}
    for q in questions:
        by_doc.setdefault(q.doc, []).append(q)
    counts = {q.id: 0 for q in questions}
    for doc_id, text in chunks:
        for q in by_doc.get(doc_id, ()):
            if q.relevant(doc_id, text):
                counts[q.id] += 1
    return counts


def evaluate(questions: Sequence[Question], search: SearchFn, k: int = 5, mode: str = "",
             counts: dict[str, int] | None = None) -> Report:
    """Run every question through `search` and score the ranking against its spans."""
    depth = max(DEPTH, k)
    outcomes = []
    for q in questions:
        hits = list(search(q.q, depth))[:depth]
        rels = [q.relevant(doc_id, text) for doc_id, text in hits]
        n_rel = counts.get(q.id, 0) if counts is not None else sum(rels)
        top = [{"doc": d, "text": t[:80]} for d, t in hits[:3]]
        outcomes.append(Outcome(q.id, q.q, q.doc, q.lang, q.kind, first_rank(rels), n_rel,
                                question_scores(rels, n_rel), top, q.place))
    return Report(mode, k, outcomes)


def engine_search(engine, mode: str) -> SearchFn:
    """A SearchFn over a policyrag Engine in one retrieval mode."""
    def search(query: str, n: int) -> list[tuple[str, str]]:
        return [(h.doc_id, h.text) for h in engine.search(query, n, None, mode)]
    return search


def evaluate_engine(engine, questions: Sequence[Question], modes: Sequence[str],
                    k: int = 5) -> list[Report]:
    counts = relevant_counts(questions, ((c.doc_id, c.text) for c in engine.index.chunks))
    return [evaluate(questions, engine_search(engine, m), k, m, counts) for m in modes]


# ---- text report -----------------------------------------------------------------------------

def _row(label: str, mode: str, n: int, scores: dict[str, float]) -> str:
    return f"{label:<16} {mode:<8} {n:>4} " + " ".join(f"{scores[m]:>9.3f}" for m in METRICS)


def format_reports(reports: Sequence[Report], show_misses: bool = True) -> str:
    head = f"{'group':<16} {'mode':<8} {'n':>4} " + " ".join(f"{m:>9}" for m in METRICS)
    lines = [head, "-" * len(head)]
    for r in reports:
        lines.append(_row("all", r.mode, len(r.outcomes), r.overall()))
    for attr in ("lang", "kind", "place"):
        groups = sorted({g for r in reports for g in r.by(attr)})
        if groups == ["-"]:
            continue
        for g in groups:
            for r in reports:
                s = r.by(attr).get(g)
                if s:
                    lines.append(_row(f"{attr}={g}", r.mode, int(s["n"]), s))
    if show_misses:
        lines.append(format_misses(reports))
    return "\n".join(lines)


def format_misses(reports: Sequence[Report]) -> str:
    lines = []
    for r in reports:
        bad = r.unanswerable()
        if bad:
            lines.append(f"\nwarning: no chunk holds any span of: {', '.join(o.id for o in bad)} "
                         "(these can never be hit; fix their spans)")
        misses = r.misses()
        lines.append(f"\nmisses ({r.mode}, no relevant chunk in top {r.k}): {len(misses)}")
        for o in misses:
            where = f"rank {o.rank}" if o.rank else f"not in top {max(DEPTH, r.k)}"
            tags = "/".join(x for x in (o.lang, o.kind) if x)
            top = o.top[0]["doc"] if o.top else "nothing"
            lines.append(f"  {o.id:<8} [{tags}] {where}; top hit from {top}: {o.q}")
    return "\n".join(lines)


def format_side_by_side(seeds: Sequence[Report], scale: Sequence[Report],
                        attrs: Sequence[str] = ("lang", "kind", "place")) -> str:
    """recall@5 and MRR@10 of the same questions on two indexes, per mode and group."""
    head = (f"{'group':<16} {'mode':<8} {'n':>4} {'R@5 seeds':>10} {'R@5 scale':>10} "
            f"{'MRR seeds':>10} {'MRR scale':>10}")
    lines = [head, "-" * len(head)]
    for a, b in zip(seeds, scale, strict=True):
        groups = [("all", a.overall(), b.overall(), len(a.outcomes))]
        for attr in attrs:
            ga, gb = a.by(attr), b.by(attr)
            groups += [(f"{attr}={g}", ga[g], gb[g], int(ga[g]["n"])) for g in ga
                       if g != "-" and g in gb]
        for label, sa, sb, n in groups:
            lines.append(f"{label:<16} {a.mode:<8} {n:>4} {sa['recall@5']:>10.3f} "
                         f"{sb['recall@5']:>10.3f} {sa['mrr@10']:>10.3f} {sb['mrr@10']:>10.3f}")
    return "\n".join(lines)


# ---- key-point coverage for "what did each locality prioritize" ------------------------------

def load_keypoints(path: Path | str) -> dict:
    """{"questions": [str, ...], "keypoints": {locality: [phrase | [alternative, ...], ...]}}.

    "questions" are phrasings of "what did each locality prioritize" (a single "question" is
    accepted too); the same key points score the answer to each.
    """
    path = Path(path)
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionFileError(f"cannot read {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise QuestionFileError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
    points = data.get("keypoints") if isinstance(data, dict) else None
    if not isinstance(points, dict) or not points:
        raise QuestionFileError(f"{path}: expected {{\"question\": ..., \"keypoints\": "
                                "{locality: [phrases]}}")
    questions = keypoint_questions(data)
    if not questions or not all(isinstance(q, str) and q.strip() for q in questions):
        raise QuestionFileError(f"{path}: \"questions\" must be a non-empty list of questions")
    for loc, items in points.items():
        if not isinstance(items, list) or not items or not all(
                (isinstance(i, str) and i) or (isinstance(i, list) and i
                                                and all(isinstance(a, str) and a for a in i))
                for i in items):
            raise QuestionFileError(f"{path}: keypoints for {loc!r} must be a non-empty list of "
                                    "phrases or lists of alternative phrases")
    return data


def keypoint_questions(data: dict) -> list:
    if "questions" in data:
        return data["questions"] if isinstance(data["questions"], list) else []
    return [data["question"]] if "question" in data else []


def _alternatives(item: str | list[str]) -> list[str]:
    return [item] if isinstance(item, str) else list(item)


def _answer_block(answer: dict, locality: str) -> dict | None:
    from policyrag.ingest.gazetteer import same_place

    blocks = answer.get("localities") or []
    exact = [b for b in blocks if normalise(b.get("locality") or "") == normalise(locality)]
    if exact:
        return exact[0]
    return next((b for b in blocks if b.get("locality")
                 and same_place(b["locality"], locality)), None)


def keypoint_coverage(answer: dict, keypoints: dict) -> dict:
    """Per locality, the fraction of key points whose normalised text occurs in its points.

    `answer` has the shape of `policyrag ask --by-locality --json`:
    {"question", "mode", "localities": [{"locality", "doc_ids", "points": [{"text",
    "citations"}]}]}. `keypoints` is {locality: [phrase | [alternatives]]} or the whole
    key-points file. A locality missing from the answer scores 0.
    """
    table = keypoints.get("keypoints", keypoints)
    per: list[dict] = []
    for loc, items in table.items():
        block = _answer_block(answer, loc)
        body = normalise("".join(p.get("text", "") for p in (block or {}).get("points") or []))
        covered, missing = [], []
        for item in items:
            alts = _alternatives(item)
            (covered if any(normalise(a) in body for a in alts if normalise(a))
             else missing).append(alts[0])
        per.append({"locality": loc, "answered": block is not None,
                    "score": len(covered) / len(items), "covered": covered, "missing": missing})
    total = sum(len(p["covered"]) + len(p["missing"]) for p in per)
    return {
        "localities": per,
        "macro": sum(p["score"] for p in per) / len(per) if per else 0.0,
        "micro": sum(len(p["covered"]) for p in per) / total if total else 0.0,
    }


def format_coverage(cov: dict) -> str:
    lines = [f"{'locality':<12} {'score':>6}  missing"]
    for p in cov["localities"]:
        note = "" if p["answered"] else " (locality absent from the answer)"
        lines.append(f"{p['locality']:<12} {p['score']:>6.2f}  {', '.join(p['missing'])}{note}")
    lines.append(f"{'macro':<12} {cov['macro']:>6.2f}")
    lines.append(f"{'micro':<12} {cov['micro']:>6.2f}")
    return "\n".join(lines)
