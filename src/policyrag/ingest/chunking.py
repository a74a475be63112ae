"""Sentence-aware chunking of Chinese text with character offsets into the cleaned document."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# A sentence ends at 。！？； (half-width after NFKC too) or a line break; closing quotes stay
# with the sentence they close.
_SENTENCE_END = re.compile(r"[。!?;！？；]+[”’」』\"')]*|\n+")
_CLAUSE_END = re.compile(r"[,，、:：]")


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass
class Chunk:
    chunk_id: str
    doc_id: str
    start: int
    end: int
    text: str


def sentence_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        spans.extend(_trimmed(text, pos, m.end()))
        pos = m.end()
    spans.extend(_trimmed(text, pos, len(text)))
    return spans


def sentences(text: str, shortest: int = 8) -> list[str]:
    """The text's sentences of at least `shortest` characters (a "会议强调," or a heading is not
    one of its own), or the text whole when none is that long."""
    found = [text[s.start:s.end] for s in sentence_spans(text)]
    return [s for s in found if len(s) >= shortest] or [text]


def _trimmed(text: str, start: int, end: int) -> list[Span]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return [Span(start, end)] if end > start else []


def _split_long(text: str, span: Span, limit: int) -> Iterator[Span]:
    """A sentence over the limit is cut at clause marks, and only then mid-clause."""
    start = span.start
    while span.end - start > limit:
        window = text[start:start + limit]
        cuts = [m.end() for m in _CLAUSE_END.finditer(window)]
        cut = start + (cuts[-1] if cuts and cuts[-1] > limit // 3 else limit)
        yield Span(start, cut)
        start = cut
    if start < span.end:
        yield Span(start, span.end)


def chunk_text(doc_id: str, text: str, max_chars: int = 320, overlap: int = 60) -> list[Chunk]:
    if max_chars < 10:
        raise ValueError("max_chars must be at least 10")
    overlap = max(0, min(overlap, max_chars // 2))
    units = [piece for s in sentence_spans(text) for piece in _split_long(text, s, max_chars)]
    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j = i
        while j + 1 < len(units) and units[j + 1].end - units[i].start <= max_chars:
            j += 1
        start, end = units[i].start, units[j].end
        chunks.append(Chunk(f"{doc_id}#{len(chunks)}", doc_id, start, end, text[start:end]))
        if j + 1 >= len(units):
            break
        # Overlap by whole trailing sentences that fit in `overlap` characters, never by zero
        # progress.
        k = j + 1
        while k - 1 > i and units[j].end - units[k - 1].start <= overlap:
            k -= 1
        i = k
    return chunks
