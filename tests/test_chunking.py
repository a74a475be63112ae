"""Sentence-aware chunks with exact offsets into the cleaned report."""

from __future__ import annotations

from policyrag.ingest.chunking import chunk_text, sentence_spans
from policyrag.ingest.documents import load_documents
from tests.conftest import SEEDS


def test_seed_chunks_match_their_offsets_and_respect_the_limit():
    docs, _ = load_documents([SEEDS])
    for doc in docs:
        chunks = chunk_text(doc.doc_id, doc.text, 320, 60)
        assert chunks
        for c in chunks:
            assert doc.text[c.start:c.end] == c.text
            assert len(c.text) <= 320
            assert c.chunk_id.startswith(doc.doc_id + "#")


def test_chunks_end_at_sentence_boundaries():
    docs, _ = load_documents([SEEDS])
    for doc in docs:
        for c in chunk_text(doc.doc_id, doc.text, 320, 60):
            assert c.text[-1] in "。!?;”\n" or c.end == len(doc.text) or c.text[-1] in ",、:", c.text


def test_neighbouring_chunks_overlap_by_whole_sentences():
    text = "".join(f"第{i}句话讲的是一件事情。" for i in range(40))
    chunks = chunk_text("d", text, 60, 20)
    assert len(chunks) > 3
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end  # overlap
        assert text[b.start - 1] == "。"  # and it starts on a sentence
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert covered == set(range(len(text)))


def test_overlong_sentence_is_cut_at_clauses_then_hard():
    clause = "坚持以项目为抓手全力承接政策落地,"
    text = clause * 30 + "。"
    chunks = chunk_text("d", text, 100, 0)
    assert all(len(c.text) <= 100 for c in chunks)
    assert all(c.text.endswith(",") for c in chunks[:-1])
    assert "".join(c.text for c in chunks) == text
    no_commas = "字" * 250
    assert [len(c.text) for c in chunk_text("d", no_commas, 100, 0)] == [100, 100, 50]


def test_sentence_splitting_keeps_closing_quotes():
    spans = sentence_spans("他说:“要抓落实。”然后散会!新的一行\n最后")
    text = "他说:“要抓落实。”然后散会!新的一行\n最后"
    assert [text[s.start:s.end] for s in spans] == ["他说:“要抓落实。”", "然后散会!", "新的一行", "最后"]
