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
    """The sentence vectors of the index's report rows that have theirs, row by row."""
    model: str
    rows: np.ndarray  # index rows (int64)
    starts: np.ndarray  # where each row's sentences begin in `vectors`
    vectors: np.ndarray  # (sentences, dim) float32, normalised

    def best(self, queries: np.ndarray) -> np.ndarray:
        """(len(queries), len(rows)): each row's closest sentence to each query vector."""
        cos = self.vectors @ np.asarray(queries, np.float32).T
        return np.maximum.reduceat(cos, self.starts, axis=0).T


@dataclass
class Stored:
    """A vector file: the sentences' vectors, and which sentences make up each passage (so
    that opening an index needs no sentence splitting, only a hash of each report passage)."""
    model: str
    vectors: dict[bytes, np.ndarray]  # sentence key -> vector
    passages: dict[bytes, tuple[bytes, ...]]  # passage key -> its sentences' keys


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def report_rows(index) -> np.ndarray:
    return np.flatnonzero(index.view().from_reports(np.arange(len(index.chunks))))


def _passage_keys(index, rows: np.ndarray) -> list[bytes]:
    return [text_key(index.chunks[i].text) for i in rows]


def _read(path: Path) -> Stored:
    with np.load(path) as data:
        model = str(data["model"])
        if str(data["unit"]) != UNIT:
            raise ValueError(f"report vectors per {data['unit']}, not per {UNIT}")
        keys = [bytes(k) for k in data["keys"]]
        members = data["members"]
        bounds = np.cumsum([0, *data["counts"]])
        passages = {bytes(p): tuple(keys[j] for j in members[a:b])
                    for p, a, b in zip(data["passages"], bounds[:-1], bounds[1:], strict=True)}
        return Stored(model, dict(zip(keys, data["vectors"], strict=True)), passages)


# What a damaged or foreign file raises when read.
_UNREADABLE = (OSError, ValueError, KeyError, zipfile.BadZipFile)


def _readable(path: Path) -> Stored | None:
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


def _key_array(keys: list[bytes]) -> np.ndarray:
    return np.array([np.frombuffer(k, np.uint8) for k in keys], np.uint8).reshape(-1, 16)


def _write(path: Path, stored: Stored) -> None:
    keys = list(stored.vectors)
    where = {k: i for i, k in enumerate(keys)}
    groups = list(stored.passages.values())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        np.savez(fh, model=np.array(stored.model), unit=np.array(UNIT), keys=_key_array(keys),
                 vectors=np.array(list(stored.vectors.values()), np.float16),
                 passages=_key_array(list(stored.passages)),
                 members=np.array([where[k] for g in groups for k in g], np.int32),
                 counts=np.array([len(g) for g in groups], np.int32))
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
    rows = report_rows(index)
    texts = dict(zip(_passage_keys(index, rows), (index.chunks[i].text for i in rows),
                     strict=True))
    old = _readable(path) if path.exists() else None
    if old is None or old.model != embedder.name:
        old = Stored(embedder.name, {}, {})
    passages, sentence_of, fresh = {}, {}, 0
    for key, text in texts.items():
        group = old.passages.get(key)
        if group is None or not all(k in old.vectors for k in group):
            found = {text_key(t): t for t in sentences(to_simplified(text))}
            group, fresh = tuple(found), fresh + 1
            sentence_of.update(found)
        passages[key] = group
    vectors = {k: old.vectors[k] for g in passages.values() for k in g if k in old.vectors}
    missing = [k for k in sentence_of if k not in vectors]
    if missing:
        encoded = embedder.encode([sentence_of[k] for k in missing], "passage", progress=progress)
        vectors.update(zip(missing, np.asarray(encoded, np.float16), strict=True))
    with writer_lock(index.root, wait):
        _write(path, Stored(embedder.name, vectors, passages))
    return Coverage(embedder.name, len(rows), len(rows), fresh)


def coverage(index) -> Coverage | None:
    """What the stored vectors cover of the index's report passages; None without a readable
    file."""
    path = index.root / FILE
    found = _readable(path) if path.exists() else None
    if found is None:
        return None
    rows = report_rows(index)
    covered = sum(k in found.passages for k in _passage_keys(index, rows))
    return Coverage(found.model, len(rows), covered)


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
    rows = report_rows(index)
    kept = [(i, found.passages[k]) for i, k in zip(rows, _passage_keys(index, rows), strict=True)
            if k in found.passages]
    dim = len(next(iter(found.vectors.values()))) if found.vectors else 1
    # float32 in memory: a search then costs one matrix product (float16 blocks converted at
    # each search took three times as long with the 176 reports' 67,684 sentences).
    vectors = np.array([found.vectors[k] for _, keys in kept for k in keys],
                       np.float32).reshape(-1, dim)
    starts = np.cumsum([0] + [len(keys) for _, keys in kept[:-1]]).astype(np.int64)
    result = ReportMatrix(found.model, np.array([i for i, _ in kept], np.int64),
                          starts if kept else np.zeros(0, np.int64), vectors)
    index._report_matrix = (stamp, result)
    return result


def query_encoder(model: str) -> Embedder | None:
    """The encoder the vectors were made with, loaded once per process; None when it cannot
    be loaded here (then searches go on without the report vectors)."""
    return load_once(model, "report vectors skipped: their encoder")
