"""Immutable index segments: what each holds, how its files are written and read back, and
which ones a compaction merges.

A segment is the vectors, chunk rows (with their BM25 tokens) and documents that one write
added. It lives in the generation folder of the commit that wrote it and is never changed
afterwards; later manifests name it again, with the doc_ids removed from it since
("tombstones"). So adding a report writes one small segment and a manifest, and removing one
writes only a manifest. Opening concatenates the live rows of every segment (index.py).

BM25 tokens depend on the index-wide slogan lexicon. A segment keeps the tokens it was
written with (its `lexicon` digest says with which lexicon), so that adding a report never
re-tokenises the others; a full compaction re-tokenises the segments whose lexicon is not
the current one, after which the index is what a fresh build would be.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from policyrag.config import Settings
from policyrag.index import ann, store
from policyrag.index.checksum import file_checksum
from policyrag.index.lexical import TOKENS_VERSION
from policyrag.ingest.chunking import Chunk
from policyrag.ingest.documents import Document

FILES = ("vectors.faiss", "chunks.jsonl", "documents.jsonl")
# The lexicon digest of a segment merged from segments with different ones: MIXED when all
# were tokenised by this version of `tokenize`, OLD_MIXED when some were not.
MIXED = f"t{TOKENS_VERSION}-mixed"
OLD_MIXED = "mixed"


@dataclass
class Segment:
    name: str  # the generation folder that holds its files
    documents: int  # rows in its documents.jsonl
    chunks: int  # rows in chunks.jsonl and vectors in vectors.faiss
    removed: list[str] = field(default_factory=list)  # tombstoned doc_ids
    removed_chunks: int = 0  # the rows those doc_ids hold
    lexicon: str = ""
    checksums: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    # The FAISS factory string of its approximate index (ann.faiss), "" when it has none.
    ann: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> Segment:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

    def files(self) -> tuple[str, ...]:
        return (*FILES, ann.ANN_FILE) if self.ann else FILES

    @property
    def live_documents(self) -> int:
        return self.documents - len(self.removed)

    @property
    def live_chunks(self) -> int:
        return self.chunks - self.removed_chunks

    def label(self, fname: str, live: str) -> str:
        """How messages name one of its files: bare in the live generation's own folder."""
        return fname if self.name == live else f"{self.name}/{fname}"


def lexicon_digest(lexicon: list[str] | tuple[str, ...], version: int = TOKENS_VERSION) -> str:
    """Names the lexicon and the version of `tokenize` a segment's BM25 tokens come from
    (version 1 wrote the bare hash)."""
    digest = hashlib.sha1("\n".join(lexicon).encode()).hexdigest()[:16]
    return digest if version == 1 else f"t{version}-{digest}"


def current_tokens(digest: str) -> bool:
    """Whether a segment's BM25 tokens were cut by this version of `tokenize`."""
    return digest.startswith(f"t{TOKENS_VERSION}-")


def merged_digest(digests: set[str]) -> str:
    if len(digests) == 1:
        return next(iter(digests))
    return MIXED if all(current_tokens(d) for d in digests) else OLD_MIXED


def write(folder: Path, name: str, dim: int, docs: list[Document], chunks: list[Chunk],
          vectors: np.ndarray, tokens: list[str], lexicon: str,
          settings: Settings | None = None) -> Segment:
    """Write a segment's files durably into `folder` (the commit's temporary folder): three,
    and an approximate index when it holds at least `settings.ann_min_chunks` rows."""
    per_doc = Counter(c.doc_id for c in chunks)
    flat = faiss.IndexFlatIP(dim)
    if len(vectors):
        flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
    # Serialised here and written by Python, so a full disk is an OSError with its errno
    # (FAISS's own writer turns it into an opaque RuntimeError).
    store.write_file_durably(folder / "vectors.faiss", faiss.serialize_index(flat).tobytes())
    store.test_pause("mid_write")
    rows = [{**asdict(c), "tokens": t} for c, t in zip(chunks, tokens, strict=True)]
    store.write_file_durably(folder / "chunks.jsonl", store.dump_jsonl(rows))
    # Each report's row count rides along, so that a removal knows how many rows it tombstones
    # without reading the chunk store.
    store.write_file_durably(folder / "documents.jsonl", store.dump_jsonl(
        [{**d.to_dict(), "chunks": per_doc[d.doc_id]} for d in docs]))
    seg = Segment(name, len(docs), len(chunks), lexicon=lexicon)
    if settings is not None and len(chunks) >= max(settings.ann_min_chunks, 1):
        lists = ann.lists_for(len(chunks), settings.ann_lists_per_sqrt)
        index, seg.ann = ann.build(vectors, lists)
        store.write_file_durably(folder / ann.ANN_FILE, faiss.serialize_index(index).tobytes())
    seg.checksums = {f: file_checksum(folder / f) for f in seg.files()}
    seg.sizes = {f: (folder / f).stat().st_size for f in seg.files()}
    return seg


def matrix(vectors: faiss.Index) -> np.ndarray:
    """A flat FAISS index's vectors as an (n, dim) array viewing FAISS's own memory."""
    if isinstance(vectors, faiss.IndexFlat):
        return faiss.rev_swig_ptr(vectors.get_xb(), vectors.ntotal * vectors.d).reshape(
            vectors.ntotal, vectors.d)
    return vectors.reconstruct_n(0, vectors.ntotal)


def merged_flat(parts: list[np.ndarray], dim: int) -> faiss.IndexFlatIP:
    flat = faiss.IndexFlatIP(dim)
    for part in parts:
        if len(part):
            flat.add(np.ascontiguousarray(part, dtype=np.float32))
    return flat


def to_merge(segments: list[Segment], max_segments: int, removed_share: float,
             full: int = 0) -> list[str]:
    """The segments an automatic compaction merges (none when the index is in shape).

    A segment whose tombstoned rows exceed `removed_share` of its rows is rewritten without
    them; past `max_segments` segments smaller than `full` rows, the smallest are merged
    until half that many are left. Segments of `full` rows (what a streamed build writes) are
    never merged for their number: a build of a million chunks would otherwise be merged
    whole, in memory, by the first add after it. Both cost what the merged segments hold, not
    the whole index.
    """
    chosen = {s.name for s in segments
              if s.chunks and s.removed_chunks > removed_share * s.chunks}
    small = [s for s in segments if not full or s.live_chunks < full]
    if len(small) > max_segments:
        by_size = sorted(small, key=lambda s: s.live_chunks)
        chosen |= {s.name for s in by_size[:len(small) - max_segments // 2 + 1]}
    # Rewriting one segment that nothing was removed from would gain nothing.
    if len(chosen) == 1 and not next(s for s in segments if s.name in chosen).removed:
        return []
    return [s.name for s in segments if s.name in chosen]
