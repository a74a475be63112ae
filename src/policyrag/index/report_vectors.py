"""A second, stronger encoder over the sentences of the report-type passages, stored beside
the index.

Buried among thousands of other texts, a question that names no place leans on the encoder, and
the packaged one is weak at scale. EmbeddingGemma is far stronger but embeds ~40x slower, so
embedding a whole collection with it costs hours. Reports (communiqués, work reports, speeches)
are what such questions are about, and usually a small share of a collection (1,700 of 29,500
chunks in the shared corpus): embedding only them buys most of the gain (README, "How well it
works") at a fraction of the cost. Each sentence gets its own vector and a passage scores as its
closest sentence: a ~300-character passage speaks of several things, and in one vector of the
whole the sentence a question asks about weighs little.

The vectors live in `<index>/report-vectors.npz`, keyed by a hash of each sentence's text, so
they stay valid across generations: `encode_reports` embeds only sentences it has no vector for
and drops those no longer indexed, then replaces the file atomically. Searches use them when
the file exists and its encoder loads (index/lifecycle knows nothing of them).
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from policyrag.index.embedding import Embedder, load_once
from policyrag.index.store import fsync_dir, writer_lock
from policyrag.ingest.chunking import sentences
from policyrag.script import to_simplified

FILE = "report-vectors.npz"
# What one vector stands for. A file of an earlier release (one vector per passage) lacks it
# and is read as unreadable: searches warn and go on, `encode-reports` writes it anew.
UNIT = "sentence"
DEFAULT_ENCODER = "packaged:embeddinggemma"


@dataclass
class Coverage:
    model: str
    report_chunks: int  # report-type passages in the index
    covered: int  # of them with a vector
    embedded: int = 0  # embedded by this call


@dataclass
class ReportMatrix:
    """The sentence vectors of the index's report rows that have all of theirs, row by row."""
    model: str
    rows: np.ndarray  # index rows (int64)
    starts: np.ndarray  # where each row's sentences begin in `vectors`
    vectors: np.ndarray  # (sentences, dim) float16, normalised

    def best(self, queries: np.ndarray, block: int = 16384) -> np.ndarray:
        """(len(queries), len(rows)): each row's closest sentence to each query vector."""
        queries = np.asarray(queries, np.float32).T
        cos = np.concatenate([self.vectors[i:i + block].astype(np.float32) @ queries
                              for i in range(0, len(self.vectors), block)])
        return np.maximum.reduceat(cos, self.starts, axis=0).T


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def report_rows(index) -> np.ndarray:
    return np.flatnonzero(index.view().from_reports(np.arange(len(index.chunks))))


def _report_sentences(index) -> tuple[np.ndarray, list[dict[bytes, str]]]:
    """The index's report rows and the sentences of each (simplified, as indexed), by key."""
    rows = report_rows(index)
    return rows, [{text_key(t): t for t in sentences(to_simplified(index.chunks[i].text))}
                  for i in rows]


def _read(path: Path) -> tuple[str, dict[bytes, np.ndarray]]:
    with np.load(path) as data:
        model = str(data["model"])
        if str(data["unit"]) != UNIT:
            raise ValueError(f"report vectors per {data['unit']}, not per {UNIT}")
        keys = [bytes(k) for k in data["keys"]]
        return model, dict(zip(keys, data["vectors"], strict=True))


# What a damaged or foreign file raises when read.
_UNREADABLE = (OSError, ValueError, KeyError, zipfile.BadZipFile)


def _readable(path: Path) -> tuple[str, dict[bytes, np.ndarray]] | None:
    try:
        return _read(path)
    except _UNREADABLE:
        return None


def stored_model(root: Path) -> str | None:
    """The encoder the index's report vectors were made with (read without the vectors),
    or None without a readable file."""
    try:
        with np.load(root / FILE) as data:
            return str(data["model"])
    except _UNREADABLE:
        return None


def _write(path: Path, model: str, stored: dict[bytes, np.ndarray]) -> None:
    keys = np.array([np.frombuffer(k, np.uint8) for k in stored], np.uint8).reshape(-1, 16)
    vectors = np.array(list(stored.values()), np.float16)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        np.savez(fh, model=np.array(model), unit=np.array(UNIT), keys=keys, vectors=vectors)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def encode_reports(index, embedder: Embedder, progress: bool = False,
                   wait: float = 0.0) -> Coverage:
    """Give every sentence of the report-type passages of `index` a vector from `embedder`,
    reusing the stored ones; another encoder's file, or a damaged one, is replaced whole. Holds
    the index's writer lock while it writes."""
    path = index.root / FILE
    rows, groups = _report_sentences(index)
    texts = {k: t for group in groups for k, t in group.items()}
    stored: dict[bytes, np.ndarray] = {}
    previous = _readable(path) if path.exists() else None
    if previous is not None and previous[0] == embedder.name:
        stored = {k: v for k, v in previous[1].items() if k in texts}
    missing = [k for k in texts if k not in stored]
    fresh = sum(any(k not in stored for k in group) for group in groups)
    if missing:
        vectors = embedder.encode([texts[k] for k in missing], "passage", progress=progress)
        stored.update(zip(missing, np.asarray(vectors, np.float16), strict=True))
    with writer_lock(index.root, wait):
        _write(path, embedder.name, stored)
    return Coverage(embedder.name, len(rows), len(rows), fresh)


def coverage(index) -> Coverage | None:
    """What the stored vectors cover of the index's report passages (a passage is covered when
    all its sentences are); None without a readable file."""
    path = index.root / FILE
    found = _readable(path) if path.exists() else None
    if found is None:
        return None
    model, stored = found
    rows, groups = _report_sentences(index)
    return Coverage(model, len(rows), sum(all(k in stored for k in g) for g in groups))


def matrix(index) -> ReportMatrix | None:
    """The stored vectors laid out by index row; read once per index and file version."""
    path = index.root / FILE
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    cached = getattr(index, "_report_matrix", None)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    found = _readable(path)
    if found is None:
        # Only a ranking aid: a damaged file must not stop searches (encode-reports rewrites it).
        warnings.warn(f"report vectors skipped: {path} cannot be read; "
                      "policyrag index encode-reports writes it again", stacklevel=2)
        index._report_matrix = (stamp, None)
        return None
    model, stored = found
    rows, groups = _report_sentences(index)
    kept = [(i, list(g)) for i, g in zip(rows, groups, strict=True)
            if all(k in stored for k in g)]
    dim = len(next(iter(stored.values()))) if stored else 1
    vectors = np.array([stored[k] for _, keys in kept for k in keys], np.float16).reshape(-1, dim)
    starts = np.cumsum([0] + [len(keys) for _, keys in kept[:-1]]).astype(np.int64)
    result = ReportMatrix(model, np.array([i for i, _ in kept], np.int64),
                          starts if kept else np.zeros(0, np.int64), vectors)
    index._report_matrix = (stamp, result)
    return result


def query_encoder(model: str) -> Embedder | None:
    """The encoder the vectors were made with, loaded once per process; None when it cannot
    be loaded here (then searches go on without the report vectors)."""
    return load_once(model, "report vectors skipped: their encoder")
