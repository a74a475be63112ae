"""Writing reports into an index in bounded memory: reports streamed in, one segment per batch.

Two passes. The first (`take_in`) reads each report once (decoding, cleaning and metadata are
the costly part of reading), gathers what the whole index shares — the slogan lexicon that
BM25 tokens depend on, the content hashes, the sources — counts the chunks (for progress and
time left), and keeps the reports in a scratch file, not in memory. The second (`write`)
reads them back in order, chunks, embeds and tokenises them, and hands a batch to the
caller's writer every `segment_chunks` chunks, at a report boundary. Memory holds one batch
and one embedding window; the index written is the one a single batch would be.

The int8 model quantises each batch's activations with one scale, so a vector depends a little
on which texts share its batch. Embedding batches are therefore cut from the whole stream of
chunks in fixed windows, never at segment boundaries: how the stream is cut into segments
changes no vector. Sorting each window by length (settings.bucket_by_length) is off by
default: it saved 2% of the CPU time on real chunks and would change every vector.

What is done to a report (chunking, embedding, tokenising) is the caller's `Steps`, so that the
index's writer keeps one definition of each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from policyrag.index.progress import Bars
from policyrag.ingest.chunking import Chunk
from policyrag.ingest.documents import Document

SCRATCH = "reports.scratch.jsonl"


class Steps(Protocol):
    """What becomes of a report: its chunks, its slogans, its chunks' vectors and tokens."""

    def chunks(self, doc: Document) -> list[Chunk]: ...

    def slogans(self, doc: Document) -> Iterable[str]: ...

    def embed(self, chunks: list[Chunk]) -> np.ndarray: ...

    def tokens(self, chunks: list[Chunk], lexicon: list[str]) -> list[str]: ...


@dataclass
class Intake:
    """The reports to write (kept in `scratch`, or in memory when they came as a list), and
    what the whole index needs to know of them before the first segment is written."""
    scratch: Path | None
    kept: list[Document] | None = None
    documents: int = 0
    chunks: int = 0
    doc_ids: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)
    slogans: set[str] = field(default_factory=set)

    def __iter__(self) -> Iterator[Document]:
        if self.kept is not None:
            yield from self.kept
            return
        if self.scratch is None or not self.scratch.exists():
            return
        with self.scratch.open(encoding="utf-8") as fh:
            for line in fh:
                yield Document.from_dict(json.loads(line))

    def discard(self) -> None:
        self.kept = None
        if self.scratch is not None:
            self.scratch.unlink(missing_ok=True)


def take_in(docs: Iterable[Document], folder: Path, steps: Steps, bars: Bars,
            in_memory: bool = False) -> Intake:
    """Read `docs` once: count, hash, mine slogans, and keep them in a scratch file in
    `folder` (or in memory, with `in_memory`, for reports the caller holds anyway)."""
    intake = Intake(None if in_memory else folder / SCRATCH, [] if in_memory else None)
    shown = bars(None, "reading reports", "report")
    out = None if in_memory else intake.scratch.open("w", encoding="utf-8")  # type: ignore[union-attr]
    try:
        for doc in docs:
            intake.documents += 1
            intake.chunks += len(steps.chunks(doc))
            intake.doc_ids.append(doc.doc_id)
            intake.hashes.append(doc.content_hash)
            intake.sources.add(doc.source)
            intake.slogans.update(steps.slogans(doc))
            if out is None:
                intake.kept.append(doc)  # type: ignore[union-attr]
            else:
                out.write(json.dumps(doc.to_dict(), ensure_ascii=False) + "\n")
            shown.update(1)
    finally:
        shown.close()
        if out is not None:
            out.close()
    return intake


Write = Callable[[list[Document], list[Chunk], np.ndarray, list[str]], object]


@dataclass
class Rows:
    """Reports read and their chunks embedded so far, not yet written to a segment."""
    docs: list[tuple[Document, int]] = field(default_factory=list)  # with their chunk counts
    chunks: list[Chunk] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    def ready(self) -> tuple[int, int]:
        """(reports, chunks) at the head whose chunks are all embedded."""
        done, reports, rows = len(self.tokens), 0, 0
        for _, n in self.docs:
            if rows + n > done:
                break
            reports, rows = reports + 1, rows + n
        return reports, rows

    def take(self, reports: int, rows: int) -> tuple[list[Document], list[Chunk], np.ndarray,
                                                      list[str]]:
        vectors = np.concatenate(self.vectors) if self.vectors else np.zeros((0, 0), np.float32)
        docs = [d for d, _ in self.docs[:reports]]
        out = (docs, self.chunks[:rows], vectors[:rows], self.tokens[:rows])
        del self.docs[:reports], self.chunks[:rows], self.tokens[:rows]
        self.vectors = [vectors[rows:]] if rows < len(vectors) else []
        return out


def write(intake: Intake, steps: Steps, lexicon: list[str], segment_chunks: int,
          window: int, write_batch: Write) -> int:
    """Chunk, embed and tokenise the intake's reports in order, calling `write_batch` with
    each batch of whole reports once it holds `segment_chunks` chunks (and with the rest at
    the end); returns how many batches were written. Tokens are made in a second thread while
    the model embeds (its runtime releases the GIL)."""
    rows = Rows()
    pending: list[Chunk] = []
    batches = 0

    def flush(least: int) -> None:
        nonlocal batches
        reports, n = rows.ready()
        if reports and n >= least:
            write_batch(*rows.take(reports, n))
            batches += 1

    with ThreadPoolExecutor(max_workers=1) as pool:
        def embed(part: list[Chunk]) -> None:
            tokens = pool.submit(steps.tokens, part, lexicon)
            vectors = steps.embed(part)
            rows.chunks += part
            rows.vectors.append(vectors)
            rows.tokens += tokens.result()

        for doc in intake:
            chunks = steps.chunks(doc)
            rows.docs.append((doc, len(chunks)))
            pending += chunks
            while len(pending) >= window:
                embed(pending[:window])
                del pending[:window]
                flush(segment_chunks)
        if pending:
            embed(pending)
        flush(0)
    return batches
