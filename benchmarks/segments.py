"""What a change costs on a large index: adding one report, removing it, compacting.

    python benchmarks/segments.py                   # 100k chunks, this tree and the baseline
    python benchmarks/segments.py --chunks 20000 --no-baseline --json figures.json

Each implementation runs in its own process: it builds a synthetic index of about --chunks
chunks through its own writer (texts recombined from the seeds as in synth.py, random unit
vectors, jieba memoised per sentence; the slogan lexicon is mined from the synthetic texts
themselves, so that adding a report does not change it and force the old writer to
re-tokenise everything), opens it once (as a running server has, so checksums are on record),
then adds one real-sized report embedded with the packaged model, removes one of the
original reports (a tombstone in the big segment), removes the added one (its whole segment),
and (segments only) compacts what is left into one segment. After the add it reopens the
index as a running server does (segments: given the index it had open, so only the new
segment is read). "MB written" is what the process wrote through write(2) during the step
(/proc/self/io wchar): index files, manifest, and the checksum record alike.

The baseline is the writer before segments (git revision --baseline, extracted with
`git archive` into a temporary folder): every change rewrote the whole index.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BASELINE = "3362842"  # the last commit whose index was one folder rewritten on every change


def wchar() -> int:
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("wchar:"))


def rss_peak_mb() -> float:
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith("VmHWM:"))
    return round(int(line.split()[1]) / 1024, 1)


def step(fn) -> tuple[float, float, object]:
    """(seconds, MB written, result) of fn()."""
    w0, t0 = wchar(), time.perf_counter()
    out = fn()
    return round(time.perf_counter() - t0, 3), round((wchar() - w0) / 1e6, 2), out


def build(root: Path, n_chunks: int, embedder) -> dict:
    from functools import cache

    from synth import RandomEmbedder, seed_documents, synthetic_documents

    from policyrag.config import Settings
    from policyrag.index import lifecycle as idx
    from policyrag.index.lexical import tokenize
    from policyrag.ingest.chunking import sentence_spans

    settings = Settings()
    docs = synthetic_documents(seed_documents(), n_chunks, settings, embedder.max_chars)

    @cache
    def sentence_tokens(sentence: str, lex: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(tokenize(sentence, lex))

    def fast_tokenize(text: str, lex: tuple[str, ...] = ()) -> list[str]:
        return [t for s in sentence_spans(text) for t in sentence_tokens(text[s.start:s.end], lex)]

    saved = idx.tokenize
    idx.tokenize = fast_tokenize
    try:
        seconds, mb, _ = step(lambda: idx.build(root, docs, RandomEmbedder(embedder), settings,
                                                ["synthetic"]))
    finally:
        idx.tokenize = saved
    return {"documents": len(docs), "build_s": seconds, "build_mb": mb}


def new_report(lexicon: tuple[str, ...], embedder):
    """A report of seed sentences (2,000-3,500 characters), whose slogans the index knows."""
    from synth import seed_documents, synthetic_documents

    from policyrag.config import Settings
    from policyrag.index.lexical import slogans

    for seed in range(1000, 1100):
        doc = synthetic_documents(seed_documents(), 1, Settings(), embedder.max_chars, seed)[0]
        if set(slogans([doc.text])) <= set(lexicon):
            doc.doc_id, doc.source = "added-report", "/benchmark/added-report.txt"
            return doc
    raise SystemExit("no synthetic report without new slogans")


def child(src: Path, root: Path, n_chunks: int) -> dict:
    sys.path[:0] = [str(src), str(HERE)]
    from policyrag.config import Settings
    from policyrag.index import lifecycle as idx
    from policyrag.index.embedding import load_embedder
    from policyrag.index.lexical import tokenize

    embedder = load_embedder()
    out: dict = {"src": str(src)}
    if idx.store.current_generation(root) is None:
        out.update(build(root, n_chunks, embedder))
    out["index_mb"] = round(sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1e6)
    out["open_s"], _, ix = step(lambda: idx.open_index(root, embedder))
    out["chunks"] = len(ix.chunks)
    doc = new_report(ix.lexicon, embedder)
    settings = Settings()
    texts = [c.text for c in idx._chunk_all([doc], settings, embedder)]
    embedder.encode(texts[:2], "passage")  # a warm model, as a server has
    tokenize("预热", tuple(idx.read_manifest(root).lexicon))  # and a warm segmenter
    t0 = time.perf_counter()
    embedder.encode(texts, "passage", settings.batch_size)
    out["report_chars"], out["report_chunks"] = len(doc.text), len(texts)
    out["embed_s"] = round(time.perf_counter() - t0, 3)
    out["add_s"], out["add_mb"], change = step(
        lambda: idx.add(root, [doc], embedder, settings))
    assert change.added == ["added-report"], change
    out["add_minus_embed_s"] = round(out["add_s"] - out["embed_s"], 3)
    # What a running server (Engine) does next: open the new generation, given the old one.
    reuse = "previous" in inspect.signature(idx.open_index).parameters
    before = ix
    out["reopen_s"], _, ix = step(lambda: idx.open_index(root, embedder, before) if reuse
                                  else idx.open_index(root, embedder))
    before = ix = None  # (freed before the next steps)
    out["remove_s"], out["remove_mb"], _ = step(
        lambda: idx.remove(root, ["syn000100"], settings))
    out["remove_added_s"], out["remove_added_mb"], _ = step(
        lambda: idx.remove(root, ["added-report"], settings))
    out["open_after_s"], _, ix = step(lambda: idx.open_index(root, embedder))
    assert "added-report" not in ix.documents and "syn000100" not in ix.documents
    del ix
    if hasattr(idx, "compact"):
        out["compact_s"], out["compact_mb"], _ = step(lambda: idx.compact(root, settings))
    out["peak_rss_mb"] = rss_peak_mb()
    return out


def run_child(src: Path, root: Path, n_chunks: int) -> dict:
    # One cache folder for both (jieba's dictionary, the model's files); the checksum records
    # are per index folder anyway.
    env = {**os.environ, "POLICYRAG_CACHE_DIR": str(root.parent / "cache")}
    done = subprocess.run([sys.executable, __file__, "--child", str(src), "--index", str(root),
                           "--chunks", str(n_chunks)], capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{src} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def baseline_tree(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def table(results: dict[str, dict]) -> str:
    rows = [("index", "chunks", "{}"), ("index size", "index_mb", "{} MB"),
            ("build", "build_s", "{} s"), ("open", "open_s", "{} s"),
            ("report added", "report_chars", "{} chars"), ("its chunks", "report_chunks", "{}"),
            ("embedding them alone", "embed_s", "{} s"), ("add", "add_s", "{} s"),
            ("add minus embedding", "add_minus_embed_s", "{} s"),
            ("add wrote", "add_mb", "{} MB"),
            ("reopen after the add", "reopen_s", "{} s"),
            ("remove an original", "remove_s", "{} s"), ("  wrote", "remove_mb", "{} MB"),
            ("remove the added one", "remove_added_s", "{} s"),
            ("  wrote", "remove_added_mb", "{} MB"),
            ("open after the changes", "open_after_s", "{} s"),
            ("compact", "compact_s", "{} s"), ("compact wrote", "compact_mb", "{} MB"),
            ("peak RSS", "peak_rss_mb", "{} MB")]
    names = list(results)
    lines = [f"| {'':<24} | " + " | ".join(f"{n:>16}" for n in names) + " |",
             "|" + "-" * 26 + "|" + "|".join("-" * 18 for _ in names) + "|"]
    for label, key, fmt in rows:
        cells = [fmt.format(r[key]) if key in r else "-" for r in results.values()]
        lines.append(f"| {label:<24} | " + " | ".join(f"{c:>16}" for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the old writer")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.index, a.chunks)))
        return
    with tempfile.TemporaryDirectory(prefix="policyrag-segments-") as tmp:
        work = Path(tmp)
        trees = {"segments": ROOT / "src"}
        if not a.no_baseline:
            trees[f"baseline {a.baseline}"] = baseline_tree(a.baseline, work)
        # Both start with jieba's dictionary and the model's files made once in the shared
        # cache folder, so that the first to run does not pay for the second.
        subprocess.run([sys.executable, "-c", "from policyrag.index.lexical import tokenize; "
                        "from policyrag.index.embedding import load_embedder; "
                        "tokenize('预热'); load_embedder()"], check=True,
                       env={**os.environ, "POLICYRAG_CACHE_DIR": str(work / "cache"),
                            "PYTHONPATH": str(ROOT / "src")})
        results = {}
        for i, (name, src) in enumerate(trees.items()):
            results[name] = run_child(src, work / f"index{i}", a.chunks)
            print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
    print(table(results))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} cores")
    if a.json:
        a.json.write_text(json.dumps({"chunks": a.chunks, "cpus": os.cpu_count(), **results},
                                     ensure_ascii=False, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
