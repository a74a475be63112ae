"""Retrieval quality and latency with the seeds buried in a large collection of real texts.

    python benchmarks/scale.py                    # builds indexes/scale once, then measures
    python benchmarks/scale.py --haystack FILE.jsonl.gz --index DIR --json figures.json

Prints, side by side, recall@5 and MRR@10 of the development questions on the seeds alone and
at scale (the seeds plus every text of the haystack: `../shared/corpus/distractors-dev.jsonl.gz`
by default), per retrieval mode, language, kind and whether the question names its place; then
warm latency at scale: `search` p50/p95, extractive `ask` p50/p95, the by-locality
comparison with no filter, and English `search` without and with the second encoder's opinion
when EmbeddingGemma is fetched. The at-scale index is built once (about 10 minutes on 2 cores for
the default haystack) and reused while it exists; if its BM25 tokens were cut by an older
policyrag, it is compacted first (about a minute), so that the figures are those of this code.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from policyrag.answer.extractive import Answerer  # noqa: E402
from policyrag.config import Settings  # noqa: E402
from policyrag.engine import Engine  # noqa: E402
from policyrag.evaluation import (  # noqa: E402
    evaluate_engine,
    format_side_by_side,
    load_questions,
)
from policyrag.index import report_vectors  # noqa: E402
from policyrag.index.segments import current_tokens  # noqa: E402
from policyrag.script import is_english  # noqa: E402
from policyrag.search import second_opinion  # noqa: E402
from policyrag.search.retrieval import MODES  # noqa: E402

DEV = ROOT / "tests" / "data" / "dev_questions.jsonl"
KEYPOINTS = ROOT / "tests" / "data" / "locality_keypoints.json"
HAYSTACK = ROOT.parent / "shared" / "corpus" / "distractors-dev.jsonl.gz"


def timed(fn, items) -> dict[str, float]:
    samples = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        samples.append(time.perf_counter() - t)
    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1), "n": len(samples)}


def build(root: Path, paths: list[Path]) -> float:
    t = time.perf_counter()
    Engine(root, progress=True).build(paths)
    return time.perf_counter() - t


def second_opinion_latency(root: Path, scale: Engine, queries: list[str]) -> dict:
    """English `search` without and with the second encoder (search/second_opinion.py), one
    after the other; then with it embedding its passages anew each time, as for passages it
    has not seen. Nothing when that encoder is not here (`make demo` fetches it)."""
    english = [q for q in queries if is_english(q)]
    model = second_opinion.encoder(scale.settings.english_rerank)
    if model is None or not english or model.name == scale.embedder.name:
        return {}
    without = Engine(root, settings=Settings(english_rerank="none"))
    rows = {"search_en_fused": timed(lambda q: without.search(q, 5), english),
            "search_en_2nd": timed(lambda q: scale.search(q, 5), english)}
    kept, model.vector_cache = getattr(model, "vector_cache", None), None
    try:
        rows["search_en_2nd_cold"] = timed(lambda q: scale.search(q, 5), english)
    finally:
        model.vector_cache = kept
    return rows


def report_vector_latency(root: Path, scale: Engine, queries: list[str]) -> dict:
    """`search` without and with the index's report vectors (`policyrag index encode-reports`),
    one after the other; nothing when the index has none."""
    if report_vectors.matrix(scale.index) is None:
        return {}
    without = Engine(root, settings=Settings(report_vectors=False))
    return {"search_no_report_vectors": timed(lambda q: without.search(q, 5), queries),
            "search_report_vectors": timed(lambda q: scale.search(q, 5), queries)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", type=Path, default=ROOT / "indexes" / "scale")
    ap.add_argument("--haystack", type=Path, default=HAYSTACK)
    ap.add_argument("--questions", type=Path, default=DEV)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    seeds = ROOT / "seeds"
    figures: dict = {}
    if not (args.index / "CURRENT").exists():
        if not args.haystack.exists():
            ap.error(f"no haystack at {args.haystack}; give --haystack FILE.jsonl.gz")
        figures["build_s"] = round(build(args.index, [seeds, args.haystack]), 1)
    scale = Engine(args.index)
    if any(not current_tokens(s.get("lexicon", "")) for s in scale.index.manifest.segments):
        print(f"{args.index}: BM25 tokens from an older policyrag; compacting first", flush=True)
        scale.compact()
        scale = Engine(args.index)
    with tempfile.TemporaryDirectory() as tmp:
        small = Engine(Path(tmp) / "seeds")
        small.build([seeds])
        questions = load_questions(args.questions)
        alone = evaluate_engine(small, questions, MODES)
        t = time.perf_counter()
        buried = evaluate_engine(scale, questions, MODES)
        figures["eval_s"] = round(time.perf_counter() - t, 1)
    print(f"{len(questions)} questions; at scale: {len(scale.index.documents)} texts, "
          f"{len(scale.index.chunks)} chunks\n")
    print(format_side_by_side(alone, buried))
    figures["recall"] = {r.mode: {"seeds": a.to_dict()["overall"], "scale": r.to_dict()["overall"],
                                  "scale_by_lang": r.by("lang")}
                         for a, r in zip(alone, buried, strict=True)}
    queries = [q.q for q in questions]
    answerer = Answerer(scale)
    priorities = json.loads(KEYPOINTS.read_text("utf-8"))["questions"]
    answerer.ask(priorities[0], by_locality=True)  # warm: segment cache, BM25, jieba
    figures["latency"] = {
        "search_hybrid": timed(lambda q: scale.search(q, 5), queries),
        "ask": timed(lambda q: answerer.ask(q), queries[::4]),
        "ask_by_locality": timed(lambda q: answerer.ask(q, by_locality=True), priorities),
    }
    figures["latency"].update(second_opinion_latency(args.index, scale, queries))
    figures["latency"].update(report_vector_latency(args.index, scale, queries))
    print("\nwarm latency at scale (ms):")
    for name, row in figures["latency"].items():
        print(f"  {name:<24} p50 {row['p50_ms']:>8}  p95 {row['p95_ms']:>8}  (n={row['n']})")
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=2), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
