"""What opening an index checks, what only `index verify` checks, and what each costs.

    python benchmarks/verify_cost.py                    # a synthetic 100k-chunk index
    python benchmarks/verify_cost.py --chunks 10000 --index /tmp/idx10k   # kept for reruns

The index is written by the project's own writer (benchmarks/synth.py: seed sentences under
other place names, random unit vectors), so its files have the real sizes of a 100k-chunk
index. Each figure is the median of --repeat runs in this process, with the files in the page
cache (just written or just read): the cost of the checks themselves, not of a cold disk.

Runs of the different measurements are interleaved (and garbage collected in between) so that
load on a shared machine falls on all of them alike.

- checksum, first open: xxh3-128 over vectors.faiss, chunks.jsonl and documents.jsonl against
  manifest.json (what `open_index` adds when the files' stat stamps are not yet on record);
- checksum, warm open: the same when they are (one small JSON file read, a stat per file);
- open_index, first / warm: the whole open (FAISS load, JSON Lines parse, checks);
- verify: everything `policyrag index verify` does (never uses the record).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synth import build_synthetic_index  # noqa: E402

from policyrag.index import (
    checksum,
    store,  # noqa: E402
)
from policyrag.index import lifecycle as idx  # noqa: E402
from policyrag.index.embedding import load_embedder  # noqa: E402


def seconds(fn, before=lambda: None) -> float:
    before()
    gc.collect()  # the previous run's index is freed outside the timing
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def medians(runs: dict, repeat: int) -> dict[str, float]:
    """Each of `runs` (label -> (fn, before)) `repeat` times, interleaved, so that the machine's
    load and memory state fall on all of them alike."""
    times: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(repeat):
        for label, (fn, before) in runs.items():
            times[label].append(seconds(fn, before))
    return {label: statistics.median(t) for label, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--index", type=Path, help="build here (or reuse what is there)")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="policyrag-verify-cost-"))
    os.environ["POLICYRAG_CACHE_DIR"] = str(work / "cache")  # a record of our own
    root = a.index or work / "index"
    if store.current_generation(root) is None:
        t0 = time.perf_counter()
        info = build_synthetic_index(root, a.chunks, load_embedder())
        print(f"built {root}: {info['chunks']} chunks, {info['documents']} reports, "
              f"{info['disk_mb']} MB, in {time.perf_counter() - t0:.0f} s")
    gen = store.current_generation(root)
    manifest = idx.Manifest.from_dict(store.read_json(gen / "manifest.json"))
    names = idx.FILES[1:]
    sizes = {n: (gen / n).stat().st_size / 1e6 for n in names}
    print(f"{manifest.chunks} chunks; " + ", ".join(f"{n} {mb:.0f} MB" for n, mb in sizes.items()))

    def forget() -> None:
        checksum._cache_file(root).unlink(missing_ok=True)

    def check() -> None:
        assert checksum.first_mismatch(root, [(n, gen / n, manifest.segment_list(gen.name)[0].checksums.get(n)) for n in names]) is None

    def nothing() -> None:
        pass

    def open_index() -> None:
        idx.open_index(root)

    rows = list(medians({
        "checksum, first open (all files hashed)": (check, forget),
        "checksum, warm open (stat stamps on record)": (check, nothing),
        "open_index, first open": (open_index, forget),
        "open_index, warm open": (open_index, nothing),
        "index verify (everything, no record)": (lambda: idx.verify(root), nothing),
    }, a.repeat).items())
    total_mb = sum(sizes.values())
    for label, secs in rows:
        print(f"{label:<46} {secs:8.3f} s")
    print(f"xxh3-128 throughput: {total_mb / rows[0][1]:.0f} MB/s over {total_mb:.0f} MB")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
