"""The index: FAISS vectors, the chunk store and the manifest, built, changed and opened together.

An index is a list of immutable segments (segments.py) named by a small manifest, with the
doc_ids removed from each. Every change writes a new generation folder under the writer lock:
its manifest, plus a segment only when reports were embedded (build, add, rebuild, compaction);
one atomic rename of CURRENT makes it live (store.py), so a reader always sees one consistent
generation and a crash leaves the previous one live. Opening concatenates the live rows of the
segments. A change costs what it changes: adding one report writes its own rows, removing one
writes only a manifest; compaction merges segments (automatically when there are too many or
too much of one is removed, or asked for with `policyrag index compact`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from policyrag import __version__
from policyrag.config import Settings
from policyrag.index import ann, store, streaming
from policyrag.index.checksum import first_mismatch
from policyrag.index.dense import DenseIndex, Part
from policyrag.index.embedding import Embedder, load_embedder
from policyrag.index.lexical import BM25, slogans, tokenize
from policyrag.index.progress import Bar, Bars, Quiet, bar, bars_for
from policyrag.index.segments import FILES as SEGMENT_FILES
from policyrag.index.segments import (
    Segment,
    lexicon_digest,
    matrix,
    merged_digest,
    merged_flat,
    to_merge,
)
from policyrag.index.segments import write as write_segment
from policyrag.ingest.chunking import Chunk, chunk_text
from policyrag.ingest.documents import Document, distinct_id
from policyrag.script import to_simplified
from policyrag.search.filtering import IndexView

# 1: one generation folder held the whole index; 2: a manifest names segments (still read: a
# version-1 generation is one segment with no tombstones).
FORMAT_VERSION = 2
FILES = ("manifest.json", *SEGMENT_FILES)
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
    segments: list[dict] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        known = cls.__dataclass_fields__
        manifest = cls(**{k: v for k, v in data.items() if k in known})
        if "segments" not in data:
            manifest.format_version = min(manifest.format_version, 1)
        return manifest

    def segment_list(self, gen: str) -> list[Segment]:
        """The segments of the index whose manifest lies in generation `gen`."""
        if self.format_version < 2:
            # Indexes of this format were all tokenised by version 1 of `tokenize`.
            return [Segment(gen, self.documents, self.chunks,
                            lexicon=lexicon_digest(self.lexicon, version=1),
                            checksums=dict(self.checksums), sizes=dict(self.sizes))]
        return [Segment.from_dict(s) for s in self.segments]


@dataclass
class Index:
    root: Path
    generation: Path
    manifest: Manifest
    documents: dict[str, Document]
    chunks: list[Chunk]
    vectors: DenseIndex
    tokens: list[str]  # each chunk's BM25 tokens, space-separated as the chunk store has them

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
            self._matrix = self.vectors.matrix()  # a view of FAISS's memory when it can be
        return self._matrix

    def is_stale(self) -> bool:
        """Whether another process has committed a newer generation since this one was opened."""
        return store.current_generation(self.root) != self.generation

    def localities(self) -> list[str]:
        return self.view().localities

    # Where each segment's live rows lie in chunks/tokens/vectors, so that reopening after a
    # change reuses them instead of reading the segment again (see _pieces).
    spans: dict[str, Span] = field(default_factory=dict, repr=False)


@dataclass
class Span:
    segment: Segment
    start: int
    end: int
    doc_ids: list[str]
    ann: AnnRows | None = None  # a segment with an approximate index: that index, as opened


@dataclass
class AnnRows:
    """A segment searched through its own approximate index."""
    index: faiss.Index
    vectors: np.ndarray  # every row of the segment, tombstoned ones included (memory-mapped)
    keep: np.ndarray  # the segment's live rows
    flat: faiss.Index  # the flat index whose memory `vectors` views: kept alive with it


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


def open_index(root: Path, embedder: Embedder | None = None,
               previous: Index | None = None) -> Index:
    """The live generation, whole; with `embedder`, also checks it is the model of the index.

    With `previous` (an older opening of the same index), the segments it already holds are
    taken from it rather than read again: after an add, only the new segment is read.
    """
    root = Path(root)
    for _ in range(OPEN_ATTEMPTS):
        name = store.read_current(root)
        if name is None:
            raise _empty_current(root) if store.current_is_blank(root) else _missing(root)
        try:
            return _load_generation(root, root / name, embedder, previous)
        except IndexDamaged:
            if store.read_current(root) != name:
                continue  # a writer committed meanwhile and collected this generation
            raise
    raise IndexError_(f"{root} changed {OPEN_ATTEMPTS} times while it was being opened; "
                      "try again")


Damage = Callable[[str], IndexDamaged]


def _damage_at(root: Path, gen: Path) -> Damage:
    def damaged(what: str) -> IndexDamaged:
        return IndexDamaged(f"index at {root} ({gen.name}) is damaged: {what}. "
                            f"Repair it with: policyrag index rebuild --index {root}. "
                            f"Check it with: policyrag index verify --index {root}", what)
    return damaged


def _read_manifest_at(gen: Path, damaged: Damage) -> Manifest:
    if not gen.is_dir():
        raise damaged(f"{store.CURRENT} names {gen.name}, which does not exist")
    try:
        return Manifest.from_dict(store.read_json(gen / "manifest.json"))
    except FileNotFoundError:
        raise damaged("manifest.json is missing") from None
    except (OSError, ValueError, TypeError) as exc:
        raise damaged(f"manifest.json cannot be read ({exc})") from None


def _check_sizes(root: Path, gen: Path, seg: Segment, damaged: Damage) -> None:
    folder = root / seg.name
    if not folder.is_dir():
        raise damaged(f"segment {seg.name} is missing (its folder does not exist)")
    for name in seg.files():
        label = seg.label(name, gen.name)
        try:
            size = (folder / name).stat().st_size
        except FileNotFoundError:
            raise damaged(f"{label} is missing") from None
        expected = seg.sizes.get(name)
        if expected is not None and size != expected:
            raise damaged(f"{label} is {size} bytes, manifest.json says {expected} "
                          "(truncated or overwritten)")


def _check_checksums(root: Path, gen: Path, segs: list[Segment], damaged: Damage) -> None:
    files = [(seg.label(name, gen.name), root / seg.name / name, seg.checksums.get(name))
             for seg in segs for name in seg.files()]
    bad = first_mismatch(root, files)
    if bad is not None:
        raise damaged(f"{bad} does not match its checksum in manifest.json "
                      "(corrupted or edited in place)")


@dataclass
class SegmentRows:
    """One segment as read from disk, tombstoned rows included."""
    segment: Segment
    vectors: faiss.Index
    chunks: list[dict]
    documents: list[dict]
    ann: faiss.Index | None = None

    def live_rows(self) -> list[int]:
        removed = set(self.segment.removed)
        return [i for i, r in enumerate(self.chunks) if r["doc_id"] not in removed]


def _read_segment(root: Path, gen: Path, seg: Segment, dim: int, damaged: Damage) -> SegmentRows:
    folder = root / seg.name
    _check_sizes(root, gen, seg, damaged)
    vlabel = seg.label("vectors.faiss", gen.name)
    try:
        # A big segment's vectors are memory-mapped: opening it does not read them.
        vectors = (ann.read_mapped(folder / "vectors.faiss", False) if seg.ann
                   else faiss.read_index(str(folder / "vectors.faiss")))
    except RuntimeError:
        raise damaged(f"{vlabel} cannot be read by FAISS (truncated or corrupted)") from None
    approx = _read_ann(folder, seg, gen, dim, damaged) if seg.ann else None
    # Before the model check: an edited dimension is damage, not another model.
    if vectors.d != dim:
        raise damaged(f"{vlabel} holds {vectors.d}-dim vectors, manifest.json says {dim}")
    try:
        docs = store.load_jsonl(folder / "documents.jsonl")
        rows = store.load_jsonl(folder / "chunks.jsonl")
    except FileNotFoundError as exc:
        raise damaged(f"{Path(exc.filename or '?').name} is missing") from None
    except (OSError, ValueError) as exc:
        raise damaged(f"the chunk or document store cannot be read ({exc})") from None
    if vectors.ntotal != len(rows):
        raise damaged(f"{vlabel} holds {vectors.ntotal} vectors for {len(rows)} chunks")
    if approx is not None and approx.ntotal != len(rows):
        raise damaged(f"{seg.label(ann.ANN_FILE, gen.name)} holds {approx.ntotal} vectors for "
                      f"{len(rows)} chunks")
    return SegmentRows(seg, vectors, rows, docs, approx)


def _read_ann(folder: Path, seg: Segment, gen: Path, dim: int, damaged: Damage) -> faiss.Index:
    label = seg.label(ann.ANN_FILE, gen.name)
    try:
        index = ann.read_mapped(folder / ann.ANN_FILE, True)
    except RuntimeError:
        raise damaged(f"{label} cannot be read by FAISS (truncated or corrupted)") from None
    if index.d != dim:
        raise damaged(f"{label} holds {index.d}-dim vectors, manifest.json says {dim}")
    return index


def _load_generation(root: Path, gen: Path, embedder: Embedder | None,
                     previous: Index | None = None) -> Index:
    damaged = _damage_at(root, gen)
    manifest = _read_manifest_at(gen, damaged)
    segs = manifest.segment_list(gen.name)
    known = previous.spans if previous is not None and previous.root == root else {}
    loaded: list[SegmentRows | Span] = []
    for seg in segs:
        span = known.get(seg.name)
        if span is not None and _reusable(span.segment, seg, manifest.dim, previous):
            _check_sizes(root, gen, seg, damaged)
            loaded.append(span)
        else:
            loaded.append(_read_segment(root, gen, seg, manifest.dim, damaged))
    _check_checksums(root, gen, segs, damaged)  # (files on record cost a stat each)
    if embedder is not None:
        check_model(manifest, embedder, root)
    try:
        pieces = [_piece(seg, part, previous) for seg, part in zip(segs, loaded, strict=True)]
    except (KeyError, TypeError) as exc:
        raise damaged(f"the chunk or document store cannot be read ({exc!r})") from None
    return _assemble(root, gen, manifest, pieces)


def _reusable(had: Segment, now: Segment, dim: int, previous: Index | None) -> bool:
    """The same files, with at most more reports removed since."""
    return (previous is not None and previous.manifest.dim == dim
            and had.checksums == now.checksums and had.sizes == now.sizes
            and set(had.removed) <= set(now.removed))


@dataclass
class Piece:
    """A segment's live rows, ready to be concatenated with the others'."""
    segment: Segment
    docs: list[Document]
    chunks: list[Chunk]
    tokens: list[str]  # each chunk's BM25 tokens, space-separated as the chunk store has them
    vectors: np.ndarray
    flat: faiss.Index | None = None  # the segment's own FAISS index, when all its rows live
    ann: AnnRows | None = None  # set for a segment searched through its approximate index


def _piece(seg: Segment, part: SegmentRows | Span, previous: Index | None) -> Piece:
    removed = set(seg.removed)
    if isinstance(part, Span):
        assert previous is not None
        still = np.asarray([previous.chunks[i].doc_id not in removed
                            for i in range(part.start, part.end)], dtype=bool)
        rows = np.flatnonzero(still) + part.start
        approx = None if part.ann is None else AnnRows(part.ann.index, part.ann.vectors,
                                                       part.ann.keep[still], part.ann.flat)
        return Piece(seg, [previous.documents[i] for i in part.doc_ids if i not in removed],
                     [previous.chunks[i] for i in rows], [previous.tokens[i] for i in rows],
                     _no_rows(previous.vectors.d) if approx is not None
                     else previous.vectors.take(rows),
                     ann=approx)
    keep = part.live_rows()
    rows = [part.chunks[i] for i in keep]
    whole = matrix(part.vectors)
    everything = len(keep) == len(part.chunks)
    if part.ann is not None:
        approx = AnnRows(part.ann, whole, np.asarray(keep, dtype=np.int64), part.vectors)
    return Piece(seg, [Document.from_dict(d) for d in part.documents
                       if d["doc_id"] not in removed],
                 [Chunk(r["chunk_id"], r["doc_id"], r["start"], r["end"], r["text"])
                  for r in rows],
                 [r.get("tokens", "") for r in rows],
                 _no_rows(whole.shape[1]) if part.ann is not None
                 else whole if everything else whole[keep],
                 part.vectors if everything else None,
                 approx if part.ann is not None else None)


def _no_rows(dim: int) -> np.ndarray:
    return np.zeros((0, dim), np.float32)


def _assemble(root: Path, gen: Path, manifest: Manifest, pieces: list[Piece]) -> Index:
    """The live rows of every segment, in segment order: tombstoned ones are never loaded."""
    docs: dict[str, Document] = {}
    chunks: list[Chunk] = []
    tokens: list[str] = []
    spans: dict[str, Span] = {}
    parts: list[Part] = []
    flat: list[tuple[Piece, int]] = []  # the pieces searched exactly, and their first row
    for piece in pieces:
        docs.update((d.doc_id, d) for d in piece.docs)
        start = len(chunks)
        spans[piece.segment.name] = Span(piece.segment, start, start + len(piece.chunks),
                                         [d.doc_id for d in piece.docs], piece.ann)
        chunks += piece.chunks
        tokens += piece.tokens
        if piece.ann is None:
            flat.append((piece, start))
            continue
        rows = np.full(len(piece.ann.vectors), -1, dtype=np.int64)
        rows[piece.ann.keep] = np.arange(start, start + len(piece.ann.keep))
        parts.append(Part(piece.ann.index, rows, piece.ann.vectors,
                          approximate=True, owner=piece.ann.flat))
    if flat or not parts:
        if len(flat) == 1 and flat[0][0].flat is not None:
            index = flat[0][0].flat  # no copy
        else:
            index = merged_flat([p.vectors for p, _ in flat], manifest.dim)
        rows = np.concatenate([np.arange(s, s + len(p.chunks)) for p, s in flat]
                              or [np.zeros(0, np.int64)]).astype(np.int64)
        parts.insert(0, Part(index, rows, matrix(index)))
    vectors = DenseIndex(parts, manifest.dim)
    return Index(root, gen, manifest, docs, chunks, vectors, tokens, spans)


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
    # the automatic compaction that followed the change (its generation is `generation`)
    compacted: Compaction | None = None


def _chunk_all(docs: Iterable[Document], settings: Settings, embedder: Embedder) -> list[Chunk]:
    limit = min(settings.chunk_max_chars, embedder.max_chars)
    return [c for d in docs for c in chunk_text(d.doc_id, d.text, limit,
                                                 settings.chunk_overlap_chars)]


def _fingerprint(docs: Iterable[Document]) -> str:
    return _fingerprint_of(d.content_hash for d in docs)


def _fingerprint_of(hashes: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for h in sorted(hashes):
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


def _absolute_each(docs: Iterable[Document]) -> Iterator[Document]:
    """`_absolute`, one report at a time."""
    for d in docs:
        d.source = _source_key(d.source)
        yield d


@dataclass
class Batch:
    """What a new segment will hold."""
    docs: list[Document]
    chunks: list[Chunk]
    vectors: np.ndarray
    tokens: list[str]
    lexicon: str


class NewGeneration:
    """A commit under way: segments written one by one into its temporary folder (or written
    elsewhere and adopted), then made live together by `commit`, with one manifest swap.

    The first segment's files lie in the generation folder itself, the next ones in its
    subfolders seg-0001, seg-0002…; a segment's name is its folder under the index. Until the
    commit nothing live changes, and a crash leaves only the temporary folder, which the next
    writer removes. Use it through `new_generation`.
    """

    def __init__(self, root: Path, dim: int, settings: Settings | None = None) -> None:
        self.root, self.dim, self.settings = root, dim, settings
        self.name = store.next_generation(root)
        self.tmp = store.new_generation_dir(root)
        self.segments: list[Segment] = []

    def _place(self) -> tuple[Path, str]:
        """Where the next segment goes: (folder, segment name)."""
        k = len(self.segments)
        if k == 0:
            return self.tmp, self.name
        store.test_pause(store.BETWEEN_SEGMENTS)
        sub = f"seg-{k:04d}"
        (self.tmp / sub).mkdir()
        return self.tmp / sub, f"{self.name}/{sub}"

    def write(self, batch: Batch) -> Segment:
        folder, name = self._place()
        seg = write_segment(folder, name, self.dim, batch.docs, batch.chunks, batch.vectors,
                            batch.tokens, batch.lexicon, self.settings)
        self.segments.append(seg)
        return seg

    def adopt(self, folder: Path, seg: Segment) -> Segment:
        """A segment that segments.write put in `folder` (on the index's file system), moved
        into this generation; its files are unchanged, so their checksums still hold."""
        place, name = self._place()
        for fname in seg.files():  # with its ann.faiss, when it has one
            (folder / fname).rename(place / fname)
        with contextlib.suppress(OSError):
            folder.rmdir()  # emptied (anything else the worker left there stays)
        adopted = Segment.from_dict({**asdict(seg), "name": name})
        self.segments.append(adopted)
        return adopted

    def commit(self, manifest: Manifest, segs: list[Segment | None], fingerprint: str,
               keep: int, collect: bool = True) -> Path:
        """Make live a manifest naming `segs`, with this commit's segments where it holds None."""
        final = [n for s in segs for n in (self.segments if s is None else [s])]
        manifest.segments = [asdict(s) for s in final]
        manifest.documents = sum(s.live_documents for s in final)
        manifest.chunks = sum(s.live_chunks for s in final)
        manifest.corpus_fingerprint = fingerprint
        manifest.created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        manifest.format_version = FORMAT_VERSION
        manifest.checksums, manifest.sizes = {}, {}  # each segment carries its own
        store.write_file_durably(self.tmp / "manifest.json", json.dumps(
            asdict(manifest), ensure_ascii=False, indent=2).encode())
        return store.commit_generation(self.root, self.tmp, keep, collect, _needs, self.name)


@contextlib.contextmanager
def new_generation(root: Path, dim: int, settings: Settings | None = None
                   ) -> Iterator[NewGeneration]:
    """A NewGeneration; whatever was not committed is removed on the way out (on a full disk,
    at once, which frees the space), and the live generation stays as it was."""
    gen = NewGeneration(root, dim, settings)
    try:
        yield gen
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(root, exc) from None
        raise
    finally:
        shutil.rmtree(gen.tmp, ignore_errors=True)  # renamed away when the commit succeeded


def _commit(root: Path, manifest: Manifest, segs: list[Segment | None], batch: Batch | None,
            fingerprint: str, keep: int, collect: bool = True,
            settings: Settings | None = None) -> Path:
    """Write and commit a generation: `batch` as a new segment where `segs` holds None, and a
    manifest naming them; `settings` say whether a big segment gets an ANN index."""
    with new_generation(root, manifest.dim, settings) as gen:
        if batch is not None and batch.chunks:
            gen.write(batch)
        return gen.commit(manifest, segs, fingerprint, keep, collect)


def _needs(gen: Path) -> set[str] | None:
    """The generation folders whose segments the manifest in `gen` names (for collection)."""
    manifest = _try_manifest(gen)
    return None if manifest is None else {s.name.split("/")[0]
                                          for s in manifest.segment_list(gen.name)}


def _disk_full(root: Path, exc: OSError) -> DiskFull:
    where = exc.filename or root
    live = store.read_current(root)
    kept = (f"the previous index ({live}) is intact and still live" if live
            else "no index was there before, and none was written")
    return DiskFull(f"the disk is full: no space left on the device holding {where}; {kept}. "
                    "Free some space and run the command again")


def _embed(chunks: list[Chunk], embedder: Embedder, settings: Settings,
           progress: bool | Bar = False) -> np.ndarray:
    """Unit vectors of the chunks' simplified texts, `settings.batch_size` at a time, in
    batches of similar length (settings.bucket_by_length), in the chunks' order."""
    if not chunks:
        return np.zeros((0, embedder.dim), np.float32)
    texts = [to_simplified(c.text) for c in chunks]
    order = (sorted(range(len(texts)), key=lambda i: len(texts[i]))
             if settings.bucket_by_length else list(range(len(texts))))
    shown = (progress if not isinstance(progress, bool)
             else bar(len(texts), "embedding") if progress else Quiet())
    out = None
    size = settings.batch_size
    for i in range(0, len(order), size):
        rows = order[i:i + size]
        vectors = embedder.encode([texts[j] for j in rows], "passage", size)
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), np.float32)
        out[rows] = vectors
        shown.update(len(rows))
    if progress is True:
        shown.close()
    return out


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


class _Steps:
    """This writer's chunking, embedding and tokenising, as the streaming pipeline calls them
    (the functions above, looked up when called)."""

    def __init__(self, embedder: Embedder, settings: Settings) -> None:
        self.embedder, self.settings = embedder, settings
        self.shown: Bar = Quiet()

    def chunks(self, doc: Document) -> list[Chunk]:
        return _chunk_all([doc], self.settings, self.embedder)

    def slogans(self, doc: Document) -> Iterable[str]:
        return slogans([doc.text])

    def embed(self, chunks: list[Chunk]) -> np.ndarray:
        return _embed(chunks, self.embedder, self.settings, self.shown)

    def tokens(self, chunks: list[Chunk], lexicon: list[str]) -> list[str]:
        tokens = _tokens(chunks, lexicon)
        return [tokens[c.chunk_id] for c in chunks]


def _write_batches(gen: NewGeneration, intake: streaming.Intake, steps: _Steps,
                   lexicon: list[str], settings: Settings, bars: Bars) -> None:
    """The intake's reports as segments of about settings.segment_chunks chunks in `gen`."""
    digest = lexicon_digest(lexicon)
    steps.shown = bars(intake.chunks, "embedding", "chunk")
    try:
        streaming.write(intake, steps, lexicon, settings.segment_chunks, settings.embed_window,
                        lambda docs, chunks, vectors, tokens: gen.write(
                            Batch(docs, chunks, vectors, tokens, digest)))
    finally:
        steps.shown.close()
        intake.discard()  # before the commit: the scratch file is no part of the generation


def _once(docs: Iterable[Document], known: dict[str, str],
          dups: list[tuple[str, str]]) -> Iterator[Document]:
    """Reports whose content is already indexed (or given twice) are indexed once; the others
    are appended to `dups` as (source, doc_id it duplicates). `known` maps content hash to
    doc_id and is updated."""
    for d in docs:
        if d.content_hash and d.content_hash in known:
            dups.append((d.source, known[d.content_hash]))
            continue
        known[d.content_hash] = d.doc_id
        yield d


def _dedupe(docs: list[Document], known: dict[str, str]) -> tuple[list[Document],
                                                                   list[tuple[str, str]]]:
    dups: list[tuple[str, str]] = []
    return list(_once(docs, known, dups)), dups


def _new_manifest(embedder: Embedder, settings: Settings, sources: list[str]) -> Manifest:
    return Manifest(embedder.name, embedder.revision, embedder.dim, settings.chunk_max_chars,
                    settings.chunk_overlap_chars, sources=sources)


def build(root: Path, docs: Iterable[Document], embedder: Embedder, settings: Settings,
          sources: list[str], progress: bool | Bars = False, wait: float = 0.0) -> str | None:
    """A whole new index from `docs`, replacing what was there only once it is complete."""
    return build_index(root, docs, embedder, settings, sources, progress, wait).generation


def build_index(root: Path, docs: Iterable[Document], embedder: Embedder, settings: Settings,
                sources: list[str], progress: bool | Bars = False, wait: float = 0.0) -> Change:
    """`build`, saying also which reports were duplicates of others (indexed once).

    `docs` may be a lazy iterator: the reports are read once and written in batches, one
    segment each, all made live by one commit (streaming.py)."""
    if isinstance(docs, list) and not docs:
        raise IndexError_("nothing to index: no readable reports were given")
    manifest = _new_manifest(embedder, settings, [_source_key(s) for s in sources])
    change = Change()
    with store.writer_lock(root, wait):
        unique = _once(_absolute_each(docs), {}, change.duplicates)
        written = _write_new(root, manifest, unique, embedder, settings, progress,
                             in_memory=isinstance(docs, list))
    change.added, change.generation = written.added, written.generation
    return change


def _write_new(root: Path, manifest: Manifest, docs: Iterable[Document], embedder: Embedder,
               settings: Settings, progress: bool | Bars, collect: bool = True,
               in_memory: bool | None = None) -> Change:
    """A whole index of `docs`, in segments of about settings.segment_chunks chunks."""
    bars = bars_for(progress)
    steps = _Steps(embedder, settings)
    with new_generation(root, manifest.dim, settings) as gen:
        intake = streaming.take_in(docs, gen.tmp, steps, bars,
                                   isinstance(docs, list) if in_memory is None else in_memory)
        if not intake.documents:
            intake.discard()
            raise IndexError_("nothing to index: no readable reports were given")
        lexicon = sorted(intake.slogans)
        _write_batches(gen, intake, steps, lexicon, settings, bars)
        manifest.sources = sorted(set(manifest.sources) | intake.sources)
        manifest.lexicon = lexicon
        committed = gen.commit(manifest, [None], _fingerprint_of(intake.hashes),
                               settings.generations_kept, collect)
    return Change(added=intake.doc_ids, generation=committed.name)


def add(root: Path, new_docs: Iterable[Document], embedder: Embedder, settings: Settings,
        progress: bool | Bars = False, wait: float = 0.0) -> Change:
    """Embed only new or changed reports (by source path and content hash); keep the rest.

    A report whose source is already indexed replaces the old one if its content changed and is
    skipped if not; a report with the same content as another indexed report is a duplicate and
    is skipped (reported in Change.duplicates). Creates the index if there is none. `new_docs`
    may be a lazy iterator: they are written in batches, as by `build`.
    """
    in_memory = isinstance(new_docs, list)
    docs = _absolute_each(new_docs)
    with store.writer_lock(root, wait):
        change = Change()
        if store.read_current(root) is None:
            manifest = _new_manifest(embedder, settings, [])
            written = _write_new(root, manifest, _once(docs, {}, change.duplicates), embedder,
                                 settings, progress, in_memory=in_memory)
            change.added, change.generation = written.added, written.generation
            return change
        live = _live(root, embedder)
        change.generation, change.compacted = _append(
            root, live, _fresh(live, docs, change), embedder, settings, progress, in_memory)
        return change


def _fresh(live: Live, docs: Iterable[Document], change: Change) -> Iterator[Document]:
    """The reports an add embeds, new or changed; `change` records the others as they pass."""
    by_source = {_source_key(d.source): d for d in live.docs.values()}
    by_hash = {d.content_hash: d.doc_id for d in live.docs.values()}
    taken = {d.doc_id: d.source for d in live.docs.values()}
    seen_sources: set[str] = set()
    for doc in docs:
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
        yield doc


def _matches(key: str, doc: Document) -> bool:
    """`key` names `doc` by doc_id or by its source path (relative, absolute, or via links; the
    file need not exist any more)."""
    if key in (doc.doc_id, doc.source):
        return True
    path = Path(key).expanduser()
    return str(path.absolute()) == doc.source or _source_key(key) == _source_key(doc.source)


def remove(root: Path, ids_or_paths: list[str], settings: Settings, wait: float = 0.0) -> Change:
    """Drop reports by doc_id or source path; nothing changes if any of them is not indexed.

    Writes only a manifest that tombstones them; no segment is rewritten (unless that makes
    an automatic compaction due)."""
    if store.read_current(root) is None:
        raise _missing(root)
    with store.writer_lock(root, wait):
        live = _live(root)
        targets: set[str] = set()
        for key in ids_or_paths:
            hits = [d.doc_id for d in live.docs.values() if _matches(key, d)]
            if not hits:
                raise IndexError_(f"no report {key!r} in {root} (nothing was removed); "
                                  f"see: policyrag index info --index {root}")
            targets.update(hits)
        segs = live.tombstoned(targets)
        rest = [d for d in live.docs.values() if d.doc_id not in targets]
        gen = _commit(root, live.manifest, segs, None, _fingerprint(rest),
                      settings.generations_kept)
        compacted = _auto_compact(root, settings, segs)
        return Change(removed=sorted(targets), compacted=compacted,
                      generation=compacted.generation if compacted else gen.name)


@dataclass
class Live:
    """The live generation's manifest, segments and reports, read without the vectors or the
    chunk store: what add and remove need to decide what to write."""
    root: Path
    gen: Path
    manifest: Manifest
    segments: list[Segment]
    docs: dict[str, Document]
    home: dict[str, str]  # doc_id -> the segment holding it
    rows: dict[str, int]  # doc_id -> its rows there (as its documents.jsonl row records)

    def tombstoned(self, doc_ids: set[str]) -> list[Segment]:
        """The segments with `doc_ids` removed; a segment left with no report is dropped."""
        out = []
        for seg in self.segments:
            ids = sorted(i for i in doc_ids if self.home.get(i) == seg.name)
            if ids:
                seg = Segment.from_dict(asdict(seg))
                seg.removed = [*seg.removed, *ids]
                seg.removed_chunks += self._count(seg.name, ids)
            if seg.live_documents > 0:
                out.append(seg)
        return out

    def _count(self, segment: str, ids: list[str]) -> int:
        if all(i in self.rows for i in ids):
            return sum(self.rows[i] for i in ids)
        # A segment written before documents recorded their rows (format 1): count them once.
        wanted = set(ids)
        return sum(1 for r in store.load_jsonl(self.root / segment / "chunks.jsonl")
                   if r.get("doc_id") in wanted)


def _live(root: Path, embedder: Embedder | None = None) -> Live:
    """The live index's reports, its files checked as an open checks them (sizes, checksums)."""
    name = store.read_current(root)
    if name is None:
        raise _empty_current(root) if store.current_is_blank(root) else _missing(root)
    gen = root / name
    damaged = _damage_at(root, gen)
    manifest = _read_manifest_at(gen, damaged)
    segs = manifest.segment_list(gen.name)
    for seg in segs:
        _check_sizes(root, gen, seg, damaged)
    _check_checksums(root, gen, segs, damaged)
    if embedder is not None:
        check_model(manifest, embedder, root)
    live = Live(root, gen, manifest, segs, {}, {}, {})
    try:
        for seg in segs:
            removed = set(seg.removed)
            for row in store.load_jsonl(root / seg.name / "documents.jsonl"):
                doc_id = row["doc_id"]
                if doc_id not in removed:
                    live.docs[doc_id] = Document.from_dict(row)
                    live.home[doc_id] = seg.name
                    if "chunks" in row:
                        live.rows[doc_id] = row["chunks"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise damaged(f"the chunk or document store cannot be read ({exc})") from None
    return live


def _append(root: Path, live: Live, fresh: Iterable[Document], embedder: Embedder,
            settings: Settings, progress: bool | Bars, in_memory: bool = False
            ) -> tuple[str | None, Compaction | None]:
    """Commit `fresh` as new segments (one per batch), tombstoning the reports they replace.

    The new segments are tokenised with the lexicon widened by their own slogans; the other
    segments keep the tokens they were written with (see segments.py), so an add never
    re-tokenises the index. Returns the live generation's name (a compaction's, if one ran;
    None if there was nothing to add), and that compaction.
    """
    bars = bars_for(progress)
    steps = _Steps(embedder, settings)
    with new_generation(root, live.manifest.dim, settings) as gen:
        intake = streaming.take_in(fresh, gen.tmp, steps, bars, in_memory)
        if not intake.documents:
            intake.discard()
            return None, None
        replaced = {i for i in intake.doc_ids if i in live.docs}
        segs: list[Segment | None] = [*live.tombstoned(replaced), None]
        lexicon = sorted(set(live.manifest.lexicon) | intake.slogans)
        _write_batches(gen, intake, steps, lexicon, settings, bars)
        manifest = live.manifest
        manifest.lexicon = lexicon
        manifest.sources = sorted(set(manifest.sources) | intake.sources)
        hashes = [d.content_hash for d in live.docs.values() if d.doc_id not in replaced]
        committed = gen.commit(manifest, segs, _fingerprint_of([*hashes, *intake.hashes]),
                               settings.generations_kept)
    after_manifest = _try_manifest(committed)
    after = after_manifest.segment_list(committed.name) if after_manifest else []
    compacted = _auto_compact(root, settings, after)
    return (compacted.generation if compacted else committed.name) or committed.name, compacted


# ---- compaction ------------------------------------------------------------------------------

@dataclass
class Compaction:
    segments_before: int
    segments_after: int
    rows_dropped: int = 0  # tombstoned rows no longer stored
    retokenised: int = 0  # rows whose BM25 tokens were made again with the current lexicon
    generation: str | None = None  # None: nothing to do


def compact(root: Path, settings: Settings, wait: float = 0.0) -> Compaction:
    """Merge every segment into one without the removed reports' rows, with the lexicon and
    tokens a fresh build of the live reports would have; no report is embedded again."""
    if store.read_current(root) is None:
        raise _missing(root)
    with store.writer_lock(root, wait):
        return _compact(root, settings, None)


def _auto_compact(root: Path, settings: Settings, segs: list[Segment]) -> Compaction | None:
    """Run the compaction policy (segments.to_merge) on the just-committed segments."""
    names = to_merge(segs, settings.max_segments, settings.removed_share,
                     settings.segment_chunks)
    return _compact(root, settings, names) if names else None


def _compact(root: Path, settings: Settings, names: list[str] | None) -> Compaction:
    """Merge the segments `names` (all of them when None, re-tokenising as needed) into one."""
    live = _live(root)
    gen = live.gen
    full = names is None
    chosen = [s for s in live.segments if full or s.name in names]
    lexicon = (slogans(d.text for d in live.docs.values()) if full
               else list(live.manifest.lexicon))
    digest = lexicon_digest(lexicon)
    result = Compaction(len(live.segments), len(live.segments))
    if full and len(chosen) <= 1 and not any(s.removed or s.lexicon != digest for s in chosen):
        return result  # already one clean segment
    damaged = _damage_at(root, gen)
    docs: list[Document] = []
    chunks: list[Chunk] = []
    tokens: list[str] = []
    arrays = []
    try:
        for seg in chosen:
            part = _read_segment(root, gen, seg, live.manifest.dim, damaged)
            keep = part.live_rows()
            result.rows_dropped += len(part.chunks) - len(keep)
            rows = [part.chunks[i] for i in keep]
            seg_chunks = [Chunk(r["chunk_id"], r["doc_id"], r["start"], r["end"], r["text"])
                          for r in rows]
            if full and seg.lexicon != digest:
                fresh_tokens = _tokens(seg_chunks, lexicon)
                tokens += [fresh_tokens[c.chunk_id] for c in seg_chunks]
                result.retokenised += len(seg_chunks)
            else:
                tokens += [r.get("tokens", "") for r in rows]
            chunks += seg_chunks
            removed = set(seg.removed)
            docs += [Document.from_dict(d) for d in part.documents if d["doc_id"] not in removed]
            arrays.append(matrix(part.vectors)[keep])
    except (KeyError, TypeError) as exc:  # a row without the fields a merge copies
        raise damaged(f"the chunk or document store cannot be read ({exc!r})") from None
    digests = {s.lexicon for s in chosen}
    batch = Batch(docs, chunks, np.concatenate(arrays) if arrays else
                  np.zeros((0, live.manifest.dim), np.float32), tokens,
                  digest if full else merged_digest(digests))
    first = next((i for i, s in enumerate(live.segments) if s in chosen), 0)
    segs: list[Segment | None] = [s for s in live.segments if s not in chosen]
    segs.insert(min(first, len(segs)), None)
    manifest = live.manifest
    manifest.lexicon = lexicon
    committed = _commit(root, manifest, segs, batch, _fingerprint(live.docs.values()),
                        settings.generations_kept, settings=settings)
    result.segments_after = len(segs) - (0 if chunks else 1)
    result.generation = committed.name
    return result


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


def _parts(root: Path, gen: Path, manifest: Manifest | None) -> list[tuple[Path, set[str], str]]:
    """Each segment of `gen` as (folder, its tombstones, how messages name its files); a
    generation whose manifest does not read is taken as one folder, as version 1 wrote it."""
    if manifest is None:
        return [(gen, set(), "")]
    return [(root / seg.name, set(seg.removed), "" if seg.name == gen.name else f"{seg.name}/")
            for seg in manifest.segment_list(gen.name)]


def _read_whole(gen: Path) -> Stored:
    """A generation's reports, all of them or an IndexDamaged naming what does not read."""
    manifest = _try_manifest(gen)
    docs = []
    for folder, removed, _ in _parts(gen.parent, gen, manifest):
        try:
            docs += [Document.from_dict(d) for d in store.load_jsonl(folder / "documents.jsonl")
                     if d["doc_id"] not in removed]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexDamaged(f"{folder / 'documents.jsonl'} cannot be read ({exc})") from None
    return Stored(docs, manifest, gen.name)


def _restorable(root: Path) -> list[Path]:
    """Generations the index can go back to: not those kept only for a segment they hold."""
    return [g for g in store.generations(root) if (g / "manifest.json").exists()]


def _older(root: Path, live: str | None) -> str:
    """Where a person can go from a damaged live generation: older ones, or the files."""
    parts = []
    for gen in reversed(_restorable(root)):
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
        if gen not in _restorable(root):
            raise IndexError_(f"no generation {from_generation!r} in {root}; there are: "
                              f"{', '.join(g.name for g in _restorable(root)) or 'none'}")
        stored = _read_whole(gen)
        stored.notes.append(f"rebuilt from {gen.name} as asked (the live one was {live}); "
                            "no generation was removed")
        stored.collect = False
        return stored
    if live is None:
        gens = _restorable(root)
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
    rows, bad = [], []
    for folder, removed, prefix in _parts(root, gen, manifest):
        try:
            got, broken = store.load_jsonl_lenient(folder / "documents.jsonl")
        except OSError as exc:
            got, broken = [], [f"documents.jsonl cannot be read ({exc.strerror or exc})"]
        rows += [r for r in got if r.get("doc_id") not in removed]
        bad += [prefix + b for b in broken]
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
    recovered, lost = _recover(_parts(root, gen, manifest), docs, manifest)
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


def _recover(parts: list[tuple[Path, set[str], str]], good: list[Document],
             manifest: Manifest | None) -> tuple[list[Document], list[str] | None]:
    """Reports lost from a broken document store, found again among the manifest's recorded
    sources; and the doc_ids still lost (None when even that cannot be told)."""
    from policyrag.ingest.documents import load_documents

    chunk_rows = []
    for folder, removed, _ in parts:
        try:
            rows, _ = store.load_jsonl_lenient(folder / "chunks.jsonl")
        except OSError:
            rows = []
        chunk_rows += [r for r in rows if r.get("doc_id") not in removed]
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
    from policyrag.ingest.documents import read_document
    from policyrag.ingest.metadata import read_sidecar
    from policyrag.ingest.readers import ReadError

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
    """Every disagreement between manifest, segments and tombstones; empty when all is well
    (see verification.py). With `embedder`, also checks the index was built with that model."""
    from policyrag.index.verification import verify_index

    return verify_index(Path(root), embedder)
