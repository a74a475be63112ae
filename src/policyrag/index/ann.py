"""Approximate nearest-neighbour search for big segments, and memory-mapped reading.

A segment with at least `Settings.ann_min_chunks` rows gets, beside its flat vectors.faiss,
an IVF-Flat index (ann.faiss) made by `faiss.index_factory`. IVF rather than HNSW: on the
real at-scale vectors both reach 0.98 of the flat top 10 at about a millisecond, but IVF
trains and fills 1M vectors in about a minute on 2 cores where HNSW takes many, it takes a
FAISS ID selector with its own nprobe (SearchParametersIVF), and its lists can be memory-
mapped (benchmarks/ann.py). The flat file stays: exact scores over a subset, compaction and
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


def lists_for(rows: int, lists_per_sqrt: float) -> int:
    return max(1, min(rows, round(lists_per_sqrt * math.sqrt(rows))))


def probes_for(lists: int, probe_share: float) -> int:
    return max(1, min(lists, math.ceil(lists * probe_share)))


def build(vectors: np.ndarray, lists: int) -> faiss.Index:
    """An IVF-Flat inner-product index over `vectors`, trained on a fixed sample of them."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.index_factory(vectors.shape[1], f"IVF{lists},Flat", faiss.METRIC_INNER_PRODUCT)
    train = vectors
    if len(vectors) > lists * TRAIN_PER_LIST:
        pick = np.random.default_rng(SEED).choice(len(vectors), lists * TRAIN_PER_LIST,
                                                  replace=False)
        train = vectors[np.sort(pick)]
    index.cp.seed = SEED
    index.train(train)
    index.add(vectors)
    return index


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
