"""policyrag benchmarks: every figure of the README's performance section, with the machine.

    python benchmarks/run.py                 # everything: about 1.5-2 hours on 2 cores
    python benchmarks/run.py --quick         # smaller sizes, fewer repeats
    python benchmarks/run.py --only build,latency,peers,startup     # the classic 6-8 minutes
    python benchmarks/run.py --only segments,memory,throughput,ann,ray --json out.json

Sections: build (throughput on synthetic chunks), latency, peers, startup (measured here);
segments (add and remove cost, benchmarks/segments.py), memory (peak RSS of `policyrag index
build` on 24 M characters) and throughput (build against raw encode at the shared corpus's
size; both benchmarks/stream.py), ann (recall against flat, latency at 100k/1M:
benchmarks/ann.py), ray (Ray against single-process build: benchmarks/ray_build.py). The
scripts run as their own processes with --json, and their tables are printed here; one absent
from this tree is skipped with a note. A closing table lists the issue-12 figures.

Every measurement runs in a fresh Python process (so RSS figures are per corpus size and
start-up is cold), driven from here; each prints one RESULT line of JSON that this script turns
into tables. Needs the `bench` extra (txtai, langchain-community): pip install -e .[bench]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEV = ROOT / "tests" / "data" / "dev_questions.jsonl"
SECTIONS = ("build", "latency", "peers", "startup", "segments", "memory", "throughput", "ann",
            "ray")
# Sections measured by another script: (script, its arguments, quick arguments, timeout s).
SCRIPTS = {
    "segments": ("segments.py", [], ["--chunks", "20000", "--no-baseline"], 1800),
    "memory": ("stream.py", ["--only", "memory"], ["--only", "memory", "--chars", "2000000"],
               5400),
    "throughput": ("stream.py", ["--only", "throughput"], ["--only", "throughput"], 3600),
    "ann": ("ann.py", [], ["--sizes", "100000"], 5400),
    "ray": ("ray_build.py", [], ["--texts", "500"], 3600),
}
MODES = ("dense", "lexical", "hybrid")
QUERY = "招商引资"


# ---------------------------------------------------------------------------------- helpers

def now() -> float:
    return time.perf_counter()


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB."""
    fields = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                fields[key] = int(value.split()[0]) / 1024
    return round(fields.get("VmRSS", 0.0), 1), round(fields.get("VmHWM", 0.0), 1)


def pct(samples: list[float]) -> dict[str, float]:
    import numpy as np

    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2), "n": len(samples)}


def timed_queries(fn, queries: list[str], passes: int = 1) -> dict[str, float]:
    for q in queries:  # warm-up pass: caches, lazy structures, allocator
        fn(q)
    samples = []
    for _ in range(passes):
        for q in queries:
            t = now()
            fn(q)
            samples.append(now() - t)
    return pct(samples)


def dev_questions(n: int | None = None):
    from policyrag.evaluation import load_questions

    qs = load_questions(DEV)
    return qs[:n] if n else qs


def answerer_for(engine):
    """An extractive `ask` if answer.py is there and works; None otherwise."""
    try:
        from policyrag.answer.extractive import Answerer

        ans = Answerer(engine)
        ans.ask(QUERY)
        return ans
    except Exception as exc:  # the module is optional and may be mid-change
        print(f"ask unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def emit(result: dict) -> None:
    print("RESULT " + json.dumps(result, ensure_ascii=False), flush=True)


# ---------------------------------------------------------------------------------- workers

def w_build(a: dict) -> dict:
    """Index build throughput against raw model.encode on the same chunks, same process."""
    from synth import seed_documents, synthetic_documents

    from policyrag.config import Settings
    from policyrag.index import lifecycle as idx
    from policyrag.index.embedding import load_embedder
    from policyrag.index.lexical import slogans, tokenize
    from policyrag.script import to_simplified

    settings = Settings()
    embedder = load_embedder()
    embedder.encode(["预热"])  # session created outside both timings
    docs = seed_documents()
    seed_chunks = len(idx._chunk_all(docs, settings, embedder))
    if a["chunks"] > seed_chunks:
        docs += synthetic_documents(docs, a["chunks"] - seed_chunks, settings, embedder.max_chars)
    chunks = idx._chunk_all(docs, settings, embedder)
    texts = [to_simplified(c.text) for c in chunks]

    def raw() -> float:
        t = now()
        embedder.encode(texts, "passage", settings.batch_size)
        return now() - t

    raw_first = raw()
    root = Path(a["workdir"]) / f"build-{len(chunks)}"
    shutil.rmtree(root, ignore_errors=True)
    t = now()
    idx.build(root, docs, embedder, settings, ["benchmark"])
    build_s = now() - t
    raw_s = min(raw_first, raw())
    # Where the overhead goes, each part timed alone (the tokenizer cache is cold for a new
    # lexicon, as in a real build).
    t = now()
    idx._chunk_all(docs, settings, embedder)
    chunk_s = now() - t
    t = now()
    for c in chunks:
        to_simplified(c.text)
    fold_s = now() - t
    t = now()
    lexicon = tuple(slogans(d.text for d in docs)) + ("基准测试",)
    for c in chunks:
        tokenize(c.text, lexicon)
    token_s = now() - t
    return {"chunks": len(chunks), "documents": len(docs), "raw_s": round(raw_s, 2),
            "raw_first_s": round(raw_first, 2), "build_s": round(build_s, 2),
            "raw_cps": round(len(chunks) / raw_s, 1), "build_cps": round(len(chunks) / build_s, 1),
            "ratio": round(raw_s / build_s, 3), "chunk_s": round(chunk_s, 3),
            "fold_s": round(fold_s, 3), "tokenize_s": round(token_s, 3)}


def w_prepare(a: dict) -> dict:
    from synth import build_synthetic_index

    from policyrag.index.embedding import load_embedder

    root = Path(a["root"])
    shutil.rmtree(root, ignore_errors=True)
    t = now()
    info = build_synthetic_index(root, a["size"], load_embedder())
    return {**info, "prepare_s": round(now() - t, 1)}


def w_latency(a: dict) -> dict:
    """Warm query latency of search (3 modes) and extractive ask, plus RSS, on one index."""
    from policyrag.engine import Engine

    out: dict = {"rss_start_mb": rss_mb()[0]}
    t = now()
    engine = Engine(a["index"])
    ix = engine.index
    out["open_s"] = round(now() - t, 2)
    out["chunks"] = len(ix.chunks)
    t = now()
    engine.embedder.encode([QUERY], "query")
    out["model_s"] = round(now() - t, 2)
    queries = [q.q for q in dev_questions(a.get("queries"))]
    first = {}
    for mode in MODES:  # first query of each mode: lazy jieba, BM25 and gazetteer set-up
        t = now()
        engine.search(queries[0], 5, None, mode)
        first[mode] = round(now() - t, 2)
    out["first_query_s"] = first
    out["faiss_ms"] = faiss_probe(ix.vectors, engine.embedder.encode([QUERY], "query"))
    for mode in MODES:
        out[mode] = timed_queries(lambda q, m=mode: engine.search(q, 5, None, m), queries,
                                  a.get("passes", 1))
    if a.get("ask_queries"):
        ans = answerer_for(engine)
        if ans is not None:
            asks = queries[: a["ask_queries"]]
            t = now()
            for q in asks:
                ans.ask(q)
            out["ask_cold_mean_ms"] = round((now() - t) / len(asks) * 1000, 1)
            out["ask"] = timed_queries(ans.ask, asks)
    out["rss_mb"], out["rss_peak_mb"] = rss_mb()
    return out


def faiss_probe(vectors, query, n: int = 30) -> dict[str, float]:
    """Median ms of one 20-nearest search in the flat index, default OpenMP threads vs one."""
    import faiss

    out = {}
    default = faiss.omp_get_max_threads()
    for label, threads in (("default", default), ("1 thread", 1)):
        faiss.omp_set_num_threads(threads)
        vectors.search(query, 20)
        times = []
        for _ in range(n):
            t = now()
            vectors.search(query, 20)
            times.append(now() - t)
        out[label] = round(statistics.median(times) * 1000, 2)
    faiss.omp_set_num_threads(default)
    return out


def w_peers(a: dict) -> dict:
    """policyrag vs txtai vs LangChain FAISS: same chunks, same model, one process."""
    from peers import LangchainFaissStore, TimedEmbedder, TxtaiStore
    from synth import seed_documents

    from policyrag.config import Settings
    from policyrag.engine import Engine
    from policyrag.evaluation import evaluate, evaluate_engine, load_questions, relevant_counts
    from policyrag.index import lifecycle as idx
    from policyrag.index.embedding import load_embedder

    real = load_embedder()
    real.encode(["预热"])
    docs = seed_documents()
    settings = Settings()
    out: dict = {}
    # policyrag's own imports (faiss, jieba, opencc) are already paid by seed_documents and the
    # embedder; the peers' imports are timed apart from their build for the same reason.

    emb = TimedEmbedder(real)
    root = Path(a["workdir"]) / "peers-policyrag"
    shutil.rmtree(root, ignore_errors=True)
    t = now()
    idx.build(root, docs, emb, settings, ["benchmark"])
    build_s = now() - t
    engine = Engine(root)
    engine._embedder = real
    chunks = [(c.doc_id, c.text) for c in engine.index.chunks]
    qs = load_questions(DEV, {d.doc_id for d in docs})
    queries = [q.q for q in qs]
    counts = relevant_counts(qs, chunks)
    reports = {r.mode: r for r in evaluate_engine(engine, qs, ["dense", "hybrid"], 5)}
    for mode in ("dense", "hybrid"):
        out[f"policyrag-{mode}"] = {
            "build_s": round(build_s, 3), "embed_s": round(emb.seconds, 3),
            "recall@5": round(reports[mode].overall()["recall@5"], 3),
            "mrr@10": round(reports[mode].overall()["mrr@10"], 3),
            **timed_queries(lambda q, m=mode: engine.search(q, 5, None, m), queries, 2)}

    for cls in (TxtaiStore, LangchainFaissStore):
        emb = TimedEmbedder(real)
        try:
            t = now()
            cls.load()  # imports are start-up cost, not build cost
            import_s = now() - t
        except ImportError as exc:
            out[cls.name] = {"error": f"not installed ({exc}); pip install -e .[bench]"}
            continue
        t = now()
        store = cls(emb, chunks)
        build_s = now() - t
        report = evaluate(qs, store.search, 5, cls.name, counts).overall()
        out[cls.name] = {"build_s": round(build_s, 3), "embed_s": round(emb.seconds, 3),
                         "import_s": round(import_s, 2),
                         "recall@5": round(report["recall@5"], 3),
                         "mrr@10": round(report["mrr@10"], 3),
                         **timed_queries(lambda q, s=store: s.search(q, 5), queries, 2)}
    out["chunks"] = len(chunks)
    return out


def w_phases(a: dict) -> dict:
    """Where a cold `policyrag search` spends its time, phase by phase, in a fresh process."""
    t0 = now()
    from policyrag import engine as _engine  # noqa: F401  (what search_cmd imports)
    from policyrag.cli import build_parser
    phases = {"import": now() - t0}
    t = now()
    build_parser()
    phases["parser"] = now() - t
    from policyrag.engine import Engine
    from policyrag.index.lexical import _tokenizer
    from policyrag.search.retrieval import prepare_query

    t = now()
    engine = Engine(a["index"])
    engine.embedder.encode(["x"], "query")  # the model the index names, ONNX session created
    phases["load model"] = now() - t
    t = now()
    ix = engine.index
    phases["open index"] = now() - t
    t = now()
    prepare_query(QUERY, ix)
    phases["gazetteer"] = now() - t
    t = now()
    _tokenizer(ix.lexicon)
    phases["jieba init"] = now() - t
    t = now()
    ix.bm25()
    phases["bm25 build"] = now() - t
    t = now()
    engine.search(QUERY)
    phases["search"] = now() - t
    return {k: round(v, 3) for k, v in phases.items()} | {"total": round(now() - t0, 3)}


def w_onnx(a: dict) -> dict:
    """Load time and throughput of the packaged ONNX model by graph optimisation level."""
    import onnxruntime as ort
    from onnxruntime_extensions import get_library_path
    from synth import seed_documents

    from policyrag.config import Settings
    from policyrag.index import lifecycle as idx
    from policyrag.index.embedding import load_embedder, packaged_path
    from policyrag.script import to_simplified

    path = str(packaged_path("packaged:use-multilingual"))
    texts = [to_simplified(c.text) for c in
             idx._chunk_all(seed_documents(), Settings(), load_embedder())]
    out = {}
    for level in ("ORT_ENABLE_ALL", "ORT_ENABLE_BASIC", "ORT_DISABLE_ALL"):
        opts = ort.SessionOptions()
        opts.register_custom_ops_library(get_library_path())
        opts.intra_op_num_threads = os.cpu_count() or 1
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        t = now()
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        load_s = now() - t
        sess.run(["outputs"], {"inputs": texts[:2]})
        t = now()
        for i in range(0, len(texts), 32):
            sess.run(["outputs"], {"inputs": texts[i:i + 32]})
        out[level] = {"load_s": round(load_s, 2), "cps": round(len(texts) / (now() - t), 1)}
    return out


WORKERS = {"build": w_build, "prepare": w_prepare, "latency": w_latency, "peers": w_peers,
           "phases": w_phases, "onnx": w_onnx}


# ---------------------------------------------------------------------------------- driver

def worker(name: str, args: dict, timeout: float = 900) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name,
           json.dumps(args, ensure_ascii=False)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
        "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
        "ALLOW_RESOLVE_TRANSFORM": "False"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=ROOT)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"benchmark worker {name} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1][len("RESULT "):])


def external(section: str, quick: bool) -> dict | None:
    """Run the script that measures `section` with --json, print its own tables, and return its
    figures; None (with a note) when the script is not in this tree or fails."""
    script, args, quick_args, timeout = SCRIPTS[section]
    path = HERE / script
    if not path.exists():
        say(f"\n## {section}: benchmarks/{script} is not in this tree; skipped")
        return None
    with tempfile.TemporaryDirectory(prefix=f"policyrag-{section}-") as tmp:
        out = Path(tmp) / "figures.json"
        cmd = [sys.executable, str(path), *(quick_args if quick else args), "--json", str(out)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "src"), str(HERE), os.environ.get("PYTHONPATH", "")])}
        say(f"\n## {section}: {' '.join(['python', f'benchmarks/{script}', *cmd[2:-2]])}")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            say(f"  {script} ran past {timeout} s; skipped")
            return None
        if proc.returncode or not out.exists():
            tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
            say(f"  {script} failed (exit {proc.returncode}); skipped:\n{tail}")
            return None
        say(proc.stdout.rstrip())
        return json.loads(out.read_text("utf-8"))


def _get(data: dict | None, *keys, fmt: str = "{}") -> str:
    """data[k1][k2]... formatted, or a dash when a script was skipped or words it otherwise."""
    try:
        for key in keys:
            data = data[key]  # type: ignore[index]
        return fmt.format(data)
    except (KeyError, IndexError, TypeError, ValueError):
        return "-"


def _ann_rows(ann: dict | None) -> list[list]:
    rows = []
    chosen = next((r for r in _get_list(ann, "recall", "sweep") if r.get("chosen")), None)
    if chosen is not None:
        rows.append(["ANN recall@10 against flat (real vectors)",
                     f"{chosen.get('recall@10', '-')} ({chosen.get('index', '')})", "ann"])
    for r in _get_list(ann, "scale"):
        if "error" not in r:
            rows.append([f"search p50 dense / hybrid / ask again at {r.get('chunks', '?')} chunks",
                         f"{_get(r, 'ann', 'dense_search', 'p50_ms')} / "
                         f"{_get(r, 'ann', 'hybrid_search', 'p50_ms')} / "
                         f"{_get(r, 'ann', 'ask_again', 'p50_ms')} ms (flat "
                         f"{_get(r, 'flat', 'dense_search', 'p50_ms')} / "
                         f"{_get(r, 'flat', 'hybrid_search', 'p50_ms')} / "
                         f"{_get(r, 'flat', 'ask_again', 'p50_ms')}); open {_get(r, 'open_s')} "
                         f"s, RSS {_get(r, 'ann', 'memory_after_queries', 'rss_mb', fmt='{:.0f}')}"
                         " MB", "ann"])
    return rows or [["ANN recall, latency at 100k/1M", "-", "ann"]]


def _get_list(data: dict | None, *keys) -> list[dict]:
    try:
        for key in keys:
            data = data[key]  # type: ignore[index]
    except (KeyError, TypeError):
        return []
    return data if isinstance(data, list) else []


def summary(results: dict) -> str:
    """The figures issue 12 asks for, from whichever sections ran."""
    seg = results.get("segments") or {}
    ours = seg.get("segments") if isinstance(seg, dict) else None
    mem = (results.get("memory") or {}).get("memory")
    thr = (results.get("throughput") or {}).get("throughput")
    ray = results.get("ray")
    rows = [
        [f"add one report to a {_get(ours, 'chunks')}-chunk index",
         f"{_get(ours, 'add_s')} s ({_get(ours, 'add_minus_embed_s')} s beyond embedding), "
         f"{_get(ours, 'add_mb')} MB written", "segments"],
        ["remove one report", f"{_get(ours, 'remove_s')} s, {_get(ours, 'remove_mb')} MB "
                              "written", "segments"],
        [f"peak RSS, `index build` of {_get(mem, 'chars', fmt='{:,}')} characters",
         f"{_get(mem, 'peak_rss_mb')} MB ({_get(mem, 'chunks')} chunks, "
         f"{_get(mem, 'segments')} segments, {_get(mem, 'build_s')} s)", "memory"],
        [f"build vs raw encode, {_get(thr, 'chunks')} chunks",
         f"{_get(thr, 'build_cps')} vs {_get(thr, 'raw_cps')} chunks/s "
         f"({_get(thr, 'ratio', fmt='{:.0%}')})", "throughput"],
        *_ann_rows(results.get("ann")),
        ["Ray vs single-process build", f"{_get(ray, 'ray', 'seconds')} s vs "
         f"{_get(ray, 'single', 'seconds')} s ({_get(ray, 'ray_over_single')}x; "
         f"{_get(ray, 'texts')})", "ray"],
    ]
    m = results["machine"]
    return table(f"Issue 12 figures ({m['cpus']} CPUs, {m['platform']}; load average "
                 f"{m['load_start'][0]} at start)", ["figure", "value", "section"], rows)


def cold_search(index: Path, runs: int) -> dict:
    cmd = [sys.executable, "-m", "policyrag", "search", QUERY, "--index", str(index), "-k", "3"]
    times = []
    for _ in range(runs):
        t = now()
        subprocess.run(cmd, capture_output=True, check=True, cwd=ROOT)
        times.append(now() - t)
    t = now()
    proc = subprocess.run([sys.executable, "-X", "importtime", *cmd[1:]], capture_output=True,
                          text=True, check=True, cwd=ROOT)
    tops: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|( *)(\S+)", line)
        if m and len(m.group(2)) <= 1:  # top-level imports only
            pkg = m.group(3).split(".")[0]
            tops[pkg] = tops.get(pkg, 0.0) + int(m.group(1)) / 1e6
    top = sorted(tops.items(), key=lambda kv: -kv[1])[:8]
    return {"median_s": round(statistics.median(times), 2), "runs": [round(x, 2) for x in times],
            "imports": [(k, round(v, 3)) for k, v in top],
            "imports_total_s": round(sum(tops.values()), 2)}


def cold_serve(index: Path, timeout: float = 180) -> dict:
    """`policyrag serve` from a new process to HTTP-ready, then the first search and ask answers
    through its API (gradio_client)."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    t0 = now()
    proc = subprocess.Popen([sys.executable, "-m", "policyrag", "serve", "--index", str(index),
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    out: dict = {}
    try:
        while now() - t0 < timeout:
            if proc.poll() is not None:
                return {"error": f"serve exited: {proc.stderr.read()[-300:]}"}
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            return {"error": f"not ready after {timeout:.0f} s"}
        out["ready_s"] = round(now() - t0, 2)
        from gradio_client import Client

        client = Client(url, verbose=False)
        t = now()
        client.predict(QUERY, api_name="/search")
        out["first_search_s"] = round(now() - t, 2)
        out["search_answer_s"] = round(now() - t0, 2)
        t = now()
        client.predict("各地区分别把哪些工作作为重点？", api_name="/ask")
        out["first_ask_s"] = round(now() - t, 2)
        t = now()
        client.predict("各地区分别把哪些工作作为重点？", api_name="/ask")
        out["second_ask_s"] = round(now() - t, 2)
        return out
    except Exception as exc:  # the UI is optional here; report, do not fail the run
        return {**out, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def table(title: str, head: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in head]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [f"\n## {title}", fmt.format(*cells[0]), fmt.format(*["-" * w for w in widths])]
    lines += [fmt.format(*r) for r in cells[1:]]
    return "\n".join(lines)


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--sizes", default=None,
                   help="synthetic corpus sizes in chunks (default 10000,100000; quick: 10000)")
    p.add_argument("--quick", action="store_true", help="smaller and fewer: about 2 minutes")
    p.add_argument("--build-chunks", type=int, default=None,
                   help="chunks embedded for the build-throughput test (default 600; quick: "
                        "the seeds only)")
    p.add_argument("--only", default="all",
                   help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where indexes are written (default: a temporary folder)")
    p.add_argument("--json", type=Path, default=None, help="also write all figures here")
    p.add_argument("--worker", nargs=2, metavar=("NAME", "ARGS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        name, raw = args.worker
        emit(WORKERS[name](json.loads(raw)))
        return 0

    quick = args.quick
    sizes = [int(s) for s in (args.sizes or ("10000" if quick else "10000,100000")).split(",")
             if s.strip()]
    build_chunks = args.build_chunks if args.build_chunks is not None else (0 if quick else 600)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if only == {"all"}:
        only = set(SECTIONS)
    unknown = only - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from "
                f"{', '.join(SECTIONS)}")
    own_tmp = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="policyrag-bench-")) if own_tmp else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                 "platform": platform.platform()},
                     "quick": quick}
    started = now()
    load = os.getloadavg()
    results["machine"]["load_start"] = [round(x, 2) for x in load]
    say(f"policyrag benchmarks ({'quick' if quick else 'full'}); {os.cpu_count()} CPUs, load "
        f"average {load[0]:.1f} (other work on the machine inflates every timing); work folder "
        f"{workdir}")
    try:
        seeds_index = workdir / "seeds"
        if only & {"latency", "startup"}:
            from policyrag.engine import Engine

            Engine(seeds_index).build([ROOT / "seeds"])

        if "build" in only:
            b = worker("build", {"chunks": build_chunks, "workdir": str(workdir)})
            results["build"] = b
            say(table("Index build throughput vs raw model.encode (same chunks, same process)",
                      ["corpus", "chunks", "raw encode ch/s", "index build ch/s",
                       "build/raw", "chunking s", "script fold s", "jieba s"],
                      [["seeds" if build_chunks <= 60 else "seeds+synthetic", b["chunks"],
                        b["raw_cps"], b["build_cps"], f"{b['ratio']:.0%}", b["chunk_s"],
                        b["fold_s"], b["tokenize_s"]]]))

        if "latency" in only:
            rows, lat = [], {}
            corpora = [("seeds", seeds_index, None)]
            for size in sizes:
                root = workdir / f"synthetic-{size}"
                prep = worker("prepare", {"size": size, "root": str(root)})
                corpora.append((f"synthetic {size // 1000}k", root, prep))
            for label, root, prep in corpora:
                big = prep is not None and prep["chunks"] > 20000
                res = worker("latency", {
                    "index": str(root), "queries": 20 if quick else None,
                    "passes": 1 if (quick or big) else 3,
                    "ask_queries": (0 if quick and prep else 10 if big else 20)})
                res["prepare"] = prep
                lat[label] = res
                ask = res.get("ask")
                fq = res["first_query_s"]
                rows.append([label, res["chunks"], res["open_s"],
                             f"{fq['dense']} / {fq['lexical']}",
                             *(f"{res[m]['p50_ms']:.1f} / {res[m]['p95_ms']:.1f}" for m in MODES),
                             f"{ask['p50_ms']:.0f} / {ask['p95_ms']:.0f}" if ask else "n/a",
                             f"{res['faiss_ms']['default']} / {res['faiss_ms']['1 thread']}",
                             res["rss_mb"], (prep or {}).get("disk_mb", "")])
            results["latency"] = lat
            say(table("Warm query latency, p50 / p95 ms over the dev-set questions; memory",
                      ["corpus", "chunks", "open s", "1st dense/lexical s", "search dense",
                       "search lexical", "search hybrid", "ask (extractive)",
                       "FAISS only ms: omp default/1", "RSS MB", "disk MB"], rows))
            say("  synthetic corpora: recombined seed sentences with random unit vectors "
                "(see benchmarks/synth.py); query vectors come from the real model.")

        if "peers" in only:
            pe = worker("peers", {"workdir": str(workdir)})
            results["peers"] = pe
            base = pe["policyrag-dense"]
            rows = []
            for name in ("policyrag-hybrid", "policyrag-dense", "txtai", "langchain-faiss"):
                r = pe.get(name, {})
                if "error" in r or not r:
                    rows.append([name, r.get("error", "missing")] + [""] * 8)
                    continue
                rows.append([name, f"{r['build_s']:.2f}", f"{r['build_s'] - r['embed_s']:.3f}",
                             f"{r.get('import_s', 0):.2f}",
                             f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}", f"{r['recall@5']:.3f}",
                             f"{r['mrr@10']:.3f}",
                             f"{r['build_s'] / base['build_s']:.2f}",
                             f"{r['p50_ms'] / base['p50_ms']:.2f}"])
            say(table(f"Side by side on the seeds ({pe['chunks']} chunks, same model, same "
                      "chunks, 52 dev questions); ratios are system / policyrag-dense",
                      ["system", "build s", "build minus embedding s", "import s",
                       "query p50 ms", "p95 ms", "recall@5", "MRR@10", "build ratio",
                       "p50 ratio"], rows))

        if "startup" in only:
            runs = 2 if quick else 5
            cold = cold_search(seeds_index, runs)
            phases = worker("phases", {"index": str(seeds_index)})
            onnx = worker("onnx", {})
            serve = cold_serve(seeds_index)
            results["startup"] = {"cold": cold, "phases": phases, "onnx": onnx, "serve": serve}
            say(table(f"Cold `policyrag search {QUERY}` (new process, seeds index, files in "
                      "page cache)",
                      ["measure", "seconds"],
                      [["wall, median of " + str(runs), cold["median_s"]],
                       *[[f"phase: {k}", v] for k, v in phases.items()],
                       *[[f"import: {k}", v] for k, v in cold["imports"]]]))
            say(table("Cold `policyrag serve` (new process, seeds index)", ["measure", "seconds"],
                      [[k.removesuffix("_s").replace("_", " "), v] for k, v in serve.items()]))
            say(table("Packaged ONNX model by graph optimisation level",
                      ["level", "load s", "encode ch/s"],
                      [[k, v["load_s"], v["cps"]] for k, v in onnx.items()]))
        for section in SCRIPTS:
            if section in only:
                results[section] = external(section, quick)
        if only & set(SCRIPTS):
            say(summary(results))
    finally:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)
    results["total_s"] = round(now() - started, 1)
    results["machine"]["load_end"] = [round(x, 2) for x in os.getloadavg()]
    say(f"\ntotal {results['total_s']} s; load average now {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
