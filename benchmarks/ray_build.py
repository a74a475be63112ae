"""`policyrag index build --ray` against the single-process build, on the same texts.

    python benchmarks/ray_build.py                    # seeds + 2,000 real texts, local Ray
    python benchmarks/ray_build.py --texts 500 --cpus 2 --json ray.json
    python benchmarks/ray_build.py --ray-only --texts 4000 --cpus 2 --segment-chunks 500

Each build runs in a fresh process: the single-process build as `policyrag index build` does
it, and the Ray build on a local Ray instance (`--cpus` CPUs; default: every core), with the
instance's start-up timed apart. Both indexes are then compared (chunks, tokens, vectors).
What serving costs in memory: the RSS of a fresh process after its first hybrid search (model
loaded, index opened, BM25 built), on the seeds alone and on the whole set; the slope between
the two, per 100k chunks, leaves out what every process holds.

The Ray driver's memory: its RSS once the model is loaded and Ray started, its peak RSS by the
end of each stage of the build, and how much of its RSS at the end is object-store pages it
mapped (shared with Ray, not its own heap). `--segment-chunks N` sets POLICYRAG_SEGMENT_CHUNKS
for the builds, the size of the segments the driver writes as rows arrive and the most it
holds; `--ray-only` runs the Ray build alone. Needs the `ray` extra: pip install -e .[ray]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import rss_mb  # benchmarks/ is on the path of a script run from it

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEEDS = ROOT / "seeds"
CORPUS = ROOT.parent / "shared" / "corpus" / "distractors-dev.jsonl.gz"
QUERY = "招商引资"


# ---- workers (each in its own process) -------------------------------------------------------

def w_single(a: dict) -> dict:
    from policyrag.config import Settings
    from policyrag.index import lifecycle as idx
    from policyrag.index.embedding import load_embedder
    from policyrag.ingest.documents import load_documents

    embedder = load_embedder()
    assert embedder.dim  # the model loaded before the clock starts, as for the Ray driver
    paths = [Path(p) for p in a["paths"]]
    t0 = time.perf_counter()
    docs, _ = load_documents(paths)
    t1 = time.perf_counter()
    idx.build(Path(a["root"]), docs, embedder, Settings(), [str(p) for p in paths])
    t2 = time.perf_counter()
    return {"seconds": round(t2 - t0, 2), "read_s": round(t1 - t0, 2),
            "chunk_embed_commit_s": round(t2 - t1, 2), "peak_rss_mb": rss_mb()[1]}


def w_ray(a: dict) -> dict:
    import ray

    from policyrag.config import Settings
    from policyrag.index import raybuild
    from policyrag.index.embedding import load_embedder

    embedder = load_embedder()
    assert embedder.dim
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=a["cpus"], include_dashboard=False,
             log_to_driver=False)
    started = time.perf_counter() - t0
    before = rss_mb()[0]  # model loaded, Ray started: what the build adds is on top
    peaks: dict[str, float] = {}  # the driver's peak RSS by the end of each stage
    lap = raybuild._Clock.lap

    def lap_and_peak(clock, name: str) -> None:
        lap(clock, name)
        peaks[name] = rss_mb()[1]

    raybuild._Clock.lap = lap_and_peak
    t1 = time.perf_counter()
    done = raybuild.build(Path(a["root"]), [Path(p) for p in a["paths"]], embedder, Settings())
    seconds = time.perf_counter() - t1
    shared = _status_mb("RssShmem")  # object store pages the driver touched, not its heap
    ray.shutdown()
    return {"seconds": round(seconds, 2), "ray_start_s": round(started, 2),
            "cpus": done.workers, "stages_s": done.seconds, "driver_rss_before_mb": before,
            "driver_peak_rss_by_stage_mb": peaks,
            "driver_rss_shmem_after_mb": shared,
            "driver_peak_rss_mb": rss_mb()[1], **_written(Path(a["root"]))}


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(f"{key}:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _written(root: Path) -> dict:
    from policyrag.index import lifecycle as idx

    manifest = idx.read_manifest(root)
    return {"chunks": manifest.chunks, "segments": len(manifest.segments)}


def w_compare(a: dict) -> dict:
    import numpy as np

    from policyrag.index import lifecycle as idx

    one, two = (idx.open_index(Path(r)) for r in (a["single"], a["ray"]))
    return {"documents": len(one.documents), "chunks": len(one.chunks),
            "same_documents": {k: d.to_dict() for k, d in one.documents.items()}
            == {k: d.to_dict() for k, d in two.documents.items()},
            "same_chunks": [(c.chunk_id, c.start, c.end) for c in one.chunks]
            == [(c.chunk_id, c.start, c.end) for c in two.chunks],
            "same_tokens": one.tokens == two.tokens,
            "max_vector_diff": float(np.abs(one.matrix() - two.matrix()).max())
            if len(one.chunks) == len(two.chunks) else None}


def w_serve_rss(a: dict) -> dict:
    """RSS of a process serving the index, after its first hybrid search."""
    from policyrag.engine import Engine

    engine = Engine(Path(a["root"]))
    engine.search(QUERY, 5, mode="hybrid")  # loads the model, opens the index, builds BM25
    return {"chunks": len(engine.index.chunks), "rss_mb": rss_mb()[0]}


WORKERS = {"single": w_single, "ray": w_ray, "compare": w_compare, "serve_rss": w_serve_rss}


def worker(name: str, args: dict, timeout: float = 3600) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    proc = subprocess.run([sys.executable, __file__, "--worker", name, json.dumps(args)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"{name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


# ---- driver ---------------------------------------------------------------------------------

def corpus_part(n: int, dest: Path) -> Path:
    """The first `n` texts of the shared corpus, as a collection of their own."""
    with gzip.open(CORPUS, "rt", encoding="utf-8") as src, \
            gzip.open(dest, "wt", encoding="utf-8") as out:
        for i, line in enumerate(src):
            if i >= n:
                break
            out.write(line)
    return dest


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def driver_rows(on_ray: dict) -> list[tuple[str, str]]:
    grown = on_ray["driver_peak_rss_mb"] - on_ray["driver_rss_before_mb"]
    return [("driver RSS before the build / peak", f"{on_ray['driver_rss_before_mb']} MB / "
                                                   f"{on_ray['driver_peak_rss_mb']} MB"),
            ("driver peak over before", f"{grown:.1f} MB ({on_ray['chunks']} chunks in "
                                        f"{on_ray['segments']} segments)"),
            ("driver peak by the end of each stage", ", ".join(
                f"{k} {v}" for k, v in on_ray["driver_peak_rss_by_stage_mb"].items())),
            ("driver RSS in object store pages, at the end",
             f"{on_ray['driver_rss_shmem_after_mb']} MB")]


def ray_only(a: argparse.Namespace, on_ray: dict, load: float) -> int:
    figures = {"texts": f"seeds + {a.texts} from {CORPUS.name}", "cpus": a.cpus,
               "segment_chunks": os.environ.get("POLICYRAG_SEGMENT_CHUNKS", "default"),
               "machine": f"{os.cpu_count()} cores, load average {load:.1f} at start",
               "ray": on_ray}
    stages = ", ".join(f"{k} {v}" for k, v in on_ray["stages_s"].items())
    print(f"Ray build: {figures['texts']}, segments of {figures['segment_chunks']} chunks; "
          f"{figures['machine']}")
    print(table([(f"Ray build, {on_ray['cpus']} CPUs", f"{on_ray['seconds']} s ({stages})"),
                 *driver_rows(on_ray)]))
    if a.json:
        a.json.write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--texts", type=int, default=2000,
                    help="texts from the shared corpus added to the seeds (default 2000)")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 1,
                    help="CPUs of the local Ray instance (default: every core)")
    ap.add_argument("--segment-chunks", type=int, metavar="N",
                    help="POLICYRAG_SEGMENT_CHUNKS for the builds (default: as set, else 50000)")
    ap.add_argument("--ray-only", action="store_true",
                    help="only the Ray build: its time and its driver's memory")
    ap.add_argument("--json", type=Path, metavar="PATH", help="write the figures here")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        name, args = a.worker
        print("RESULT " + json.dumps(WORKERS[name](json.loads(args))), flush=True)
        return 0

    with tempfile.TemporaryDirectory(prefix="policyrag-ray-bench-") as tmp:
        work = Path(tmp)
        paths = [str(SEEDS)]
        if a.texts:
            if not CORPUS.exists():
                raise SystemExit(f"{CORPUS} is missing; use --texts 0 for the seeds alone")
            paths.append(str(corpus_part(a.texts, work / "texts.jsonl.gz")))
        load = os.getloadavg()[0]
        if a.segment_chunks:
            os.environ["POLICYRAG_SEGMENT_CHUNKS"] = str(a.segment_chunks)
        if a.ray_only:
            return ray_only(a, worker("ray", {"paths": paths, "root": str(work / "ray"),
                                              "cpus": a.cpus}), load)
        single = worker("single", {"paths": paths, "root": str(work / "single")})
        on_ray = worker("ray", {"paths": paths, "root": str(work / "ray"), "cpus": a.cpus})
        same = worker("compare", {"single": str(work / "single"), "ray": str(work / "ray")})
        # Serving memory per chunk: the slope between the seeds alone and the whole set, so
        # that what any process holds (model, jieba, gazetteer) is left out.
        small = work / "seeds-only"
        if a.texts:
            worker("single", {"paths": [str(SEEDS)], "root": str(small)})
        base = worker("serve_rss", {"root": str(small if a.texts else work / "ray")})
        full = worker("serve_rss", {"root": str(work / "ray")})
        grown = full["chunks"] - base["chunks"]
        served = {"seeds": base, "all": full, "mb_per_100k_chunks": round(
            (full["rss_mb"] - base["rss_mb"]) / grown * 100_000, 1) if grown else None}
    figures = {"texts": f"seeds + {a.texts} from {CORPUS.name}", "cpus": a.cpus,
               "machine": f"{os.cpu_count()} cores, load average {load:.1f} at start",
               "single": single, "ray": on_ray, "equal": same, "serving": served,
               "ray_over_single": round(on_ray["seconds"] / single["seconds"], 2)}
    stages = ", ".join(f"{k} {v}" for k, v in on_ray["stages_s"].items())
    print(f"Ray build vs single-process build: {figures['texts']} "
          f"({same['documents']} reports, {same['chunks']} chunks); {figures['machine']}")
    print(table([
        ("single-process build", f"{single['seconds']} s (read {single['read_s']} s; "
                                 f"peak RSS {single['peak_rss_mb']} MB)"),
        (f"Ray build, {on_ray['cpus']} CPUs", f"{on_ray['seconds']} s ({stages}; driver "
                                              f"peak RSS {on_ray['driver_peak_rss_mb']} MB)"),
        *driver_rows(on_ray),
        ("Ray instance start (not in the above)", f"{on_ray['ray_start_s']} s"),
        ("Ray / single", f"{figures['ray_over_single']}x"),
        ("same reports, chunks, tokens", f"{same['same_documents']}, {same['same_chunks']}, "
                                         f"{same['same_tokens']}"),
        ("largest vector difference", f"{same['max_vector_diff']:.2e}"),
        ("serving RSS, seeds / all", f"{served['seeds']['rss_mb']} MB ({served['seeds']['chunks']}"
                                     f" chunks) / {served['all']['rss_mb']} MB "
                                     f"({served['all']['chunks']} chunks)"),
        ("serving RSS per 100k chunks (slope)", f"{served['mb_per_100k_chunks']} MB"),
    ]))
    if a.json:
        a.json.write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
