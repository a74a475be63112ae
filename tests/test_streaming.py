"""Build and add stream reports through in batches, one segment each, committed together:
the index is the one a single batch makes, and a writer killed between two segments leaves the
previous index live. Real model, real FAISS, real `policyrag` processes for the kills."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from policyrag.config import Settings
from policyrag.engine import Engine
from policyrag.index import lifecycle as idx
from policyrag.index import store
from policyrag.index.lexical import tokenize
from policyrag.ingest.documents import iter_documents
from policyrag.search.retrieval import Searcher
from tests.conftest import report
from tests.test_crash_safety import Writer, answers, leftovers

QUERIES = ["招商引资", "路桥区委全会", "数智强县", "第4号试点园区建设"]
SLOGAN = "数智强县"


def collection(folder: Path, seeds: Path) -> Path:
    """Reports that make a streamed build depend on the whole input: the first uses a phrase
    that only the last quotes (a slogan, so it must be one BM25 token in both), and one
    repeats a seed's text (a duplicate, found across batches)."""
    rows = [{"id": "r0", "text": report("第0号试点园区", 20, f",打造{SLOGAN}样板")}]
    rows += [{"id": f"r{i}", "text": report(f"第{i}号试点园区", 20)} for i in range(1, 5)]
    rows.append({"id": "again", "text": (seeds / "002_e8d0747b3dfad330.txt").read_text("utf-8")})
    rows.append({"id": "r5", "text": report("第5号试点园区", 20, f",奋力建设“{SLOGAN}”")})
    path = folder / "more.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def settings(segment_chunks: int) -> Settings:
    # The same embedding window for both builds: it, not the segment size, decides batches.
    return replace(Settings(), segment_chunks=segment_chunks, embed_window=16)


def searched(root: Path, embedder) -> dict:
    ix = idx.open_index(root, embedder)
    searcher = Searcher(ix, embedder)
    return {q: [(h.chunk_id, round(h.score, 6)) for h in searcher.search(q, k=8, mode=mode)]
            for q in QUERIES for mode in ("dense", "lexical", "hybrid")}


def test_a_build_in_small_batches_is_the_build_in_one(tmp_path, seed_copy, embedder):
    paths = [seed_copy, collection(tmp_path, seed_copy)]
    one, many = tmp_path / "one", tmp_path / "many"
    errors: list = []
    whole = list(iter_documents(paths, errors))
    done_one = idx.build_index(one, whole, embedder, settings(10**9), ["x"])
    done_many = idx.build_index(many, iter_documents(paths, errors), embedder, settings(12),
                                ["x"])
    a, b = idx.open_index(one, embedder), idx.open_index(many, embedder)
    assert len(a.manifest.segments) == 1
    assert len(b.manifest.segments) >= 3
    assert idx.verify(many) == []
    # The same reports, chunks, tokens and vectors, in the same order.
    assert done_many.duplicates == done_one.duplicates == [
        (f"{paths[1]}#again", "002_e8d0747b3dfad330")]
    assert done_many.added == done_one.added
    assert [c.chunk_id for c in b.chunks] == [c.chunk_id for c in a.chunks]
    assert b.tokens == a.tokens
    assert np.array_equal(b.matrix(), a.matrix())
    assert (b.manifest.lexicon, b.manifest.corpus_fingerprint, b.manifest.sources) == (
        a.manifest.lexicon, a.manifest.corpus_fingerprint, a.manifest.sources)
    # The slogan quoted only in the last report is whole in the first one's tokens too.
    first = next(i for i, c in enumerate(b.chunks) if c.doc_id == "r0" and SLOGAN in c.text)
    assert SLOGAN in b.tokens[first]
    assert SLOGAN in tokenize(b.chunks[first].text, b.lexicon)
    assert searched(many, embedder) == searched(one, embedder)


def test_an_add_in_batches_commits_once_and_its_segments_outlive_their_generation(
        index_copy, tmp_path, seed_copy, embedder):
    path = collection(tmp_path, seed_copy)
    before = store.read_current(index_copy)
    eng = Engine(index_copy, settings=settings(12))
    eng._embedder = embedder
    change, _ = eng.add([path])
    assert change.added == ["r0", "r1", "r2", "r3", "r4", "r5"]
    assert change.duplicates == [(f"{path}#again", "002_e8d0747b3dfad330")]
    gen = store.read_current(index_copy)
    assert int(gen[4:]) == int(before[4:]) + 1  # one commit
    names = [s["name"] for s in idx.read_manifest(index_copy).segments]
    assert names[1] == gen and len(names) >= 3
    assert all(n.startswith(f"{gen}/seg-") for n in names[2:])
    # Later commits collect that generation's manifest but keep the folder its segments use.
    eng.remove(["r1"])
    eng.remove(["r4"])
    eng.remove(["001_758a5b4942a02065"])
    assert not (index_copy / gen / "manifest.json").exists()
    assert idx.verify(index_copy) == []
    assert sorted(eng.index.documents) == sorted(
        ["000_e9f0a6d5a56f891f", "002_e8d0747b3dfad330", "003_44711a7aea527f8e",
         "004_c93a4296dfa4c8a6", "r0", "r2", "r3", "r5"])
    assert eng.search("第3号试点园区", k=1)[0].doc_id == "r3"
    eng.compact()
    assert idx.verify(index_copy) == []
    assert len(idx.read_manifest(index_copy).segments) == 1
    assert eng.search("第5号试点园区", k=1)[0].doc_id == "r5"


@pytest.mark.slow
@pytest.mark.parametrize("action", ["build", "add"])
def test_a_writer_killed_between_segments_leaves_the_previous_index(
        action, index_copy, tmp_path, seed_copy, embedder, monkeypatch):
    path = collection(tmp_path, seed_copy)
    before = answers(index_copy, embedder)
    monkeypatch.setenv("POLICYRAG_SEGMENT_CHUNKS", "12")
    monkeypatch.setenv("POLICYRAG_EMBED_WINDOW", "16")
    w = Writer(["index", action, str(path), "--index", str(index_copy)],
               pause_at=store.BETWEEN_SEGMENTS)
    w.wait_for_pause(store.BETWEEN_SEGMENTS)
    (tmp,) = index_copy.glob(".tmp-*")
    assert (tmp / "vectors.faiss").exists()  # one segment written, more to come
    w.kill()
    assert answers(index_copy, embedder) == before
    assert idx.verify(index_copy) == []
    # The next writer removes what the dead one left, and commits.
    again = Engine(index_copy, settings=settings(12))
    again._embedder = embedder
    again.add([path])
    assert leftovers(index_copy) == []
    assert idx.verify(index_copy) == []
    assert "r5" in again.index.documents
    shutil.rmtree(index_copy)


def test_length_sorted_batches_give_each_chunk_its_own_vector(seed_copy, embedder):
    """With bucket_by_length, texts are embedded in length order and put back: one text per
    batch makes vectors independent of batching, so they must equal the unsorted ones."""
    from policyrag.ingest.documents import load_documents

    docs, _ = load_documents([seed_copy / "000_e9f0a6d5a56f891f.txt"])
    chunks = idx._chunk_all(docs, Settings(), embedder)[:12]
    assert len({len(c.text) for c in chunks}) > 3  # (so that sorting moves them)
    plain = replace(Settings(), batch_size=1, bucket_by_length=False)
    bucketed = replace(plain, bucket_by_length=True)
    assert np.allclose(idx._embed(chunks, embedder, bucketed),
                       idx._embed(chunks, embedder, plain), atol=1e-6)


def test_segments_written_elsewhere_are_adopted_in_one_commit(tmp_path, index_dir):
    """What a distributed build does: workers write segments into folders of their own, and
    one commit adopts them all; the index is the one they were cut from."""
    from dataclasses import asdict

    from policyrag.config import Settings
    from policyrag.index.segments import lexicon_digest
    from policyrag.index.segments import write as write_segment

    src = idx.open_index(index_dir)
    docs = sorted(src.documents.values(), key=lambda d: d.doc_id)
    root = tmp_path / "adopted"
    big = Settings(ann_min_chunks=10)  # so the workers' segments carry an ann.faiss too
    with store.writer_lock(root), idx.new_generation(root, src.manifest.dim) as gen:
        for part in (docs[:2], docs[2:]):
            ids = {d.doc_id for d in part}
            rows = [i for i, c in enumerate(src.chunks) if c.doc_id in ids]
            folder = root / f"{store.TMP_PREFIX}worker-{len(gen.segments)}"
            folder.mkdir()
            seg = write_segment(folder, "worker", src.manifest.dim, part,
                                [src.chunks[i] for i in rows], src.matrix()[rows],
                                [src.tokens[i] for i in rows],
                                lexicon_digest(src.lexicon), big)
            assert seg.ann
            gen.adopt(folder, seg)
        gen.commit(idx.Manifest.from_dict(asdict(src.manifest)), [None],
                   src.manifest.corpus_fingerprint, 2)
    assert idx.verify(root) == []
    got = idx.open_index(root)
    assert [s["name"] for s in got.manifest.segments] == ["gen-000001", "gen-000001/seg-0001"]
    order = [src.chunk_row(c.chunk_id) for c in got.chunks]
    assert sorted(order) == list(range(len(src.chunks)))
    assert np.array_equal(got.matrix(), src.matrix()[order])
    assert list(root.glob(f"{store.TMP_PREFIX}*")) == []
