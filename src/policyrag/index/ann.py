"""Approximate nearest-neighbour search for big segments, and memory-mapped reading.

A segment with at least `Settings.ann_min_chunks` rows gets, beside its flat vectors.faiss,
an IVF index (ann.faiss) made by `faiss.index_factory`: `IVF{lists},PQ{dim/2}x4fs`, product-
quantised codes of 4 bits per two dimensions (128 bytes a 512-dim vector, 1/16 of the float
vector) scanned with FAISS's SIMD "fast scan" kernels. Its scores are approximate, so a
search re-scores its best candidates exactly from the memory-mapped flat vectors (`refine`).
Measured (benchmarks/ann.py): on the real at-scale vectors, with the lists and probes a
50k-row segment gets, that keeps 0.987 of the flat top 10 like IVF-Flat at the same probes
(0.989), and over twenty such segments (a million chunks) it scans in ~15 ms what IVF-Flat
scans in ~75 ms (SQ8 codes: ~53 ms, compute-bound; RaBitQ: ~38 ms). IVF rather than HNSW:
IVF trains and fills a 50k segment in seconds where HNSW takes many times that, and its lists
can be memory-mapped. Segments written with IVF-Flat (before) are searched as they are, with
no re-score. Fast scan ignores FAISS ID selectors, so a filter is applied to the candidates
(dense.py). The flat file stays: exact scores over a subset, re-scoring, compaction and
filters that keep few rows read it, memory-mapped, so only the rows touched are paged in.
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

ANN_FILE = "ann.faiss"
# k-means learns as well from this many rows per list as from all of them, much faster.
TRAIN_PER_LIST = 64
SEED = 1234
# Fewer rows than this cannot train 16 centroids per PQ sub-quantizer sensibly.
PQ_MIN_ROWS = 32


def lists_for(rows: int, lists_per_sqrt: float) -> int:
    return max(1, min(rows, round(lists_per_sqrt * math.sqrt(rows))))


def probes_for(lists: int, probe_share: float) -> int:
    return max(1, min(lists, math.ceil(lists * probe_share)))


def factory(dim: int, lists: int, rows: int) -> str:
    """The FAISS factory string of a new segment's approximate index: fast-scan PQ codes
    when the dimension splits in pairs and there are enough rows to train 16 centroids per
    sub-quantizer; else IVF-Flat."""
    if dim % 2 == 0 and rows >= PQ_MIN_ROWS:
        return f"IVF{lists},PQ{dim // 2}x4fs"
    return f"IVF{lists},Flat"


def refines(index: faiss.Index) -> bool:
    """Whether the index's scores are approximate and must be re-scored from the flat vectors
    (IVF-Flat, what segments were written with before, scores exactly)."""
    return not isinstance(index, faiss.IndexIVFFlat)


def build(vectors: np.ndarray, lists: int) -> tuple[faiss.Index, str]:
    """An IVF inner-product index over `vectors` (see `factory`), trained on a fixed sample of
    them, and its factory string."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    spec = factory(vectors.shape[1], lists, len(vectors))
    index = faiss.index_factory(vectors.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    train = vectors
    if len(vectors) > lists * TRAIN_PER_LIST:
        pick = np.random.default_rng(SEED).choice(len(vectors), lists * TRAIN_PER_LIST,
                                                  replace=False)
        train = vectors[np.sort(pick)]
    index.cp.seed = SEED
    index.train(train)
    index.add(vectors)
    return index, spec


def read_mapped(path: Path, ann: bool) -> faiss.Index:
    """A segment's FAISS file with its vectors memory-mapped, not read: opening costs the
    header, and a search pages in what it touches (the file never changes once written)."""
    flags = faiss.IO_FLAG_READ_ONLY | (faiss.IO_FLAG_MMAP if ann else faiss.IO_FLAG_MMAP_IFC)
    return faiss.read_index(str(path), flags)


def selector(n: int, local: np.ndarray) -> tuple[faiss.IDSelector, np.ndarray]:
    """A bitmap selector of the ids `local` among `n`; the bitmap must outlive the search."""
    mask = np.zeros(n, dtype=bool)
    mask[local] = True
    bits = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits)), bits
