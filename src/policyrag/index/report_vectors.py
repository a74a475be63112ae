"""A second, stronger encoder over the report-type passages only, stored beside the index.

Buried among thousands of other texts, a question that names no place leans on the encoder, and
the packaged one is weak at scale. EmbeddingGemma is far stronger but embeds ~40x slower, so
embedding a whole collection with it costs hours. Reports (communiqués, work reports, speeches)
are what such questions are about, and usually a small share of a collection (1,700 of 29,500
chunks in the shared corpus): embedding only them buys most of the gain (README, "How well it
works") at a fraction of the cost.

The vectors live in `<index>/report-vectors.npz`, keyed by a hash of each passage's text, so
they stay valid across generations: `encode_reports` embeds only passages it has no vector for
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

FILE = "report-vectors.npz"
DEFAULT_ENCODER = "packaged:embeddinggemma"


@dataclass
class Coverage:
    model: str
    report_chunks: int  # report-type passages in the index
    covered: int  # of them with a vector
    embedded: int = 0  # embedded by this call


@dataclass
class ReportMatrix:
    """The vectors of the index's report rows that have one, in row order."""
    model: str
    rows: np.ndarray  # index rows (int64)
    vectors: np.ndarray  # (len(rows), dim) float32, normalised


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def report_rows(index) -> np.ndarray:
    return np.flatnonzero(index.view().from_reports(np.arange(len(index.chunks))))


def _report_keys(index) -> tuple[np.ndarray, list[bytes]]:
    """The index's report rows and the text key of each."""
    rows = report_rows(index)
    return rows, [text_key(index.chunks[i].text) for i in rows]


def _read(path: Path) -> tuple[str, dict[bytes, np.ndarray]]:
    with np.load(path) as data:
        model = str(data["model"])
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
    vectors = np.array(list(stored.values()), np.float32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        np.savez(fh, model=np.array(model), keys=keys, vectors=vectors)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def encode_reports(index, embedder: Embedder, progress: bool = False,
                   wait: float = 0.0) -> Coverage:
    """Give every report-type passage of `index` a vector from `embedder`, reusing the stored
    ones; another encoder's file, or a damaged one, is replaced whole. Holds the index's writer
    lock while it writes."""
    path = index.root / FILE
    rows, keys = _report_keys(index)
    texts = {k: index.chunks[i].text for k, i in zip(keys, rows, strict=True)}
    stored: dict[bytes, np.ndarray] = {}
    previous = _readable(path) if path.exists() else None
    if previous is not None and previous[0] == embedder.name:
        stored = {k: v for k, v in previous[1].items() if k in texts}
    missing = [k for k in texts if k not in stored]
    if missing:
        vectors = embedder.encode([texts[k] for k in missing], "passage", progress=progress)
        stored.update(zip(missing, np.asarray(vectors, np.float32), strict=True))
    with writer_lock(index.root, wait):
        _write(path, embedder.name, stored)
    return Coverage(embedder.name, len(rows), sum(k in stored for k in keys), len(missing))


def coverage(index) -> Coverage | None:
    """What the stored vectors cover of the index's report passages; None without a readable
    file."""
    path = index.root / FILE
    found = _readable(path) if path.exists() else None
    if found is None:
        return None
    model, stored = found
    rows, keys = _report_keys(index)
    return Coverage(model, len(rows), sum(k in stored for k in keys))


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
    rows, keys = _report_keys(index)
    kept = [(i, stored[k]) for i, k in zip(rows, keys, strict=True) if k in stored]
    vectors = np.array([v for _, v in kept], np.float32) if kept else np.zeros((0, 1), np.float32)
    result = ReportMatrix(model, np.array([i for i, _ in kept], np.int64), vectors)
    index._report_matrix = (stamp, result)
    return result


def query_encoder(model: str) -> Embedder | None:
    """The encoder the vectors were made with, loaded once per process; None when it cannot
    be loaded here (then searches go on without the report vectors)."""
    return load_once(model, "report vectors skipped: their encoder")
