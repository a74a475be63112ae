"""The index: FAISS vectors, the chunk store and the manifest, built, changed and opened together.

Every change (build, add, remove, rebuild) writes a whole new generation folder under the writer
lock and makes it live with one atomic rename (see store.py), so a reader always sees one
consistent generation and a crash leaves the previous one live.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from . import __version__, store
from .checksum import file_checksum, first_mismatch, matches
from .chunking import Chunk, chunk_text
from .config import Settings
from .documents import Document, distinct_id
from .embedding import Embedder, load_embedder
from .filtering import IndexView
from .lexical import BM25, slogans, tokenize
from .script import to_simplified

FORMAT_VERSION = 1
FILES = ("manifest.json", "vectors.faiss", "chunks.jsonl", "documents.jsonl")
# A reader retries this often when writers commit (and collect the generation it was reading)
# faster than it can load one.
OPEN_ATTEMPTS = 8


class IndexError_(RuntimeError):
    """An index that is missing, broken, or does not fit the request; the message says which."""


class IndexMissing(IndexError_):
    pass


class IndexDamaged(IndexError_):
    def __init__(self, message: str, what: str | None = None) -> None:
        super().__init__(message)
        self.what = what or message  # the damage alone, without the advice around it


class ModelMismatch(IndexError_):
    pass


class DiskFull(IndexError_):
    """The disk filled up while a new generation was written; the live one is untouched."""


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
    sizes: dict[str, int] = field(default_factory=dict)
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

    def view(self) -> IndexView:
        """Arrays for filtering chunks by their documents' metadata, made on first use."""
        if not hasattr(self, "_view"):
            self._view = IndexView(self.documents, [c.doc_id for c in self.chunks])
        return self._view

    def chunk_row(self, chunk_id: str) -> int:
        if not hasattr(self, "_rows"):
            self._rows = {c.chunk_id: i for i, c in enumerate(self.chunks)}
        return self._rows[chunk_id]

    def matrix(self) -> np.ndarray:
        """The vectors as one (n, dim) array, for exact scores over a subset of rows."""
        if not hasattr(self, "_matrix"):
            v = self.vectors
            if isinstance(v, faiss.IndexFlat):  # a view of FAISS's own memory, no copy
                self._matrix = faiss.rev_swig_ptr(v.get_xb(), v.ntotal * v.d).reshape(
                    v.ntotal, v.d)
            else:
                self._matrix = v.reconstruct_n(0, v.ntotal)
        return self._matrix

    def is_stale(self) -> bool:
        """Whether another process has committed a newer generation since this one was opened."""
        return store.current_generation(self.root) != self.generation

    def localities(self) -> list[str]:
        return self.view().localities


def _same_model(a: str, b: str) -> bool:
    """Equal names, or two spellings of one local model folder."""
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.is_dir() and pb.is_dir() and pa.resolve() == pb.resolve()


def check_model(manifest: Manifest, embedder: Embedder, root: Path) -> None:
    if not _same_model(manifest.model, embedder.name) or manifest.dim != embedder.dim:
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


def _missing(root: Path) -> IndexMissing:
    return IndexMissing(f"no index at {root}; build one with: policyrag index build "
                        f"[PATHS...] --index {root}")


def _empty_current(root: Path) -> IndexDamaged:
    return IndexDamaged(f"index at {root} is damaged: {root / store.CURRENT} is empty, so no "
                        "generation is live. Repair it with: policyrag index rebuild --index "
                        f"{root} (it rebuilds from the newest generation and keeps the others)")


def open_index(root: Path, embedder: Embedder | None = None) -> Index:
    """The live generation, whole; with `embedder`, also checks it is the model of the index."""
    root = Path(root)
    for _ in range(OPEN_ATTEMPTS):
        name = store.read_current(root)
        if name is None:
            raise _empty_current(root) if store.current_is_blank(root) else _missing(root)
        try:
            return _load_generation(root, root / name, embedder)
        except IndexDamaged:
            if store.read_current(root) != name:
                continue  # a writer committed meanwhile and collected this generation
            raise
    raise IndexError_(f"{root} changed {OPEN_ATTEMPTS} times while it was being opened; "
                      "try again")


def _load_generation(root: Path, gen: Path, embedder: Embedder | None) -> Index:
    def damaged(what: str) -> IndexDamaged:
        return IndexDamaged(f"index at {root} ({gen.name}) is damaged: {what}. "
                            f"Repair it with: policyrag index rebuild --index {root}. "
                            f"Check it with: policyrag index verify --index {root}", what)

    if not gen.is_dir():
        raise damaged(f"{store.CURRENT} names {gen.name}, which does not exist")
    try:
        manifest = Manifest.from_dict(store.read_json(gen / "manifest.json"))
    except FileNotFoundError:
        raise damaged("manifest.json is missing") from None
    except (OSError, ValueError, TypeError) as exc:
        raise damaged(f"manifest.json cannot be read ({exc})") from None
    for name in FILES[1:]:
        try:
            size = (gen / name).stat().st_size
        except FileNotFoundError:
            raise damaged(f"{name} is missing") from None
        expected = manifest.sizes.get(name)
        if expected is not None and size != expected:
            raise damaged(f"{name} is {size} bytes, manifest.json says {expected} "
                          "(truncated or overwritten)")
    try:
        vectors = faiss.read_index(str(gen / "vectors.faiss"))
    except RuntimeError:
        raise damaged("vectors.faiss cannot be read by FAISS (truncated or corrupted)") from None
    # Before the model check: an edited dimension is damage, not another model.
    if vectors.d != manifest.dim:
        raise damaged(f"vectors.faiss holds {vectors.d}-dim vectors, manifest.json says "
                      f"{manifest.dim}")
    try:
        docs = {d["doc_id"]: Document.from_dict(d)
                for d in store.load_jsonl(gen / "documents.jsonl")}
        rows = store.load_jsonl(gen / "chunks.jsonl")
        chunks = [Chunk(r["chunk_id"], r["doc_id"], r["start"], r["end"], r["text"])
                  for r in rows]
    except FileNotFoundError as exc:
        raise damaged(f"{Path(exc.filename or '?').name} is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise damaged(f"the chunk or document store cannot be read ({exc})") from None
    if vectors.ntotal != len(chunks):
        raise damaged(f"vectors.faiss holds {vectors.ntotal} vectors for {len(chunks)} chunks")
    bad = first_mismatch(root, gen, FILES[1:], manifest.checksums)
    if bad is not None:
        raise damaged(f"{bad} does not match its checksum in manifest.json "
                      "(corrupted or edited in place)")
    if embedder is not None:
        check_model(manifest, embedder, root)
    tokens = [r.get("tokens", "").split() for r in rows]
    return Index(root, gen, manifest, docs, chunks, vectors, tokens)


def read_manifest(root: Path) -> Manifest | None:
    """The live manifest, or None when there is none or it cannot be read."""
    gen = store.current_generation(root)
    if gen is None:
        return None
    try:
        return Manifest.from_dict(store.read_json(gen / "manifest.json"))
    except (OSError, ValueError, TypeError):
        return None


def embedder_for(root: Path, model: str | None) -> Embedder:
    """The model the index was built with, unless the user names one (then it must match)."""
    if model is None:
        manifest = read_manifest(root)
        model = manifest.model if manifest else None
    return load_embedder(model or Settings().model)


# ---- writing -------------------------------------------------------------------------------

Progress = Callable[[str], None]


@dataclass
class Change:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # (source given, doc_id of the report with the same content): indexed once, not twice
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    # (doc_id, source, why): reports a rebuild kept from the text stored in the index
    kept: list[tuple[str, str, str]] = field(default_factory=list)
    # (source, doc_id it asked for, doc_id given, source of the report that has that id)
    renamed: list[tuple[str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    generation: str | None = None


def _chunk_all(docs: Iterable[Document], settings: Settings, embedder: Embedder) -> list[Chunk]:
    limit = min(settings.chunk_max_chars, embedder.max_chars)
    return [c for d in docs for c in chunk_text(d.doc_id, d.text, limit,
                                                 settings.chunk_overlap_chars)]


def _fingerprint(docs: Iterable[Document]) -> str:
    digest = hashlib.sha256()
    for h in sorted(d.content_hash for d in docs):
        digest.update(h.encode())
    return digest.hexdigest()[:16]


def _source_key(source: str) -> str:
    """An existing file or folder as its absolute path; anything else (a label) as it is."""
    path = Path(source).expanduser()
    return str(path.resolve()) if path.exists() else source


def _absolute(docs: list[Document]) -> list[Document]:
    """Record sources as absolute paths, so that add, remove and rebuild find them from anywhere."""
    for d in docs:
        d.source = _source_key(d.source)
    return docs


def _write(root: Path, manifest: Manifest, docs: list[Document], chunks: list[Chunk],
           vectors: np.ndarray, lexicon: list[str], keep: int,
           known_tokens: dict[str, str] | None = None, collect: bool = True) -> Path:
    """Write and commit a generation; on failure remove the half-written folder at once
    (on a full disk that frees the space) and leave the live generation as it was."""
    tmp = store.new_generation_dir(root)
    try:
        _fill(tmp, manifest, docs, chunks, vectors, lexicon, known_tokens)
        return store.commit_generation(root, tmp, keep, collect)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(root, exc) from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # renamed away when the commit succeeded


def _disk_full(root: Path, exc: OSError) -> DiskFull:
    where = exc.filename or root
    live = store.read_current(root)
    kept = (f"the previous index ({live}) is intact and still live" if live
            else "no index was there before, and none was written")
    return DiskFull(f"the disk is full: no space left on the device holding {where}; {kept}. "
                    "Free some space and run the command again")


def _fill(tmp: Path, manifest: Manifest, docs: list[Document], chunks: list[Chunk],
          vectors: np.ndarray, lexicon: list[str], known_tokens: dict[str, str] | None) -> None:
    tokens = _tokens(chunks, lexicon, known_tokens)
    chunk_rows = [{**asdict(c), "tokens": tokens[c.chunk_id]} for c in chunks]
    flat = faiss.IndexFlatIP(manifest.dim)
    if len(vectors):
        flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
    # Serialised here and written by Python, so a full disk is an OSError with its errno
    # (FAISS's own writer turns it into an opaque RuntimeError).
    store.write_file_durably(tmp / "vectors.faiss", faiss.serialize_index(flat).tobytes())
    store.test_pause("mid_write")
    store.write_file_durably(tmp / "chunks.jsonl", store.dump_jsonl(chunk_rows))
    store.write_file_durably(tmp / "documents.jsonl",
                             store.dump_jsonl([d.to_dict() for d in docs]))
    manifest.documents, manifest.chunks = len(docs), len(chunks)
    manifest.corpus_fingerprint = _fingerprint(docs)
    manifest.lexicon = lexicon
    manifest.created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    manifest.checksums = {name: file_checksum(tmp / name) for name in FILES[1:]}
    manifest.sizes = {name: (tmp / name).stat().st_size for name in FILES[1:]}
    store.write_file_durably(tmp / "manifest.json",
                             json.dumps(asdict(manifest), ensure_ascii=False, indent=2).encode())


def _embed(chunks: list[Chunk], embedder: Embedder, settings: Settings,
           progress: bool) -> np.ndarray:
    if not chunks:
        return np.zeros((0, embedder.dim), np.float32)
    return embedder.encode([to_simplified(c.text) for c in chunks], "passage",
                           settings.batch_size, progress)


def _tokens(chunks: list[Chunk], lexicon: list[str],
            known: dict[str, str] | None = None) -> dict[str, str]:
    known = known or {}
    return {c.chunk_id: known.get(c.chunk_id) or " ".join(tokenize(c.text, tuple(lexicon)))
            for c in chunks}


def _embed_and_tokenize(chunks: list[Chunk], embedder: Embedder, settings: Settings,
                        progress: bool, lexicon: list[str], known: dict[str, str] | None = None
                        ) -> tuple[np.ndarray, dict[str, str]]:
    """Vectors and BM25 tokens; jieba runs in a thread while the model embeds, since the
    model's runtime releases the GIL: the build costs little more than the embedding alone."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        tokens = pool.submit(_tokens, chunks, lexicon, known)
        vectors = _embed(chunks, embedder, settings, progress)
        return vectors, tokens.result()


def _dedupe(docs: list[Document], known: dict[str, str]) -> tuple[list[Document],
                                                                   list[tuple[str, str]]]:
    """Reports whose content is already indexed (or given twice) are indexed once.

    `known` maps content hash to doc_id and is updated.
    """
    unique, dups = [], []
    for d in docs:
        if d.content_hash and d.content_hash in known:
            dups.append((d.source, known[d.content_hash]))
            continue
        known[d.content_hash] = d.doc_id
        unique.append(d)
    return unique, dups


def _new_manifest(embedder: Embedder, settings: Settings, sources: list[str]) -> Manifest:
    return Manifest(embedder.name, embedder.revision, embedder.dim, settings.chunk_max_chars,
                    settings.chunk_overlap_chars, sources=sources)


def build(root: Path, docs: list[Document], embedder: Embedder, settings: Settings,
          sources: list[str], progress: bool = False, wait: float = 0.0) -> str | None:
    """A whole new index from `docs`, replacing what was there only once it is complete."""
    return build_index(root, docs, embedder, settings, sources, progress, wait).generation


def build_index(root: Path, docs: list[Document], embedder: Embedder, settings: Settings,
                sources: list[str], progress: bool = False, wait: float = 0.0) -> Change:
    """`build`, saying also which reports were duplicates of others (indexed once)."""
    unique, dups = _dedupe(_absolute(docs), {})
    if not unique:
        raise IndexError_("nothing to index: no readable reports were given")
    manifest = _new_manifest(embedder, settings, [_source_key(s) for s in sources])
    with store.writer_lock(root, wait):
        change = _write_new(root, manifest, unique, embedder, settings, progress)
    change.duplicates = dups
    return change


def _write_new(root: Path, manifest: Manifest, docs: list[Document], embedder: Embedder,
               settings: Settings, progress: bool, collect: bool = True) -> Change:
    if not docs:
        raise IndexError_("nothing to index: no readable reports were given")
    chunks = _chunk_all(docs, settings, embedder)
    lexicon = slogans(d.text for d in docs)
    vectors, tokens = _embed_and_tokenize(chunks, embedder, settings, progress, lexicon)
    manifest.sources = sorted(set(manifest.sources) | {d.source for d in docs})
    gen = _write(root, manifest, docs, chunks, vectors, lexicon, settings.generations_kept,
                 tokens, collect)
    return Change(added=[d.doc_id for d in docs], generation=gen.name)


def add(root: Path, new_docs: list[Document], embedder: Embedder, settings: Settings,
        progress: bool = False, wait: float = 0.0) -> Change:
    """Embed only new or changed reports (by source path and content hash); keep the rest.

    A report whose source is already indexed replaces the old one if its content changed and is
    skipped if not; a report with the same content as another indexed report is a duplicate and
    is skipped (reported in Change.duplicates). Creates the index if there is none.
    """
    new_docs = _absolute(new_docs)
    with store.writer_lock(root, wait):
        if store.read_current(root) is None:
            unique, dups = _dedupe(new_docs, {})
            manifest = _new_manifest(embedder, settings, [])
            change = _write_new(root, manifest, unique, embedder, settings, progress)
            change.duplicates = dups
            return change
        old = open_index(root, embedder)
        by_source = {_source_key(d.source): d for d in old.documents.values()}
        by_hash = {d.content_hash: d.doc_id for d in old.documents.values()}
        taken = {d.doc_id: d.source for d in old.documents.values()}
        change = Change()
        fresh: list[Document] = []
        seen_sources: set[str] = set()
        for doc in new_docs:
            if doc.source in seen_sources:
                continue  # the same file named twice (e.g. itself and its folder)
            seen_sources.add(doc.source)
            prev = by_source.get(doc.source)
            if prev is not None and prev.content_hash == doc.content_hash:
                change.unchanged.append(prev.doc_id)
                continue
            if prev is not None:
                doc.doc_id = prev.doc_id
                change.replaced.append(doc.doc_id)
                if by_hash.get(prev.content_hash) == prev.doc_id:
                    del by_hash[prev.content_hash]
            elif doc.content_hash and doc.content_hash in by_hash:
                change.duplicates.append((doc.source, by_hash[doc.content_hash]))
                continue
            else:
                if doc.doc_id in taken:
                    given = distinct_id(doc.doc_id, doc.content_hash, taken)
                    change.renamed.append((doc.source, doc.doc_id, given, taken[doc.doc_id]))
                    doc.doc_id = given
                change.added.append(doc.doc_id)
            taken[doc.doc_id] = doc.source
            by_hash[doc.content_hash] = doc.doc_id
            fresh.append(doc)
        if not fresh:
            return change
        gone = {d.doc_id for d in fresh}
        change.generation = _rewrite(root, old, gone, fresh, embedder, settings, progress).name
        return change


def _matches(key: str, doc: Document) -> bool:
    """`key` names `doc` by doc_id or by its source path (relative, absolute, or via links; the
    file need not exist any more)."""
    if key in (doc.doc_id, doc.source):
        return True
    path = Path(key).expanduser()
    return str(path.absolute()) == doc.source or _source_key(key) == _source_key(doc.source)


def remove(root: Path, ids_or_paths: list[str], settings: Settings, wait: float = 0.0) -> Change:
    """Drop reports by doc_id or source path; nothing changes if any of them is not indexed."""
    if store.read_current(root) is None:
        raise _missing(root)
    with store.writer_lock(root, wait):
        old = open_index(root)
        targets: set[str] = set()
        for key in ids_or_paths:
            hits = [d.doc_id for d in old.documents.values() if _matches(key, d)]
            if not hits:
                raise IndexError_(f"no report {key!r} in {root} (nothing was removed); "
                                  f"see: policyrag index info --index {root}")
            targets.update(hits)
        gen = _rewrite(root, old, targets, [], None, settings, False)
        return Change(removed=sorted(targets), generation=gen.name)


def _rewrite(root: Path, old: Index, drop: set[str], fresh: list[Document],
             embedder: Embedder | None, settings: Settings, progress: bool) -> Path:
    keep_rows = [i for i, c in enumerate(old.chunks) if c.doc_id not in drop]
    kept_vectors = (old.vectors.reconstruct_batch(np.asarray(keep_rows, dtype=np.int64))
                    if keep_rows else np.zeros((0, old.manifest.dim), np.float32))
    docs = [d for d in old.documents.values() if d.doc_id not in drop] + fresh
    lexicon = slogans(d.text for d in docs)
    # Kept chunks keep their tokens unless the corpus's own terms changed.
    known = ({c.chunk_id: " ".join(t) for c, t in zip(old.chunks, old.tokens, strict=True)
              if c.doc_id not in drop}
             if lexicon == list(old.manifest.lexicon) else {})
    new_chunks: list[Chunk] = []
    new_vectors = np.zeros((0, old.manifest.dim), np.float32)
    if fresh:
        assert embedder is not None
        new_chunks = _chunk_all(fresh, settings, embedder)
        new_vectors, new_tokens = _embed_and_tokenize(new_chunks, embedder, settings, progress,
                                                      lexicon)
        known.update(new_tokens)
    vectors = np.concatenate([kept_vectors, new_vectors])
    chunks = [old.chunks[i] for i in keep_rows] + new_chunks
    manifest = old.manifest
    manifest.sources = sorted(set(manifest.sources) | {d.source for d in fresh})
    return _write(root, manifest, docs, chunks, vectors, lexicon, settings.generations_kept,
                  known)


@dataclass
class Stored:
    """The reports a rebuild starts from, and whether old generations may then be collected."""
    docs: list[Document]
    manifest: Manifest | None
    used: str
    notes: list[str] = field(default_factory=list)
    # False after damage or a fallback: every generation stays on disk, for a person to judge.
    collect: bool = True


def _try_manifest(gen: Path) -> Manifest | None:
    try:
        return Manifest.from_dict(store.read_json(gen / "manifest.json"))
    except (OSError, ValueError, TypeError):
        return None


def _read_whole(gen: Path) -> Stored:
    """A generation's reports, all of them or an IndexDamaged naming what does not read."""
    try:
        docs = [Document.from_dict(d) for d in store.load_jsonl(gen / "documents.jsonl")]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexDamaged(f"{gen / 'documents.jsonl'} cannot be read ({exc})") from None
    return Stored(docs, _try_manifest(gen), gen.name)


def _older(root: Path, live: str | None) -> str:
    """Where a person can go from a damaged live generation: older ones, or the files."""
    parts = []
    for gen in reversed(store.generations(root)):
        if gen.name != live:
            m = _try_manifest(gen)
            parts.append(f"{gen.name} ({m.documents if m else '?'} reports)")
    hint = (f"Older generations are still on disk: {', '.join(parts)}; to rebuild from one, "
            "losing what was added after it: policyrag index rebuild --from GENERATION "
            f"--index {root}. Or " if parts else "")
    return hint + f"build anew from the report files: policyrag index build PATHS... --index {root}"


def stored_documents(root: Path, from_generation: str | None = None) -> Stored:
    """The reports a rebuild re-reads: the live generation's, never an older one's unasked.

    A live document store with broken lines is repaired from the source files its manifest
    records; if some report cannot be found there, this refuses (IndexDamaged) rather than
    rebuild with fewer reports. An empty CURRENT falls back to the newest generation, and says so.
    """
    live = store.read_current(root)
    if from_generation is not None:
        gen = root / from_generation
        if gen not in store.generations(root):
            raise IndexError_(f"no generation {from_generation!r} in {root}; there are: "
                              f"{', '.join(g.name for g in store.generations(root)) or 'none'}")
        stored = _read_whole(gen)
        stored.notes.append(f"rebuilt from {gen.name} as asked (the live one was {live}); "
                            "no generation was removed")
        stored.collect = False
        return stored
    if live is None:
        gens = store.generations(root)
        if not gens:
            raise _missing(root)
        stored = _read_whole(gens[-1])
        stored.notes.append(f"{root / store.CURRENT} was empty; rebuilt from {gens[-1].name}, "
                            "the newest generation; no generation was removed")
        stored.collect = False
        return stored
    gen = root / live
    if not gen.is_dir():
        raise IndexDamaged(f"index at {root} is damaged: {store.CURRENT} names {live}, which "
                           f"does not exist. {_older(root, live)}")
    manifest = _try_manifest(gen)
    try:
        rows, bad = store.load_jsonl_lenient(gen / "documents.jsonl")
    except OSError as exc:
        rows, bad = [], [f"documents.jsonl cannot be read ({exc.strerror or exc})"]
    docs = []
    for row in rows:
        try:
            docs.append(Document.from_dict(row))
        except TypeError:
            bad.append(f"documents.jsonl has a row without the fields of a report ({row!r:.60})")
    if not bad:
        damage = _damage(root, gen)
        notes = [f"the live generation {live} is damaged ({damage}); rebuilt from its reports; "
                 "no generation was removed"] if damage else []
        return Stored(docs, manifest, live, notes, collect=damage is None)
    what = "; ".join(bad)
    recovered, lost = _recover(gen, docs, manifest)
    if lost == []:
        names = ", ".join(d.doc_id for d in recovered)
        return Stored(docs + recovered, manifest, live,
                      [f"the live generation {live} is damaged ({what}); the report(s) it lost "
                       f"were re-read from their recorded sources ({names}); no generation "
                       "was removed"], collect=False)
    which = (f"{len(lost)} report(s) ({', '.join(lost[:5])}{', ...' if len(lost) > 5 else ''})"
             if lost else "some reports (which ones cannot be told)")
    raise IndexDamaged(f"index at {root} ({live}) is damaged: {what}. {which} cannot be "
                       "re-read from the sources its manifest records, and rebuilding would "
                       f"lose them, so nothing was changed. {_older(root, live)}", what)


def _damage(root: Path, gen: Path) -> str | None:
    try:
        _load_generation(root, gen, None)
    except IndexDamaged as exc:
        return exc.what
    return None


def _recover(gen: Path, good: list[Document], manifest: Manifest | None
             ) -> tuple[list[Document], list[str] | None]:
    """Reports lost from a broken document store, found again among the manifest's recorded
    sources; and the doc_ids still lost (None when even that cannot be told)."""
    from .documents import load_documents

    try:
        chunk_rows, _ = store.load_jsonl_lenient(gen / "chunks.jsonl")
    except OSError:
        chunk_rows = []
    have = {d.doc_id for d in good}
    missing: dict[str, str] = {}  # doc_id -> the text of its first chunk
    for row in chunk_rows:
        doc_id = row.get("doc_id")
        if isinstance(doc_id, str) and doc_id not in have:
            missing.setdefault(doc_id, str(row.get("text") or ""))
    if manifest is None or (not missing and manifest.documents > len(good)):
        return [], None
    known = {d.source for d in good}
    recovered = []
    for source in manifest.sources:
        path = Path(source)
        if source in known or not path.is_file() or not missing:
            continue
        docs, _ = load_documents([path])
        for doc in docs:
            doc_id = _claim(doc, path, missing)
            if doc_id is not None:
                doc.doc_id, doc.source = doc_id, source
                del missing[doc_id]
                recovered.append(doc)
    return recovered, sorted(missing)


def _claim(doc: Document, path: Path, missing: dict[str, str]) -> str | None:
    """Which lost doc_id a re-read file was: by the ways ids are given, else by its text."""
    path_hash = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    for doc_id in (doc.doc_id, f"{path.stem}-{path_hash}", f"{doc.doc_id}-{doc.content_hash[:8]}"):
        if doc_id in missing:
            return doc_id
    return next((i for i, text in missing.items() if text and text in doc.text), None)


def rebuild(root: Path, embedder: Embedder, settings: Settings, progress: bool = False,
            wait: float = 0.0, from_generation: str | None = None) -> Change:
    """Re-read every indexed report from its recorded source file and re-embed it all.

    Keeps each report's doc_id. A report whose source file has vanished or no longer reads is
    kept from the text stored in the index (listed in Change.kept), never dropped. A damaged
    index is repaired from its own reports (and, for a broken document store, from the
    recorded source files), or refused when that would lose reports; after damage no
    generation is removed. With `from_generation`, starts from that older generation.
    """
    from .documents import read_document
    from .metadata import read_sidecar
    from .readers import ReadError

    if store.read_current(root) is None and not store.generations(root):
        raise _missing(root)
    with store.writer_lock(root, wait):
        stored = stored_documents(root, from_generation)
        if not stored.docs:
            raise IndexError_(f"{root} holds no reports; nothing to rebuild")
        docs: list[Document] = []
        change = Change(notes=list(stored.notes))
        for old in sorted(stored.docs, key=lambda d: d.doc_id):
            path = Path(old.source)
            try:
                if not path.is_file():
                    raise ReadError(path, "no such file")
                overrides = read_sidecar(path.parent).get(path.name, {})
                doc = read_document(path, old.doc_id, overrides)
            except (ReadError, ValueError, OSError) as exc:
                reason = exc.reason if isinstance(exc, ReadError) else str(exc)
                change.kept.append((old.doc_id, old.source, reason))
                docs.append(old)
                continue
            doc.doc_id, doc.source = old.doc_id, old.source
            docs.append(doc)
        sources = stored.manifest.sources if stored.manifest else []
        manifest = _new_manifest(embedder, settings, sources)
        written = _write_new(root, manifest, docs, embedder, settings, progress, stored.collect)
        change.added, change.generation = written.added, written.generation
        return change


# ---- checking ------------------------------------------------------------------------------

def verify(root: Path, embedder: Embedder | None = None) -> list[str]:
    """Every disagreement between manifest, vectors and chunk store; empty when all is well.

    With `embedder`, also checks that the index was built with that model.
    """
    root = Path(root)
    name = store.read_current(root)
    if name is None:
        if store.current_is_blank(root):
            return [f"{root / store.CURRENT} is empty, so no generation is live"]
        raise _missing(root)
    gen = root / name
    if not gen.is_dir():
        return [f"{store.CURRENT} names {name}, which does not exist"]
    try:
        manifest = Manifest.from_dict(store.read_json(gen / "manifest.json"))
    except FileNotFoundError:
        return ["manifest.json is missing"]
    except (OSError, ValueError, TypeError) as exc:
        return [f"manifest.json cannot be read: {exc}"]
    problems: list[str] = []
    intact = set()
    for fname in FILES[1:]:
        path = gen / fname
        if not path.exists():
            problems.append(f"{fname} is missing")
            continue
        size, want = path.stat().st_size, manifest.sizes.get(fname)
        if want is not None and size != want:
            problems.append(f"{fname} is {size} bytes, manifest.json says {want} "
                            "(truncated or overwritten)")
        elif not matches(path, manifest.checksums.get(fname)):
            problems.append(f"{fname} does not match its checksum in manifest.json "
                            "(corrupted or edited)")
        else:
            intact.add(fname)
    if embedder is not None:
        try:
            check_model(manifest, embedder, root)
        except ModelMismatch as exc:
            problems.append(str(exc))
    vectors = chunks = docs = None
    if (gen / "vectors.faiss").exists():
        try:
            vectors = faiss.read_index(str(gen / "vectors.faiss"))
        except RuntimeError:
            problems.append("vectors.faiss cannot be read by FAISS (truncated or corrupted)")
    for fname in ("chunks.jsonl", "documents.jsonl"):
        if (gen / fname).exists():
            try:
                rows = store.load_jsonl(gen / fname)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if fname == "chunks.jsonl":
                chunks = rows
            else:
                docs = rows
    if vectors is not None:
        if vectors.d != manifest.dim:
            problems.append(f"vectors.faiss holds {vectors.d}-dim vectors, manifest.json says "
                            f"{manifest.dim}")
        if vectors.ntotal != manifest.chunks:
            problems.append(f"vectors.faiss holds {vectors.ntotal} vectors, manifest.json says "
                            f"{manifest.chunks} chunks")
        if chunks is not None and vectors.ntotal != len(chunks):
            problems.append(f"vectors.faiss holds {vectors.ntotal} vectors but chunks.jsonl has "
                            f"{len(chunks)} chunks")
    if chunks is not None and len(chunks) != manifest.chunks:
        problems.append(f"chunks.jsonl has {len(chunks)} chunks, manifest.json says "
                        f"{manifest.chunks}")
    if docs is not None and len(docs) != manifest.documents:
        problems.append(f"documents.jsonl has {len(docs)} documents, manifest.json says "
                        f"{manifest.documents}")
    if chunks is not None and docs is not None:
        problems += _check_ids(chunks, docs)
    return problems


def _check_ids(chunks: list[dict], docs: list[dict]) -> list[str]:
    problems = []
    try:
        doc_ids = [d["doc_id"] for d in docs]
        by_id = {d["doc_id"]: d for d in docs}
        chunk_ids = [c["chunk_id"] for c in chunks]
        chunk_docs = {c["doc_id"] for c in chunks}
    except (KeyError, TypeError) as exc:
        return [f"a chunk or document row lacks its id ({exc})"]
    for what, ids in (("doc_id", doc_ids), ("chunk_id", chunk_ids)):
        repeated = sorted(str(i) for i, n in Counter(ids).items() if n > 1)
        if repeated:
            problems.append(f"repeated {what}s: {', '.join(map(str, repeated[:5]))}")
    orphans = sorted(chunk_docs - set(by_id))
    if orphans:
        problems.append(f"chunks of unknown documents: {', '.join(map(str, orphans[:5]))}")
    empty = sorted(set(by_id) - chunk_docs)
    if empty:
        problems.append(f"documents without chunks: {', '.join(map(str, empty[:5]))}")
    for c in chunks:
        doc = by_id.get(c.get("doc_id"))
        try:
            ok = doc is None or doc["text"][c["start"]:c["end"]] == c["text"]
        except (KeyError, TypeError):
            ok = False
        if not ok:
            problems.append(f"chunk {c.get('chunk_id')} does not match its document's text at "
                            f"its offsets (chunk store edited?)")
            break
    return problems
