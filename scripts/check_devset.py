"""Check the development question set against the seed reports and print its make-up.

    PYTHONPATH=src python scripts/check_devset.py [questions.jsonl] [--seeds seeds/]

Errors (exit status 1): a span that does not occur in its report's cleaned text after
`evaluation.normalise`, a duplicate id, an unknown doc, a lang/kind/place outside the allowed
values, a `place` label that disagrees with the question text (a "named" question must name its
report's place, a "none" question must name no place of any report), or a question whose script
does not match its `lang`. Warnings (printed, not fatal): spans outside 4-20 characters and
spans that also occur in another seed report, since those identify the report less well.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from policyrag.evaluation import QuestionFileError, load_questions, normalise
from policyrag.ingest.documents import load_documents
from policyrag.script import to_simplified

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_QUESTIONS = ROOT / "tests" / "data" / "dev_questions.jsonl"
DEFAULT_SEEDS = ROOT / "seeds"

LANGS = ("zh-Hans", "zh-Hant", "en")
KINDS = ("fact", "paraphrase")
PLACES = ("named", "none")
SPAN_CHARS = (4, 20)

# How a question may name the place of each seed report (matched on the simplified, casefolded
# question). The development zone is named only together with 丽水 / Lishui: a bare 经开区
# ("the development zone") does not say which one.
PLACE_NAMES = {
    "000_e9f0a6d5a56f891f": ("莲都", "liandu"),
    "001_758a5b4942a02065": ("丽水", "lishui"),
    "002_e8d0747b3dfad330": ("路桥", "luqiao"),
    "003_44711a7aea527f8e": ("丽水经开区", "丽水经济技术开发区", "lishui economic development zone",
                             "lishui development zone"),
    "004_c93a4296dfa4c8a6": ("温州", "wenzhou"),
}
# Names a "none" question must not contain either: the reports' places and their parents.
ANY_PLACE = tuple(sorted({n for names in PLACE_NAMES.values() for n in names}
                         | {"台州", "taizhou", "浙江", "zhejiang", "浙丽", "瓯江", "oujiang"}))


@dataclass
class CheckResult:
    n: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, Counter] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def seed_texts(seeds: Path) -> dict[str, str]:
    """doc_id -> normalised cleaned text, exactly what retrieval chunks are cut from."""
    docs, errors = load_documents([seeds])
    if errors:
        raise SystemExit(f"cannot read seeds: {errors}")
    return {d.doc_id: normalise(d.text) for d in docs}


def _raw_rows(path: Path) -> dict[str, dict]:
    """The JSON objects by id, for the fields `Question` does not keep (place)."""
    rows = {}
    for line in path.read_text("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            row = json.loads(line)
            rows[str(row["id"])] = row
    return rows


def _folded(text: str) -> str:
    return to_simplified(text).casefold()


def names_place(q: str, names: tuple[str, ...]) -> bool:
    folded = _folded(q)
    return any(n in folded for n in names)


def _script_error(q: str, lang: str) -> str | None:
    has_han = any("\u4e00" <= ch <= "\u9fff" for ch in q)
    if lang == "en":
        return "lang en but the question contains Chinese characters" if has_han else None
    if not has_han:
        return f"lang {lang} but the question has no Chinese characters"
    is_simplified = to_simplified(q) == q
    if lang == "zh-Hans" and not is_simplified:
        return "lang zh-Hans but the question contains traditional characters"
    if lang == "zh-Hant" and is_simplified:
        return "lang zh-Hant but the question is in simplified script"
    return None


def _check_place(qid: str, q: str, doc: str, place: object) -> str | None:
    if place not in PLACES:
        return f"{qid}: place must be one of {PLACES}, got {place!r}"
    if place == "named" and not names_place(q, PLACE_NAMES.get(doc, ())):
        return f"{qid}: place 'named' but the question does not name its report's place"
    if place == "none" and names_place(q, ANY_PLACE):
        return f"{qid}: place 'none' but the question names a place"
    return None


def _check_spans(qid: str, spans: list[str], doc: str, texts: dict[str, str],
                 result: CheckResult) -> None:
    lo, hi = SPAN_CHARS
    for span in spans:
        norm = normalise(span)
        if norm not in texts[doc]:
            result.errors.append(f"{qid}: span {span!r} does not occur in {doc}")
            continue
        if not lo <= len(norm) <= hi:
            result.warnings.append(f"{qid}: span {span!r} has {len(norm)} characters "
                                   f"(aim for {lo}-{hi})")
        others = [d for d, text in texts.items() if d != doc and norm in text]
        if others:
            result.warnings.append(f"{qid}: span {span!r} also occurs in {', '.join(others)}")


def check(questions_path: Path, seeds: Path = DEFAULT_SEEDS) -> CheckResult:
    texts = seed_texts(seeds)
    result = CheckResult()
    try:
        questions = load_questions(questions_path, set(texts))  # also rejects duplicate ids
    except QuestionFileError as exc:
        result.errors.append(str(exc))
        return result
    rows = _raw_rows(questions_path)
    result.n = len(questions)
    result.counts = {k: Counter() for k in ("lang", "kind", "place", "doc")}
    for q in questions:
        place = rows[q.id].get("place")
        for key, value, allowed in (("lang", q.lang, LANGS), ("kind", q.kind, KINDS)):
            if value not in allowed:
                result.errors.append(f"{q.id}: {key} must be one of {allowed}, got {value!r}")
        if q.lang in LANGS and (problem := _script_error(q.q, q.lang)):
            result.errors.append(f"{q.id}: {problem}")
        if problem := _check_place(q.id, q.q, q.doc, place):
            result.errors.append(problem)
        _check_spans(q.id, q.spans, q.doc, texts, result)
        for key, value in (("lang", q.lang), ("kind", q.kind), ("place", place),
                           ("doc", q.doc)):
            result.counts[key][str(value)] += 1
    return result


def format_result(result: CheckResult) -> str:
    lines = [f"{result.n} questions"]
    for key, counter in result.counts.items():
        parts = ", ".join(f"{k} {v} ({v / result.n:.0%})" for k, v in sorted(counter.items()))
        lines.append(f"  {key}: {parts}")
    lines += [f"warning: {w}" for w in result.warnings]
    lines += [f"ERROR: {e}" for e in result.errors]
    lines.append("OK" if result.ok else f"{len(result.errors)} error(s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", nargs="?", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS)
    args = parser.parse_args(argv)
    result = check(args.questions, args.seeds)
    print(format_result(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
