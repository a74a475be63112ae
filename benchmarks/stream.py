"""A streamed build: its peak memory on 24 M characters, and its throughput against raw encode.

    python benchmarks/stream.py                          # both: about 40 minutes on 2 cores
    python benchmarks/stream.py --only memory --json out.json
    python benchmarks/stream.py --only throughput

memory: `policyrag index build` of the seeds plus a 24-million-character JSON Lines collection
made from the shared corpus (../shared/corpus/distractors-dev.jsonl.gz, 6.9 M characters):
every text as it is and in up to three more versions with its sentences rotated, under new
ids, so that none is a duplicate of another. The build runs as its own process; its peak RSS
is what the kernel reports for it (wait4's ru_maxrss), wall time and chunks beside it.

throughput: at the shared corpus's size (the seeds plus its 12,023 texts, about 29.5k chunks),
in one process with the model loaded and warm: raw `encode` of every chunk text in order, 32 at
a time; the same texts in the build's order (windows of settings.embed_window sorted by
length); then the build from the files (reading, cleaning, chunking, embedding, jieba, writing
segments). The goal is a build at ≥ 80% of raw encode's chunks/s.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "distractors-dev.jsonl.gz"
SEEDS = ROOT / "seeds"
SECTIONS = ("memory", "throughput")


def variants(text: str, copies: int) -> list[str]:
    """`text` and up to `copies - 1` versions of it with its sentences rotated (or shuffled,
    for a text too short to rotate into something new)."""
    from policyrag.ingest.chunking import sentence_spans

    sentences = [text[s.start:s.end] for s in sentence_spans(text)]
    out = [text]
    for k in range(1, copies):
        r = k * max(1, len(sentences) // copies)
        turned = sentences[r:] + sentences[:r]
        if len(sentences) > 1 and turned == sentences:
            turned = random.Random(k).sample(sentences, len(sentences))
        new = "\n".join(turned)
        if new not in out:
            out.append(new)
    return out


def make_collection(path: Path, chars: int, corpus: Path = CORPUS) -> dict:
    """A JSON Lines collection of about `chars` characters from `corpus` (see the docstring)."""
    with gzip.open(corpus, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    have = sum(len(r["text"]) for r in rows)
    copies = -(-chars // have)
    total = texts = 0
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as out:
        for k in range(copies):
            for row in rows:
                if total >= chars:
                    break
                version = variants(row["text"], copies)
                if k >= len(version):
                    continue
                out.write(json.dumps({"id": f"{row['id']}-v{k}", "title": row.get("title"),
                                      "text": version[k]}, ensure_ascii=False) + "\n")
                total += len(version[k])
                texts += 1
    return {"texts": texts, "chars": total}


class Sampled:
    """The real model for the first `real` passages it is asked for, random unit vectors after:
    for a memory figure on a machine too busy to embed 95k chunks in time. The model's working
    memory is per batch, allocated in the first ones, and does not grow with the chunks."""

    def __init__(self, real, first: int) -> None:
        import numpy as np

        self.real, self.left, self.rng = real, first, np.random.default_rng(5)
        self.name, self.revision, self.dim = real.name, real.revision, real.dim
        self.max_chars = real.max_chars

    def encode(self, texts, kind="passage", batch_size=32, progress=False):
        if self.left > 0 or kind != "passage":
            self.left -= len(texts)
            return self.real.encode(texts, kind, batch_size)
        v = self.rng.standard_normal((len(texts), self.dim)).astype("float32")
        return v / (v ** 2).sum(axis=1, keepdims=True) ** 0.5


def sampled_build(paths: list[str], root: str, first: int) -> None:
    """What `policyrag index build PATHS --index ROOT` does, with a Sampled model."""
    sys.path.insert(0, str(ROOT / "src"))
    from policyrag.engine import Engine
    from policyrag.index.embedding import load_embedder

    engine = Engine(root, progress=True)
    engine._embedder = Sampled(load_embedder(), first)
    gen, _ = engine.build([Path(p) for p in paths])
    print(f"built {root} ({gen})")


def memory(workdir: Path, chars: int, sampled: int | None = None) -> dict:
    """Peak RSS, wall time and size of `policyrag index build` on about `chars` characters
    (with `sampled`, only that many chunks embedded by the real model: see Sampled)."""
    collection = workdir / f"collection-{chars // 1_000_000}M.jsonl.gz"
    made_file = collection.with_suffix(".made.json")
    if collection.exists() and made_file.exists():  # a --workdir run again
        made = json.loads(made_file.read_text("utf-8"))
    else:
        made = make_collection(collection, chars)
        made_file.write_text(json.dumps(made), "utf-8")
    root = workdir / "index-memory"
    shutil.rmtree(root, ignore_errors=True)
    env = {**os.environ, "POLICYRAG_PROGRESS_SECONDS": "60",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    t = time.perf_counter()
    cmd = ([sys.executable, "-m", "policyrag", "index", "build", str(SEEDS), str(collection),
            "--index", str(root)] if sampled is None else
           [sys.executable, __file__, "--sampled-build", str(sampled), str(root), str(SEEDS),
            str(collection)])
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    out, err = proc.communicate()  # (its pipes drained, so it never blocks on them)
    seconds = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"the build failed ({proc.returncode}):\n{err[-2000:]}")
    manifest = _manifest(root)
    rss = _children_peak_kb()  # the build is the only child this process has waited for
    return {"chars": made["chars"] + sum(len(p.read_text("utf-8")) for p in SEEDS.glob("*.txt")),
            "texts": made["texts"], "documents": manifest["documents"],
            "chunks": manifest["chunks"], "segments": len(manifest["segments"]),
            "build_s": round(seconds, 1), "peak_rss_mb": round(rss / 1024, 1),
            "model_embedded": "all" if sampled is None else sampled,
            "stdout": out.strip().splitlines()[-1:]}


def _children_peak_kb() -> int:
    """The largest peak RSS of the children waited for (in KB, as Linux counts it)."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def _manifest(root: Path) -> dict:
    live = (root / "CURRENT").read_text("utf-8").strip()
    return json.loads((root / live / "manifest.json").read_text("utf-8"))


def corpus_part(texts: int | None, workdir: Path) -> Path:
    """The shared corpus, or its first `texts` texts as a collection of their own."""
    if texts is None:
        return CORPUS
    part = workdir / f"texts-{texts}.jsonl.gz"
    with gzip.open(CORPUS, "rt", encoding="utf-8") as src, \
            gzip.open(part, "wt", encoding="utf-8") as out:
        for _, line in zip(range(texts), src, strict=False):
            out.write(line)
    return part


def throughput(workdir: Path, n_texts: int | None = None, sort: bool = False) -> dict:
    """Raw encode (in order; in the build's length-sorted windows) against the build, at the
    shared corpus's size (or the seeds and `n_texts` of its texts), in this process. Wall
    seconds, and this process's CPU seconds beside them: on a machine shared with other jobs,
    the CPU time is what the work itself cost. With `sort`, also raw encode in length-sorted
    windows (what settings.bucket_by_length would have the build do)."""
    sys.path.insert(0, str(ROOT / "src"))
    from policyrag.config import Settings
    from policyrag.engine import Engine
    from policyrag.index import lifecycle as idx
    from policyrag.index.embedding import load_embedder
    from policyrag.ingest.documents import load_documents
    from policyrag.script import to_simplified

    settings = Settings()
    embedder = load_embedder()
    embedder.encode(["预热"])  # the session is made outside every timing
    corpus = corpus_part(n_texts, workdir)
    t = time.perf_counter()
    docs, _ = load_documents([SEEDS, corpus])
    read_s = time.perf_counter() - t
    unique, _ = idx._dedupe(docs, {})
    texts = [to_simplified(c.text) for c in idx._chunk_all(unique, settings, embedder)]
    del docs, unique
    t, c = time.perf_counter(), time.process_time()
    embedder.encode(texts, "passage", settings.batch_size)
    raw_s, raw_cpu = time.perf_counter() - t, time.process_time() - c
    sorted_s = sorted_cpu = 0.0
    if sort:
        window = settings.embed_window
        order = [i for w in range(0, len(texts), window)
                 for i in sorted(range(w, min(w + window, len(texts))),
                                 key=lambda i: len(texts[i]))]
        t, c = time.perf_counter(), time.process_time()
        embedder.encode([texts[i] for i in order], "passage", settings.batch_size)
        sorted_s, sorted_cpu = time.perf_counter() - t, time.process_time() - c
    root = workdir / "index-throughput"
    shutil.rmtree(root, ignore_errors=True)
    engine = Engine(root, settings=settings)
    engine._embedder = embedder
    t, c = time.perf_counter(), time.process_time()
    engine.build([SEEDS, corpus])
    build_s, build_cpu = time.perf_counter() - t, time.process_time() - c
    n = len(texts)
    return {"chunks": n, "segments": len(_manifest(root)["segments"]),
            "read_s": round(read_s, 1), "raw_s": round(raw_s, 1),
            "raw_sorted_s": round(sorted_s, 1), "build_s": round(build_s, 1),
            "raw_cps": round(n / raw_s, 1),
            "raw_sorted_cps": round(n / sorted_s, 1) if sort else None,
            "build_cps": round(n / build_s, 1), "ratio": round(raw_s / build_s, 3),
            "raw_cpu_s": round(raw_cpu, 1),
            "raw_sorted_cpu_s": round(sorted_cpu, 1) if sort else None,
            "build_cpu_s": round(build_cpu, 1), "cpu_ratio": round(raw_cpu / build_cpu, 3),
            "texts": "all" if n_texts is None else n_texts,
            "bucket_by_length": settings.bucket_by_length, "threads": os.cpu_count()}


def tables(res: dict) -> str:
    lines = []
    if "memory" in res:
        m = res["memory"]
        lines += ["## Peak memory of `policyrag index build` (own process)",
                  "| characters | reports | chunks | segments | wall | peak RSS | chunks "
                  "embedded by the model |", "|---|---|---|---|---|---|---|",
                  f"| {m['chars'] / 1e6:.1f} M | {m['documents']} | {m['chunks']} | "
                  f"{m['segments']} | {m['build_s']:.0f} s | {m['peak_rss_mb']:.0f} MB | "
                  f"{m['model_embedded']} |", ""]
    if "throughput" in res:
        t = res["throughput"]
        lines += ["## Build throughput against raw encode (same chunk texts, one process)",
                  "| chunks | raw encode | raw, length-sorted windows | build from the files | "
                  "build / raw (wall) | build / raw (CPU s) |", "|---|---|---|---|---|---|",
                  f"| {t['chunks']} | {t['raw_cps']} ch/s | {t['raw_sorted_cps']} ch/s | "
                  f"{t['build_cps']} ch/s ({t['build_s']:.0f} s; reading alone "
                  f"{t['read_s']:.0f} s) | {t['ratio']:.0%} | {t['cpu_ratio']:.0%} "
                  f"({t['raw_cpu_s']} vs {t['build_cpu_s']}; sorted raw "
                  f"{t['raw_sorted_cpu_s']}) |", ""]
    lines.append(f"{os.cpu_count()} cores; load average "
                 f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(SECTIONS), help="memory,throughput")
    ap.add_argument("--chars", type=int, default=24_000_000,
                    help="characters indexed for the memory figure (default 24 M)")
    ap.add_argument("--texts", type=int, default=None,
                    help="throughput on the seeds and only this many corpus texts")
    ap.add_argument("--sampled", type=int, default=None, metavar="N",
                    help="memory: embed only the first N chunks with the real model, random "
                         "vectors after (a busy machine; see Sampled)")
    ap.add_argument("--sampled-build", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--sorted", action="store_true",
                    help="throughput: also raw encode in length-sorted windows")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = ap.parse_args()
    if a.sampled_build:
        first, root, *paths = a.sampled_build
        sampled_build(paths, root, int(first))
        return
    only = {s.strip() for s in a.only.split(",") if s.strip()}
    if only - set(SECTIONS):
        ap.error(f"unknown section(s) {', '.join(sorted(only - set(SECTIONS)))}")
    work = a.workdir or Path(tempfile.mkdtemp(prefix="policyrag-stream-"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {"machine": {"cpus": os.cpu_count(),
                             "load_start": [round(x, 2) for x in os.getloadavg()]}}
    try:
        if "throughput" in only:
            res["throughput"] = throughput(work, a.texts, a.sorted)
            print(json.dumps(res["throughput"]), file=sys.stderr, flush=True)
        if "memory" in only:
            res["memory"] = memory(work, a.chars, a.sampled)
            print(json.dumps(res["memory"]), file=sys.stderr, flush=True)
    finally:
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    res["machine"]["load_end"] = [round(x, 2) for x in os.getloadavg()]
    print(tables(res))
    if a.json:
        a.json.write_text(json.dumps(res, ensure_ascii=False, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
