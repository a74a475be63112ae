"""The packaged encoders side by side, seeds only and at scale: USE-multilingual, EmbeddingGemma,
and both dense lists fused with BM25.

    python benchmarks/encoders.py --use-scale indexes/scale --gemma-scale indexes/scale-gemma
    python benchmarks/encoders.py ... --json figures.json

Both at-scale indexes hold the seeds among the same texts (`policyrag index build seeds/
../shared/corpus/distractors-dev.jsonl.gz --index DIR --model M`); the seeds-only indexes are
built once under --work if missing (Gemma's passage vectors come from its on-disk cache then).
For each question set (the 182 development questions, then the 50 held-out ones) it prints
recall@5 and MRR@10 of dense alone and hybrid, overall and by language and by whether the
question names its place. The fusion of each encoder's lists with BM25 is re-scored offline
over a small grid (RRF k, BM25 weight, USE weight), the choice made on the development set at
scale only, then applied once to the held-out questions. Query latency: warm p50 of the
encoder alone and of a hybrid search at scale.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from policyrag.engine import Engine  # noqa: E402
from policyrag.evaluation import (  # noqa: E402
    Question,
    evaluate,
    load_questions,
    mean_scores,
    question_scores,
    relevant_counts,
)
from policyrag.search.retrieval import Searcher, rrf  # noqa: E402

SETS = {"dev": ROOT / "tests" / "data" / "dev_questions.jsonl",
        "heldout": ROOT / "tests" / "data" / "heldout_questions.jsonl"}
MODELS = {"use": "packaged:use-multilingual", "gemma": "packaged:embeddinggemma"}
DEPTH = 10


class Capture:
    """The ranked lists a hybrid search fuses, per question (dense…, lexical last)."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.lists: dict[str, tuple[list, bool]] = {}
        self._orig = Searcher.fuse
        capture = self

        def spy(searcher, lists, english=False):
            capture.lists[capture.current] = ([list(x) for x in lists], english)
            return capture._orig(searcher, lists, english)

        Searcher.fuse = spy

    def search_fn(self, engine: Engine, mode: str):
        def search(query: str, n: int):
            self.current = query
            return [(h.doc_id, h.text) for h in engine.search(query, n, None, mode)]
        return search


def scores_of(report, attr: str | None = None) -> dict:
    pick = ("recall@5", "mrr@10")
    if attr is None:
        return {m: round(report.overall()[m], 3) for m in pick}
    return {g: {"n": row["n"], **{m: round(row[m], 3) for m in pick}}
            for g, row in report.by(attr).items()}


def summarise(report) -> dict:
    return {"all": scores_of(report), "lang": scores_of(report, "lang"),
            "place": scores_of(report, "place")}


def fused_scores(questions: list[Question], chunks, lists: dict, counts: dict,
                 fuse) -> dict:
    rows = []
    for q in questions:
        ranking = fuse(*lists[q.q])[:DEPTH]
        rels = [q.relevant(chunks[i].doc_id, chunks[i].text) for i, _ in ranking]
        rows.append((q, question_scores(rels, counts.get(q.id, 0))))
    overall = mean_scores([s for _, s in rows])
    out = {"all": {"recall@5": round(overall["recall@5"], 3),
                   "mrr@10": round(overall["mrr@10"], 3)}}
    for attr in ("lang", "place"):
        groups: dict[str, list] = {}
        for q, s in rows:
            groups.setdefault(getattr(q, attr) or "-", []).append(s)
        out[attr] = {g: {"n": len(v), "recall@5": round(mean_scores(v)["recall@5"], 3),
                         "mrr@10": round(mean_scores(v)["mrr@10"], 3)}
                     for g, v in sorted(groups.items())}
    return out


def fusion(k: int, lexical_w: float, use_w: float | None):
    """RRF of Gemma's dense lists (and USE's, weighted use_w, when given) with BM25. English
    questions keep the project's rule: every list an equal voice, k=60."""
    def fuse(gemma: tuple[list, bool], use: tuple[list, bool] | None = None):
        lists_g, english = gemma
        dense = lists_g[:-1]
        weights = [1.0] * len(dense)
        if use_w is not None and use is not None:
            dense = dense + use[0][:-1]
            weights += [use_w] * len(use[0][:-1])
        lists = [*dense, lists_g[-1]]
        if english:
            return rrf(lists, 60, [1.0] * len(lists))
        return rrf(lists, k, [*weights, lexical_w])
    return fuse


def timed_ms(fn, items) -> float:
    samples = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        samples.append(time.perf_counter() - t)
    return round(float(np.percentile(np.asarray(samples) * 1000, 50)), 1)


def cached_prefix(full: Engine) -> int:
    """How many haystack texts, from the first, have every chunk in Gemma's vector cache
    (a build interrupted on a shared machine leaves them done in input order)."""
    from policyrag.index import gemma_model, vector_cache
    from policyrag.script import to_simplified

    embedder = gemma_model.load()
    cache = embedder._cache()
    chunks = full.index.chunks
    keys = [vector_cache.key(gemma_model.PROMPTS.passage + to_simplified(c.text))
            for c in chunks]
    found = cache.get_many(keys)
    seeds = {p.stem for p in (ROOT / "seeds").glob("*.txt")}
    done, missing = [], set()
    for c, k in zip(chunks, keys, strict=True):
        if k not in found:
            missing.add(c.doc_id)
        if not done or done[-1] != c.doc_id:
            done.append(c.doc_id)
    prefix = 0
    for doc in (d for d in done if d not in seeds):
        if doc in missing:
            break
        prefix += 1
    return prefix


def subset(haystack: Path, n: int, work: Path) -> Path:
    out = work / f"haystack-first{n}.jsonl.gz"
    if not out.exists():
        with gzip.open(haystack, "rt", encoding="utf-8") as src, \
                gzip.open(out, "wt", encoding="utf-8") as dst:
            dst.writelines(itertools.islice(src, n))
    return out


def engines(args) -> dict[tuple[str, str], Engine]:
    out = {}
    scale = {"use": args.use_scale, "gemma": args.gemma_scale}
    if args.subset is not None:  # both encoders over the seeds + the first N haystack texts
        n = cached_prefix(Engine(args.use_scale)) if args.subset == "auto" else int(args.subset)
        print(f"haystack: the first {n} texts of {args.haystack}", flush=True)
        part = subset(args.haystack, n, args.work)
        scale = {enc: args.work / f"first{n}-{enc}" for enc in MODELS}
        for enc, model in MODELS.items():
            if not (scale[enc] / "CURRENT").exists():
                t = time.perf_counter()
                Engine(scale[enc], model, progress=True).build([ROOT / "seeds", part])
                print(f"built {scale[enc]} in {time.perf_counter() - t:.0f} s", flush=True)
    for enc, model in MODELS.items():
        seeds = args.work / f"seeds-{enc}"
        if not (seeds / "CURRENT").exists():
            Engine(seeds, model, progress=True).build([ROOT / "seeds"])
        out[(enc, "seeds")] = Engine(seeds, model)
        out[(enc, "scale")] = Engine(scale[enc], model)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--use-scale", type=Path, required=True,
                    help="USE index of the seeds + the whole haystack")
    ap.add_argument("--gemma-scale", type=Path, help="the same with Gemma (or give --subset)")
    ap.add_argument("--work", type=Path, default=ROOT / "indexes" / "encoders",
                    help="where the seeds-only indexes are built once")
    ap.add_argument("--subset", metavar="N|auto",
                    help="compare over the seeds plus the first N texts of --haystack (built "
                         "here for both encoders); auto: as many as Gemma's vector cache holds "
                         "whole (after an interrupted full build)")
    ap.add_argument("--haystack", type=Path,
                    default=ROOT.parent / "shared" / "corpus" / "distractors-dev.jsonl.gz")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if args.subset is None and args.gemma_scale is None:
        ap.error("give --gemma-scale DIR or --subset N|auto")
    built = engines(args)
    use_rows = [c.chunk_id for c in built[("use", "scale")].index.chunks]
    same_rows = use_rows == [c.chunk_id for c in built[("gemma", "scale")].index.chunks]
    capture = Capture()
    figures: dict = {"modes": {}, "fusion": {}, "latency": {},
                     "scale_index": {enc: {"texts": len(built[(enc, "scale")].index.documents),
                                           "chunks": len(built[(enc, "scale")].index.chunks)}
                                     for enc in MODELS}}
    lists: dict = {}
    for name, path in SETS.items():
        questions = load_questions(path)
        for (enc, where), engine in built.items():
            counts = relevant_counts(questions, ((c.doc_id, c.text) for c in engine.index.chunks))
            modes = ["dense", "hybrid"] + (["lexical"] if enc == "use" else [])
            for mode in modes:
                capture.lists = {}
                report = evaluate(questions, capture.search_fn(engine, mode), 5, mode, counts)
                label = "bm25" if mode == "lexical" else f"{enc} {mode}"
                figures["modes"].setdefault(name, {}).setdefault(where, {})[label] = \
                    summarise(report)
                if mode == "hybrid":
                    lists[(name, enc, where)] = capture.lists
                print(f"{name:8} {where:6} {label:13} " + json.dumps(
                    figures["modes"][name][where][label]["all"]), flush=True)
    # Fusion choice on the development set at scale only; held-out scored once with it.
    grid = [(k, w, u) for k, w, u in itertools.product((10, 30, 60), (1.0, 1.5, 2.0, 3.0),
                                                       (None, 0.5, 1.0))
            if u is None or same_rows]
    for name, path in SETS.items():
        questions = load_questions(path)
        for where in ("seeds", "scale"):
            if (name, "gemma", where) not in lists:
                continue
            engine = built[("gemma", where)]
            chunks = engine.index.chunks
            counts = relevant_counts(questions, ((c.doc_id, c.text) for c in chunks))
            g, u = lists[(name, "gemma", where)], lists[(name, "use", where)]
            same = where == "scale" and same_rows or where == "seeds" and \
                [c.chunk_id for c in built[("use", "seeds")].index.chunks] == \
                [c.chunk_id for c in chunks]
            table = {}
            for k, w, uw in grid:
                if uw is not None and not same:
                    continue
                joined = {q: (g[q], u.get(q)) for q in g}
                table[f"k={k} bm25={w} use={uw}"] = fused_scores(
                    questions, chunks, joined, counts, fusion(k, w, uw))
            figures["fusion"].setdefault(name, {})[where] = table
    dev = figures["fusion"]["dev"]["scale"]
    for family, pred in (("gemma+bm25", lambda key: key.endswith("use=None")),
                         ("gemma+use+bm25", lambda key: not key.endswith("use=None"))):
        keys = [key for key in dev if pred(key)]
        if not keys:
            continue
        best = max(keys, key=lambda key: (dev[key]["all"]["recall@5"], dev[key]["all"]["mrr@10"]))
        figures.setdefault("chosen", {})[family] = {
            "params": best, "dev_scale": dev[best],
            "dev_seeds": figures["fusion"]["dev"]["seeds"].get(best),
            "heldout_scale": figures["fusion"]["heldout"]["scale"][best],
            "heldout_seeds": figures["fusion"]["heldout"]["seeds"].get(best)}
    queries = [q.q for q in load_questions(SETS["dev"])][::4]
    for enc in MODELS:
        engine = built[(enc, "scale")]
        engine.search(queries[0], 5)  # warm: BM25, segments, model session
        figures["latency"][enc] = {
            "encode_query_p50_ms": timed_ms(lambda q, e=engine: e.embedder.encode([q], "query"),
                                            queries),
            "search_hybrid_p50_ms": timed_ms(lambda q, e=engine: e.search(q, 5), queries)}
    print(format_tables(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=2), "utf-8")
    return 0


def format_tables(figures: dict) -> str:
    lines = []
    for name, by_where in figures["modes"].items():
        lines.append(f"\n{name}: recall@5 / MRR@10   seeds only | at scale")
        labels = list(by_where["scale"])
        langs = sorted(by_where["scale"][labels[0]]["lang"])
        places = sorted(by_where["scale"][labels[0]]["place"])
        head = ["all", *langs, *[f"place={p}" for p in places]]
        lines.append(f"{'':14}" + "".join(f"{h:>24}" for h in head))
        for label in labels:
            cells = []
            for group, key in [(None, None), *[("lang", x) for x in langs],
                               *[("place", x) for x in places]]:
                pair = []
                for where in ("seeds", "scale"):
                    row = by_where[where][label]
                    r = row["all"] if group is None else row[group].get(key, {})
                    pair.append(f"{r.get('recall@5', float('nan')):.2f}/"
                                f"{r.get('mrr@10', float('nan')):.2f}")
                cells.append(" | ".join(pair))
            lines.append(f"{label:14}" + "".join(f"{c:>24}" for c in cells))
    for family, row in figures.get("chosen", {}).items():
        lines.append(f"\nfusion {family}, chosen on dev at scale: {row['params']}")
        for part in ("dev_seeds", "dev_scale", "heldout_seeds", "heldout_scale"):
            if row.get(part):
                langs = ", ".join(f"{g} {v['recall@5']:.2f}" for g, v in row[part]["lang"].items())
                places = ", ".join(f"{g} {v['recall@5']:.2f}"
                                   for g, v in row[part]["place"].items())
                lines.append(f"  {part:14} recall@5 {row[part]['all']['recall@5']:.3f} MRR "
                             f"{row[part]['all']['mrr@10']:.3f}  ({langs}; place: {places})")
    lines.append("\nwarm query latency at scale (ms, p50):")
    for enc, row in figures["latency"].items():
        lines.append(f"  {enc:6} encode {row['encode_query_p50_ms']:>7}   hybrid search "
                     f"{row['search_hybrid_p50_ms']:>7}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
