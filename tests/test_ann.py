"""Approximate search (issue 12 part 3): past a threshold of rows a segment also gets an IVF
index, searched in place of the flat one, which answers as the flat index does, keeps
filters and tombstones, survives add and compaction, and is checked like every other file.
Seeds-sized: the threshold is set low through Settings. Real model, real FAISS."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from policyrag.config import Settings
from policyrag.engine import Engine
from policyrag.index import ann
from policyrag.index import lifecycle as idx
from policyrag.index.ann import ANN_FILE
from policyrag.ingest.documents import load_documents
from policyrag.search.filtering import Filters
from policyrag.search.retrieval import Searcher, top_rows
from tests.conftest import ROOT, SEED_LOCALITIES, report

# The seeds hold 52 chunks; translating English questions is not what is tested here.
FLAT = replace(Settings(), translate_queries=False)
ANN = replace(FLAT, ann_min_chunks=20)
QUESTIONS = [json.loads(line)["q"] for line in
             (ROOT / "tests" / "data" / "dev_questions.jsonl").read_text("utf-8").splitlines()
             if line.strip()]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLICYRAG_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def ann_index(tmp_path, seed_copy, embedder) -> Path:
    """The seeds in one segment big enough, under ANN, to get an approximate index."""
    root = tmp_path / "ann"
    docs, _ = load_documents([seed_copy])
    idx.build(root, docs, embedder, ANN, [str(seed_copy)])
    return root


def engine_on(root: Path, embedder, settings: Settings = ANN) -> Engine:
    eng = Engine(root, settings=settings)
    eng._embedder = embedder
    return eng


def segments(root: Path) -> list[dict]:
    return idx.read_manifest(root).segments


def test_a_big_segment_gets_an_ann_index_that_answers_as_the_flat_one(ann_index, index_dir,
                                                                      embedder):
    (seg,) = segments(ann_index)
    assert seg["ann"].startswith("IVF") and seg["ann"].endswith("x4fs")  # fast-scan PQ codes
    assert ANN_FILE in seg["checksums"] and (ann_index / seg["name"] / ANN_FILE).is_file()
    assert ANN_FILE not in segments(index_dir)[0]["checksums"]  # the default stays flat
    approx = Searcher(idx.open_index(ann_index, embedder), embedder, ANN)
    exact = Searcher(idx.open_index(index_dir, embedder), embedder, FLAT)
    assert approx.index.vectors.approximate and not exact.index.vectors.approximate
    for q in QUESTIONS[::3]:
        a, e = approx.search(q, k=5), exact.search(q, k=5)
        assert a[0].chunk_id == e[0].chunk_id, q
        dense_a = {h.chunk_id for h in approx.search(q, k=10, mode="dense", places=False)}
        dense_e = {h.chunk_id for h in exact.search(q, k=10, mode="dense", places=False)}
        assert len(dense_a & dense_e) >= 8, q


# A report's ~13 rows: fewer than the 100 candidates re-scored, so scored exactly; or more
# than the 10 that refine 1 re-scores, so the PQ index's candidates are filtered.
@pytest.mark.parametrize("refine", [100, 1])
def test_filters_keep_working_on_the_ann_index(ann_index, index_dir, embedder, refine):
    settings = replace(ANN, ann_refine=refine)
    approx = Searcher(idx.open_index(ann_index, embedder), embedder, settings)
    exact = Searcher(idx.open_index(index_dir, embedder), embedder, FLAT)
    for doc_id, locality in SEED_LOCALITIES.items():
        for q in ("招商引资", "生态环境保护", "数字经济"):
            only = Filters(doc_ids=[doc_id])
            hits = approx.search(q, k=5, filters=only, mode="dense")
            assert hits and {h.doc_id for h in hits} == {doc_id}, (q, locality)
            flat = exact.search(q, k=50, filters=only, mode="dense")
            if refine > 1:  # few rows left: scored exactly, so exactly the flat answer
                assert [h.chunk_id for h in hits] == [h.chunk_id for h in flat[:5]]
            else:  # the candidates' scores are exact ones, not the PQ codes' estimates
                score = {h.chunk_id: h.score for h in flat}
                assert all(h.score == pytest.approx(score[h.chunk_id], abs=1e-5) for h in hits)


def test_a_segment_written_with_ivf_flat_still_opens_and_searches(tmp_path, seed_copy,
                                                                  index_dir, embedder,
                                                                  monkeypatch):
    """Indexes written before PQ codes hold IVF-Flat ann.faiss files: searched as written."""
    monkeypatch.setattr(ann, "factory", lambda dim, lists, rows: f"IVF{lists},Flat")
    root = tmp_path / "old"
    docs, _ = load_documents([seed_copy])
    idx.build(root, docs, embedder, ANN, [str(seed_copy)])
    monkeypatch.undo()
    (seg,) = segments(root)
    assert seg["ann"].endswith(",Flat") and idx.verify(root) == []
    old = Searcher(idx.open_index(root, embedder), embedder, ANN)
    (part,) = old.index.vectors.parts
    assert part.approximate and not part.refine
    exact = Searcher(idx.open_index(index_dir, embedder), embedder, FLAT)
    for q in QUESTIONS[::3]:
        assert old.search(q, k=1)[0].chunk_id == exact.search(q, k=1)[0].chunk_id, q


def test_the_ann_index_survives_add_remove_and_compact(ann_index, tmp_path, embedder):
    eng = engine_on(ann_index, embedder)
    (big,) = segments(ann_index)
    before = [h.chunk_id for h in eng.search("招商引资", k=5, mode="dense", places=False)]
    new = tmp_path / "new" / "kunpeng.txt"
    new.parent.mkdir()
    new.write_text(report("鲲鹏星港数据谷"), "utf-8")
    eng.add([new])
    after = segments(ann_index)
    assert after[0] == big and len(after) == 2 and not after[1]["ann"]  # small: flat
    assert eng.search("鲲鹏星港数据谷", k=1, mode="dense")[0].source == str(new)
    assert [h.chunk_id for h in eng.search("招商引资", k=5, mode="dense", places=False)] == before
    assert eng.index.vectors.approximate

    gone = "002_e8d0747b3dfad330"
    eng.remove([gone])
    for q in ("路桥区委全会", "招商引资", "跨越式高质量发展"):  # its rows are still in ann.faiss
        assert gone not in {h.doc_id for h in eng.search(q, k=20, mode="dense", places=False)}

    eng.compact()
    (merged,) = segments(ann_index)
    assert merged["name"] != big["name"] and merged["ann"] and ANN_FILE in merged["checksums"]
    assert idx.verify(ann_index) == []
    reopened = engine_on(ann_index, embedder)
    assert reopened.search("鲲鹏星港数据谷", k=1, mode="dense")[0].source == str(new)
    assert gone not in {h.doc_id for h in reopened.search("路桥区委全会", k=20, mode="dense")}


def flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flipped", "truncated", "missing"])
def test_a_damaged_ann_file_is_caught_by_verify_and_open(ann_index, embedder, damage):
    (seg,) = segments(ann_index)
    path = ann_index / seg["name"] / ANN_FILE
    if damage == "flipped":
        flip_byte(path, path.stat().st_size // 2)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        path.unlink()
    problems = idx.verify(ann_index)
    assert any(ANN_FILE in p for p in problems), problems
    with pytest.raises(idx.IndexDamaged, match=ANN_FILE):
        idx.open_index(ann_index, embedder)


def test_lexical_top_rows_at_scale_are_the_best_scores():
    """At a million rows top_rows partitions only the rows past a sampled cut: it must still
    return exactly the n best positive scores, best first."""
    rng = np.random.default_rng(3)
    scores = np.where(rng.random(200_000) < 0.5, rng.random(200_000), 0)
    scores = scores.astype(np.float32)
    for n in (1, 5, 50):
        expected = sorted(np.flatnonzero(scores > 0).tolist(), key=lambda r: (-scores[r], r))[:n]
        assert [r for r, _ in top_rows(scores, n)] == expected
    sparse = np.zeros(200_000, np.float32)
    sparse[[7, 70_000]] = [1.0, 2.0]  # fewer positive rows than asked for
    assert top_rows(sparse, 5) == [(70_000, 2.0), (7, 1.0)]


def test_segments_searched_two_at_a_time_answer_as_one_at_a_time(ann_index, tmp_path,
                                                                 embedder):
    """A big PQ segment and a small flat one: threads change the speed, never the hits, and a
    filter keeping rows of both parts finds rows in each."""
    eng = engine_on(ann_index, embedder)
    new = tmp_path / "new" / "kunpeng.txt"
    new.parent.mkdir()
    new.write_text(report("鲲鹏星港数据谷"), "utf-8")
    eng.add([new])
    index = idx.open_index(ann_index, embedder)
    assert len(index.vectors.parts) == 2
    one = Searcher(index, embedder, replace(ANN, search_threads=1))
    two = Searcher(index, embedder, replace(ANN, search_threads=2))
    for q in [*QUESTIONS[::4], "鲲鹏星港数据谷"]:
        assert [(h.chunk_id, h.score) for h in one.search(q, k=10, mode="dense")] == \
            [(h.chunk_id, h.score) for h in two.search(q, k=10, mode="dense")], q
    added = index.chunks[-1].doc_id
    both = Filters(doc_ids=[added, "002_e8d0747b3dfad330"])
    hits = two.search("鲲鹏星港数据谷 路桥区委全会", k=20, filters=both, mode="dense")
    assert {h.doc_id for h in hits} == {added, "002_e8d0747b3dfad330"}
