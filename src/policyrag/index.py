"""The index: FAISS vectors, the chunk store and the manifest, built, changed and opened together."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from . import __version__, store
from .chunking import Chunk, chunk_text
from .config import Settings
from .documents import Document
from .embedding import Embedder, load_embedder
from .lexical import BM25, slogans, tokenize
from .script import to_simplified

FORMAT_VERSION = 1
FILES = ("manifest.json", "vectors.faiss", "chunks.jsonl", "documents.jsonl")


class IndexError_(RuntimeError):
    """An index that is missing, broken, or does not fit the request; the message says which."""


class IndexMissing(IndexError_):
    pass


class ModelMismatch(IndexError_):
    pass


@dataclass
class Manifest:
    model: str
    model_revision: str
    dim: int
    chunk_max_chars: int
    chunk_overlap_chars: int
    normalized: bool = True
    metric: str = "inner_product"
    documents: int = 0
    chunks: int = 0
    corpus_fingerprint: str = ""
    lexicon: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    checksums: dict[str, str] = field(default_factory=dict)
    policyrag_version: str = __version__
    format_version: int = FORMAT_VERSION
    created: str = ""
    generation: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Index:
    root: Path
    generation: Path
    manifest: Manifest
    documents: dict[str, Document]
    chunks: list[Chunk]
    vectors: faiss.Index
    tokens: list[list[str]]

    @property
    def lexicon(self) -> tuple[str, ...]:
        return tuple(self.manifest.lexicon)

    def bm25(self) -> BM25:
        if not hasattr(self, "_bm25"):
            self._bm25 = BM25(self.tokens)
        return self._bm25

    def is_stale(self) -> bool:
        """Whether another process has committed a newer generation since this one was opened."""
        return store.current_generation(self.root) != self.generation

    def localities(self) -> list[str]:
        return sorted({d.locality for d in self.documents.values() if d.locality})


def check_model(manifest: Manifest, embedder: Embedder, root: Path) -> None:
    if manifest.model != embedder.name or manifest.dim != embedder.dim:
        raise ModelMismatch(
            f"{root} was built with model {manifest.model!r} ({manifest.dim} dims); "
            f"it cannot be searched with {embedder.name!r} ({embedder.dim} dims). "
            f"Use --model {manifest.model!r}, or rebuild it: "
            f"policyrag index rebuild --index {root} --model {embedder.name!r}")
    if manifest.model_revision != embedder.revision:
        raise ModelMismatch(
            f"{root} was built with another revision of {manifest.model!r} "
            f"({manifest.model_revision}, now {embedder.revision}); its vectors would not match. "
            f"Rebuild it: policyrag index rebuild --index {root}")


def open_index(root: Path, embedder: Embedder | None = None) -> Index:
    gen = store.current_generation(root)
    if gen is None:
        raise IndexMissing(f"no index at {root}; build one with: policyrag index build "
                           f"[PATHS...] --index {root}")
    try:
        manifest = Manifest.from_dict(store.read_json(gen / "manifest.json"))
        docs = {d["doc_id"]: Document.from_dict(d)
                for d in store.load_jsonl(gen / "documents.jsonl")}
        rows = store.load_jsonl(gen / "chunks.jsonl")
        vectors = faiss.read_index(str(gen / "vectors.faiss"))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexError_(f"index at {root} ({gen.name}) is damaged: {exc}. "
                          f"Run: policyrag index verify --index {root}") from exc
    if embedder is not None:
        check_model(manifest, embedder, root)
    chunks = [Chunk(r["chunk_id"], r["doc_id"], r["start"], r["end"], r["text"]) for r in rows]
    if vectors.ntotal != len(chunks):
        raise IndexError_(f"index at {root} is damaged: {vectors.ntotal} vectors for "
                          f"{len(chunks)} chunks. Run: policyrag index rebuild --index {root}")
    tokens = [r.get("tokens", "").split() for r in rows]
    return Index(root, gen, manifest, docs, chunks, vectors, tokens)


def embedder_for(root: Path, model: str | None) -> Embedder:
    """The model the index was built with, unless the user names one (then it must match)."""
    gen = store.current_generation(root)
    if model is None and gen is not None:
        model = Manifest.from_dict(store.read_json(gen / "manifest.json")).model
    return load_embedder(model or Settings().model)


# ---- writing -------------------------------------------------------------------------------

Progress = Callable[[str], None]


def _chunk_all(docs: Iterable[Document], settings: Settings, embedder: Embedder) -> list[Chunk]:
    limit = min(settings.chunk_max_chars, embedder.max_chars)
    return [c for d in docs for c in chunk_text(d.doc_id, d.text, limit,
                                                 settings.chunk_overlap_chars)]


def _fingerprint(docs: Iterable[Document]) -> str:
    digest = hashlib.sha256()
    for h in sorted(d.content_hash for d in docs):
        digest.update(h.encode())
    return digest.hexdigest()[:16]


def _write(root: Path, manifest: Manifest, docs: list[Document], chunks: list[Chunk],
           vectors: np.ndarray, lexicon: list[str], keep: int) -> Path:
    tmp = store.new_generation_dir(root)
    chunk_rows = [{**asdict(c), "tokens": " ".join(tokenize(c.text, tuple(lexicon)))}
                  for c in chunks]
    flat = faiss.IndexFlatIP(manifest.dim)
    if len(vectors):
        flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(flat, str(tmp / "vectors.faiss"))
    store.write_file_durably(tmp / "chunks.jsonl", store.dump_jsonl(chunk_rows))
    store.write_file_durably(tmp / "documents.jsonl",
                             store.dump_jsonl([d.to_dict() for d in docs]))
    manifest.documents, manifest.chunks = len(docs), len(chunks)
    manifest.corpus_fingerprint = _fingerprint(docs)
    manifest.lexicon = lexicon
    manifest.created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    manifest.checksums = {name: file_checksum(tmp / name) for name in FILES[1:]}
    store.write_file_durably(tmp / "manifest.json",
                             json.dumps(asdict(manifest), ensure_ascii=False, indent=2).encode())
    return store.commit_generation(root, tmp, keep)


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _embed(chunks: list[Chunk], embedder: Embedder, settings: Settings,
           progress: bool) -> np.ndarray:
    if not chunks:
        return np.zeros((0, embedder.dim), np.float32)
    return embedder.encode([to_simplified(c.text) for c in chunks], "passage",
                           settings.batch_size, progress)


def build(root: Path, docs: list[Document], embedder: Embedder, settings: Settings,
          sources: list[str], progress: bool = False, wait: float = 0.0) -> str | None:
    """A whole new index from `docs`, replacing what was there only once it is complete."""
    if not docs:
        raise IndexError_("nothing to index: no readable reports were given")
    manifest = Manifest(embedder.name, embedder.revision, embedder.dim,
                        settings.chunk_max_chars, settings.chunk_overlap_chars, sources=sources)
    with store.writer_lock(root, wait):
        return _write_new(root, manifest, docs, embedder, settings, progress).generation


def _write_new(root: Path, manifest: Manifest, docs: list[Document], embedder: Embedder,
               settings: Settings, progress: bool) -> Change:
    if not docs:
        raise IndexError_("nothing to index: no readable reports were given")
    chunks = _chunk_all(docs, settings, embedder)
    vectors = _embed(chunks, embedder, settings, progress)
    manifest.sources = sorted(set(manifest.sources) | {d.source for d in docs})
    gen = _write(root, manifest, docs, chunks, vectors, slogans(d.text for d in docs),
                 settings.generations_kept)
    return Change(added=[d.doc_id for d in docs], generation=gen.name)


@dataclass
class Change:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    generation: str | None = None


def add(root: Path, new_docs: list[Document], embedder: Embedder, settings: Settings,
        progress: bool = False, wait: float = 0.0) -> Change:
    """Embed only new or changed reports (by source path and content hash); keep the rest."""
    with store.writer_lock(root, wait):
        if store.current_generation(root) is None:
            manifest = Manifest(embedder.name, embedder.revision, embedder.dim,
                                settings.chunk_max_chars, settings.chunk_overlap_chars)
            return _write_new(root, manifest, new_docs, embedder, settings, progress)
        old = open_index(root, embedder)
        by_source = {d.source: d for d in old.documents.values()}
        change = Change()
        fresh: list[Document] = []
        for doc in new_docs:
            prev = by_source.get(doc.source) or old.documents.get(doc.doc_id)
            if prev is not None and prev.content_hash == doc.content_hash:
                change.unchanged.append(prev.doc_id)
                continue
            if prev is not None:
                doc.doc_id = prev.doc_id
                change.replaced.append(doc.doc_id)
            elif doc.doc_id in old.documents:
                doc.doc_id = f"{doc.doc_id}-{doc.content_hash[:8]}"
                change.added.append(doc.doc_id)
            else:
                change.added.append(doc.doc_id)
            fresh.append(doc)
        if not fresh:
            return change
        gone = {d.doc_id for d in fresh}
        change.generation = _rewrite(root, old, gone, fresh, embedder, settings, progress).name
        return change


def remove(root: Path, ids_or_paths: list[str], settings: Settings, wait: float = 0.0) -> Change:
    with store.writer_lock(root, wait):
        old = open_index(root)
        targets = set()
        for key in ids_or_paths:
            hits = [d.doc_id for d in old.documents.values()
                    if key in (d.doc_id, d.source) or Path(key).resolve() == Path(d.source).resolve()]
            if not hits:
                raise IndexError_(f"no report {key!r} in {root}; see: policyrag index info")
            targets.update(hits)
        gen = _rewrite(root, old, targets, [], load_embedder(old.manifest.model), settings, False)
        return Change(removed=sorted(targets), generation=gen.name)


def _rewrite(root: Path, old: Index, drop: set[str], fresh: list[Document], embedder: Embedder,
             settings: Settings, progress: bool) -> Path:
    keep_rows = [i for i, c in enumerate(old.chunks) if c.doc_id not in drop]
    kept_vectors = (old.vectors.reconstruct_batch(np.asarray(keep_rows, dtype=np.int64))
                    if keep_rows else np.zeros((0, old.manifest.dim), np.float32))
    new_chunks = _chunk_all(fresh, settings, embedder)
    vectors = np.concatenate([kept_vectors, _embed(new_chunks, embedder, settings, progress)])
    docs = [d for d in old.documents.values() if d.doc_id not in drop] + fresh
    chunks = [old.chunks[i] for i in keep_rows] + new_chunks
    manifest = old.manifest
    manifest.sources = sorted(set(manifest.sources) | {d.source for d in fresh})
    lexicon = slogans(d.text for d in docs)
    return _write(root, manifest, docs, chunks, vectors, lexicon, settings.generations_kept)


def verify(root: Path) -> list[str]:
    """Every disagreement between manifest, vectors and chunk store; empty when all is well."""
    gen = store.current_generation(root)
    if gen is None:
        return [f"no index at {root} (no CURRENT generation)"]
    problems = []
    try:
        manifest = Manifest.from_dict(store.read_json(gen / "manifest.json"))
    except (OSError, ValueError) as exc:
        return [f"manifest.json unreadable: {exc}"]
    for name in FILES[1:]:
        path = gen / name
        if not path.exists():
            problems.append(f"{name} is missing")
        elif manifest.checksums.get(name) != file_checksum(path):
            problems.append(f"{name} does not match its checksum in manifest.json (corrupted)")
    if problems:
        return problems
    vectors = faiss.read_index(str(gen / "vectors.faiss"))
    chunks = store.load_jsonl(gen / "chunks.jsonl")
    docs = {d["doc_id"]: d for d in store.load_jsonl(gen / "documents.jsonl")}
    if vectors.d != manifest.dim:
        problems.append(f"vectors have {vectors.d} dims, manifest says {manifest.dim}")
    if vectors.ntotal != len(chunks) or len(chunks) != manifest.chunks:
        problems.append(f"{vectors.ntotal} vectors, {len(chunks)} chunks, manifest says "
                        f"{manifest.chunks}")
    if len(docs) != manifest.documents:
        problems.append(f"{len(docs)} documents, manifest says {manifest.documents}")
    orphans = {c["doc_id"] for c in chunks} - set(docs)
    if orphans:
        problems.append(f"chunks of unknown documents: {sorted(orphans)[:5]}")
    for c in chunks:
        doc = docs.get(c["doc_id"])
        if doc and doc["text"][c["start"]:c["end"]] != c["text"]:
            problems.append(f"chunk {c['chunk_id']} does not match its document offsets")
            break
    return problems
