"""Approximate search at scale: recall against the flat index, and warm latency at 100k and 1M.

    python benchmarks/ann.py                       # real recall + 100k and 1M chunks
    python benchmarks/ann.py --sizes 100000 --json figures.json

1. Recall@10 of the IVF index against the flat one (the share of the flat top 10 it returns)
   on the real at-scale vectors (29,487 chunks of the packaged encoder, `--real`, opened with
   the project's own open_index): the chosen parameters (config.py), a small sweep of lists
   and probes, and HNSW for comparison. Queries: the development and held-out questions,
   encoded as queries, and 300 of the chunks' own vectors.
2. At each `--sizes` a synthetic index (texts recombined from the seeds, random unit vectors;
   synth.py) is written once through the project's own writer (`policyrag.index.build`, which
   builds the IVF index since the segment is past the threshold) into `--workdir` and reused.
   Each is then opened in a fresh process as now (IVF, vectors memory-mapped) and queried;
   then its vectors.faiss is read whole, as every open did before this change, and the same
   queries run on that flat index. Printed: open time, RSS, the BM25 postings (size, time to
   make), and warm p50/p95 of dense, lexical and hybrid search (hybrid is what `policyrag
   search` runs) and of extractive `ask`, flat and IVF side by side. A build streams segments
   of `segment_chunks` rows, each with its own approximate index (IVF, fast-scan PQ codes,
   candidates re-scored exactly), so the synthetic index has that layout too; `--also DIR`
   measures other indexes the same way, e.g. one written before as one IVF-Flat segment:

    python benchmarks/ann.py --also /tmp/policyrag-ann-bench/synthetic-1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import faiss  # noqa: E402

from policyrag.config import Settings  # noqa: E402
from policyrag.index import ann  # noqa: E402

# The real at-scale index that benchmarks/scale.py builds (seeds + the shared corpus).
REAL = ROOT / "indexes" / "scale"
QUESTIONS = [ROOT / "tests" / "data" / "dev_questions.jsonl",
             ROOT / "tests" / "data" / "heldout_questions.jsonl"]
# Settings of the latency runs: English questions are not translated by the generative model.
SETTINGS = replace(Settings(), translate_queries=False)


def questions(chinese_only: bool = False) -> list[str]:
    rows = [json.loads(line) for f in QUESTIONS for line in f.read_text("utf-8").splitlines()
            if line.strip()]
    return [r["q"] for r in rows if not chinese_only or r.get("lang") != "en"]


def memory() -> dict[str, float]:
    """This process's resident memory in MB: all, anonymous (heap), file-backed (mapped)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": fields["VmRSS"], "anon_mb": fields["RssAnon"],
            "file_mb": fields["RssFile"], "peak_mb": fields["VmHWM"]}


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def timed(fn, items) -> dict[str, float]:
    fn(items[0])  # warm
    samples = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        samples.append(time.perf_counter() - t)
    return percentiles(samples)


# ---- 1. recall on the real vectors ---------------------------------------------------------------

def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(b)) / len(b) for a, b in zip(found, truth,
                                                                                 strict=True)]))


def per_query_ms(index, queries: np.ndarray, params=None) -> float:
    t = time.perf_counter()
    for q in queries:
        index.search(q[None, :], 10, params=params)
    return (time.perf_counter() - t) / len(queries) * 1000


def refined_search(index, vectors: np.ndarray, queries: np.ndarray, share: float,
                   refine: int) -> tuple[np.ndarray, float]:
    """The top 10 of each query as the project searches a segment's approximate index (PQ
    candidates re-scored from the flat vectors: DenseIndex), and the ms per query."""
    from policyrag.index.dense import DenseIndex, Part

    dense = DenseIndex([Part(index, np.arange(len(vectors)), vectors, approximate=True)],
                       vectors.shape[1])
    found = np.full((len(queries), 10), -1)
    t = time.perf_counter()
    for i, q in enumerate(queries):
        top = [row for row, _ in dense.search(q, 10, probe_share=share, refine=refine)]
        found[i, :len(top)] = top
    return found, (time.perf_counter() - t) / len(queries) * 1000


def real_recall(real: Path) -> dict:
    from policyrag.index.embedding import load_embedder
    from policyrag.index.lifecycle import open_index
    from policyrag.script import to_simplified

    ix = open_index(real)
    vectors = np.ascontiguousarray(ix.vectors.matrix(), dtype=np.float32)
    n, dim = vectors.shape
    asked = load_embedder(ix.manifest.model).encode([to_simplified(q) for q in questions()],
                                                    "query")
    own = vectors[np.random.default_rng(0).choice(n, 300, replace=False)]
    queries = np.vstack([asked, own]).astype(np.float32)
    flat = faiss.IndexFlatIP(dim)
    flat.add(vectors)
    _, truth = flat.search(queries, 10)
    out = {"chunks": n, "queries": len(queries), "flat_ms": round(per_query_ms(flat, queries), 2),
           "sweep": []}
    s = Settings()
    # Lists as the sweep's share of sqrt(rows) of these vectors, and as a full streamed segment
    # (`segment_chunks` rows, what nearly every segment of a big build holds) gets them.
    full = ann.lists_for(max(n, s.segment_chunks), s.ann_lists_per_sqrt)
    choices = [(ann.lists_for(n, per_sqrt), per_sqrt) for per_sqrt in (1.0, 2.0, 4.0)]
    for lists, per_sqrt in [*choices, (full, "segment")]:
        flat_ivf = faiss.index_factory(dim, f"IVF{lists},Flat", faiss.METRIC_INNER_PRODUCT)
        t = time.perf_counter()
        flat_ivf.train(vectors)
        flat_ivf.add(vectors)
        flat_built = time.perf_counter() - t
        t = time.perf_counter()
        pq, spec = ann.build(vectors, lists)
        pq_built = time.perf_counter() - t
        for share in sorted({0.05, 0.1, 0.2, 0.3, s.ann_probe_share}):
            params = faiss.SearchParametersIVF(nprobe=ann.probes_for(lists, share))
            _, found = flat_ivf.search(queries, 10, params=params)
            row = {"lists_per_sqrt": per_sqrt, "probe_share": share, "nprobe": params.nprobe}
            out["sweep"].append({
                **row, "index": f"IVF{lists},Flat", "recall@10": round(recall(found, truth), 4),
                "ms": round(per_query_ms(flat_ivf, queries, params), 2),
                "build_s": round(flat_built, 1), "chosen": False})
            found, ms = refined_search(pq, vectors, queries, share, s.ann_refine)
            out["sweep"].append({
                **row, "index": spec, "refine": s.ann_refine,
                "recall@10": round(recall(found, truth), 4), "ms": round(ms, 2),
                "build_s": round(pq_built, 1),
                "chosen": per_sqrt == "segment" and share == s.ann_probe_share})
    t = time.perf_counter()
    hnsw = faiss.index_factory(dim, "HNSW32,Flat", faiss.METRIC_INNER_PRODUCT)
    hnsw.add(vectors)
    built = time.perf_counter() - t
    for ef in (64, 128, 256):
        params = faiss.SearchParametersHNSW(efSearch=ef)
        _, found = hnsw.search(queries, 10, params=params)
        out["sweep"].append({"index": "HNSW32,Flat", "efSearch": ef,
                             "recall@10": round(recall(found, truth), 4),
                             "ms": round(per_query_ms(hnsw, queries, params), 2),
                             "build_s": round(built, 1), "chosen": False})
    return out


# ---- 2. latency at scale ----------------------------------------------------------------------

def synthetic(workdir: Path, n: int, embedder) -> tuple[Path, dict]:
    """The synthetic index of `n` chunks, written once through the project's writer."""
    from synth import build_synthetic_index

    # Named by the segment size: a build streams segments of `segment_chunks` rows, each with
    # its own approximate index (an index written before that held one big segment).
    layout = f"synthetic-{n}-seg{SETTINGS.segment_chunks}"
    root = workdir / layout
    info_file = workdir / f"{layout}.json"
    if info_file.exists() and (root / "CURRENT").exists():
        return root, json.loads(info_file.read_text())
    t = time.perf_counter()
    info = build_synthetic_index(root, n, embedder)
    info["build_s"] = round(time.perf_counter() - t, 1)
    info_file.write_text(json.dumps(info))
    return root, info


def measure(root: Path) -> dict:
    """In this (fresh) process: open `root` (its big segment memory-mapped, searched by IVF),
    time the queries; then read its vectors.faiss whole, as every open did before this change,
    and time the same queries on that flat index."""
    from policyrag.index import lifecycle
    from policyrag.index.dense import DenseIndex, Part
    from policyrag.index.embedding import load_embedder
    from policyrag.index.segments import matrix, merged_flat

    faiss.omp_set_num_threads(1)  # one query at a time, as a server answers them
    embedder = load_embedder(SETTINGS.model)
    before = memory()
    t = time.perf_counter()
    ix = lifecycle.open_index(root, embedder)
    out = {"chunks": len(ix.chunks), "open_s": round(time.perf_counter() - t, 2),
           "memory_before_open": before, "memory_after_open": memory()}
    t = time.perf_counter()
    bm25 = ix.bm25()
    out["bm25_build_s"] = round(time.perf_counter() - t, 2)
    out["bm25_mb"] = round((bm25._csc.data.nbytes + bm25._csc.indices.nbytes
                            + bm25._csc.indptr.nbytes + bm25._norm.nbytes) / 1e6, 1)
    out["ann"] = queries(ix, embedder, root)
    out["segments"] = [s.ann for s in ix.manifest.segment_list(ix.generation.name)]
    del ix.vectors
    t = time.perf_counter()
    read = [faiss.read_index(str(root / seg.name / "vectors.faiss"))  # (matrix views these)
            for seg in ix.manifest.segment_list(ix.generation.name)]
    whole = read[0] if len(read) == 1 else merged_flat([matrix(f) for f in read], ix.manifest.dim)
    del read
    out["vectors_read_whole_s"] = round(time.perf_counter() - t, 2)
    out["memory_after_read_whole"] = memory()
    ix.vectors = DenseIndex([Part(whole, np.arange(whole.ntotal), matrix(whole))], whole.d)
    out["flat"] = queries(ix, embedder, root)
    return out


def queries(ix, embedder, root: Path) -> dict:
    """Warm p50/p95 of dense, lexical and hybrid search and of extractive ask."""
    from policyrag.answer import extractive
    from policyrag.answer.extractive import Answerer
    from policyrag.engine import Engine
    from policyrag.search.retrieval import Searcher

    engine = Engine(root, settings=SETTINGS)
    engine._embedder, engine._index = embedder, ix
    searcher = Searcher(ix, embedder, SETTINGS)
    asked = questions(chinese_only=True)
    out = {"approximate": ix.vectors.approximate,
           "dense_search": timed(lambda q: searcher.search(q, 5, mode="dense", places=False),
                                 asked),
           "lexical_search": timed(lambda q: searcher.search(q, 5, mode="lexical",
                                                             places=False), asked),
           "hybrid_search": timed(lambda q: searcher.search(q, 5), asked)}
    # The segments searched one at a time (SETTINGS searches search_threads at a time)
    one = Searcher(ix, embedder, replace(SETTINGS, search_threads=1))
    out["dense_search_1_thread"] = timed(
        lambda q: one.search(q, 5, mode="dense", places=False), asked)
    out["hybrid_search_1_thread"] = timed(lambda q: one.search(q, 5), asked)
    if ix.vectors.approximate:  # what the probed share costs (recall: on the real vectors)
        out["dense_by_probe_share"] = {}
        for share in (0.05, 0.1, 0.2, 0.3):
            probing = Searcher(ix, embedder, replace(SETTINGS, ann_probe_share=share))
            out["dense_by_probe_share"][share] = timed(
                lambda q, s=probing: s.search(q, 5, mode="dense", places=False), asked[::2])
    # An answer embeds the sentences of the reports it quotes, cached per report: first asks
    # pay that (whatever the index size), a question asked again pays the search and selection.
    extractive._SEGMENTS.clear()
    answerer = Answerer(engine)
    out["ask"] = timed(lambda q: answerer.ask(q), asked[::4])
    out["ask_again"] = timed(lambda q: answerer.ask(q), asked[::4])
    out["memory_after_queries"] = memory()
    return out


def run_child(root: Path, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", str(root)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- output -------------------------------------------------------------------------------------

def print_recall(r: dict) -> None:
    print(f"\nRecall@10 against the flat index on {r['chunks']} real vectors "
          f"({r['queries']} queries; flat search {r['flat_ms']} ms/query, 1 thread)")
    print(f"{'index':<22}{'lists/√n':>9}{'share':>7}{'nprobe/ef':>10}{'re-score':>9}"
          f"{'recall@10':>11}{'ms/query':>10}{'build s':>9}")
    for row in r["sweep"]:
        probe = row.get("nprobe", row.get("efSearch"))
        print(f"{row['index']:<22}{row.get('lists_per_sqrt', ''):>9}"
              f"{row.get('probe_share', ''):>7}{probe:>10}{row.get('refine', ''):>9}"
              f"{row['recall@10']:>11.4f}{row['ms']:>10.2f}{row['build_s']:>9}"
              f"{'  <- chosen' if row['chosen'] else ''}")
    print("lists/√n 'segment': the lists a full streamed segment (segment_chunks rows) gets; "
          "re-score: the PQ candidates re-scored exactly from the flat vectors (DenseIndex, "
          "Python included in ms/query)")


def pp(t: dict) -> str:
    return f"{t['p50_ms']:.1f}/{t['p95_ms']:.1f}"


def layout(r: dict) -> str:
    """How many segments, searched through which structure: 20 seg IVF-PQ256x4fs."""
    segs = r.get("segments", [])
    kinds = sorted({s.split(",")[-1] if s else "flat" for s in segs})
    return f"{len(segs)} seg IVF-{'/'.join(kinds)}"


def print_scale(rows: list[dict]) -> None:
    print("\nWarm latency, one query at a time (p50/p95 ms); open time and memory")
    print(f"{'chunks':>8} {'vectors':<26}{'open s':>7}{'RSS MB':>8}{'dense':>13}{'BM25':>12}"
          f"{'search':>13}{'ask':>15}{'ask again':>13}")
    for r in rows:
        if "error" in r:
            print(f"{r['size']:>8} failed: {r['error']}")
            continue
        opened, read = r["open_s"], r["vectors_read_whole_s"]
        for label, key, open_s, mem in (
                ("flat, read whole", "flat", opened + read, r["memory_after_read_whole"]),
                (f"{layout(r)}, mapped", "ann", opened, r["memory_after_open"])):
            q = r[key]
            print(f"{r['chunks']:>8} {label:<26}{open_s:>7.1f}{mem['rss_mb']:>8.0f}"
                  f"{pp(q['dense_search']):>13}{pp(q['lexical_search']):>12}"
                  f"{pp(q['hybrid_search']):>13}{pp(q['ask']):>15}{pp(q['ask_again']):>13}")
    print("open s: opening the index (flat: plus reading vectors.faiss whole, as every open did "
          "before); RSS after opening (flat: after that read too); ask: first asks, which embed "
          "the sentences of the reports quoted; ask again: the same questions again")
    for r in rows:
        if "error" in r:
            continue
        print(f"{r['chunks']:>8}: BM25 postings {r['bm25_mb']} MB, made in {r['bm25_build_s']} s "
              f"at the first lexical query; RSS after the queries "
              f"{r['ann']['memory_after_queries']['rss_mb']:.0f} MB (IVF, of it mapped file "
              f"pages {r['ann']['memory_after_queries']['file_mb']:.0f})")
        print(f"{r['chunks']:>8}: {layout(r)} with the segments searched one at a time "
              f"(above: {SETTINGS.search_threads} at a time): dense "
              f"{pp(r['ann']['dense_search_1_thread'])}, search (hybrid) "
              f"{pp(r['ann']['hybrid_search_1_thread'])} ms")
        print(f"{r['chunks']:>8}: IVF dense search p50 by probed share of the lists: " + ", ".join(
            f"{share}: {t['p50_ms']:.1f} ms" for share, t in r["ann"]["dense_by_probe_share"].items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--workdir", type=Path,
                    default=Path(tempfile.gettempdir()) / "policyrag-ann-bench")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--also", type=Path, nargs="*", default=[],
                    help="index folders measured too, e.g. one written before in another layout")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return 0
    faiss.omp_set_num_threads(1)
    figures: dict = {"machine": f"{os.cpu_count()} cores"}
    if args.real.exists():
        figures["recall"] = real_recall(args.real)
        print_recall(figures["recall"])
    else:
        print(f"no real at-scale index at {args.real} (python benchmarks/scale.py builds it, "
              "or give --real DIR); recall skipped")
    from policyrag.index.embedding import load_embedder

    embedder = load_embedder(SETTINGS.model)
    args.workdir.mkdir(parents=True, exist_ok=True)
    figures["scale"], figures["built"] = [], {}
    for n in args.sizes:
        root, info = synthetic(args.workdir, n, embedder)
        figures["built"][str(n)] = info
        print(f"\nsynthetic index of {info['chunks']} chunks at {root} (written in "
              f"{info.get('build_s', '?')} s through policyrag.index.build)", flush=True)
        figures["scale"].append({"size": n, **run_child(root, 1800)})
    for root in args.also:
        print(f"\nalso: the index at {root}", flush=True)
        figures["scale"].append({"size": str(root), **run_child(root, 1800)})
    print_scale(figures["scale"])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
