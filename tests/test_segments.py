"""Segments (issue 12): a change costs what it changes. Adding a report writes one new segment
and leaves the others' files untouched; removing one writes only a manifest; compaction merges
segments into what a fresh build would be; a writer killed during an add or a compaction leaves
the previous state live. Real model, real FAISS, the real command line."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from policyrag.cli import main
from policyrag.config import Settings
from policyrag.engine import Engine
from policyrag.index import lifecycle as idx
from policyrag.index import store
from policyrag.index.segments import lexicon_digest
from policyrag.ingest.documents import load_documents
from policyrag.search.retrieval import Searcher
from tests.conftest import report
from tests.test_crash_safety import Writer, copies, kill_each_at_its_point, leftovers

SEED_IDS = ["000_e9f0a6d5a56f891f", "001_758a5b4942a02065", "002_e8d0747b3dfad330",
            "003_44711a7aea527f8e", "004_c93a4296dfa4c8a6"]
QUERIES = ["招商引资", "路桥区委全会", "跨越式高质量发展", "效能建设", "温州", "生态环境保护",
           "鲲鹏智算产业园", "青田石雕文化街区"]
SEGMENT_FILES = ("vectors.faiss", "chunks.jsonl", "documents.jsonl")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLICYRAG_CACHE_DIR", str(tmp_path / "cache"))


def engine_on(root: Path, embedder) -> Engine:
    eng = Engine(root)
    eng._embedder = embedder
    return eng


def write_report(folder: Path, name: str, marker: str, sentences: int = 8) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.txt"
    path.write_text(report(marker, sentences), "utf-8")
    return path


def manifest(root: Path) -> dict:
    return store.read_json(store.current_generation(root) / "manifest.json")


def segment_names(root: Path) -> list[str]:
    return [s["name"] for s in manifest(root)["segments"]]


def fingerprint(folder: Path) -> dict[str, tuple]:
    """What would change if a file were rewritten, even with the same bytes."""
    out = {}
    for name in SEGMENT_FILES:
        st = (folder / name).stat()
        out[name] = (st.st_ino, st.st_mtime_ns, st.st_size,
                     hashlib.sha256((folder / name).read_bytes()).hexdigest())
    return out


def hits(root: Path, embedder, mode: str = "hybrid", k: int = 5) -> dict:
    searcher = Searcher(idx.open_index(root, embedder), embedder)
    return {q: [(h.chunk_id, round(h.score, 4)) for h in searcher.search(q, k=k, mode=mode)]
            for q in QUERIES}


# ---- add ----------------------------------------------------------------------------------------

def test_add_writes_one_new_segment_and_leaves_the_old_ones_untouched(index_copy, tmp_path,
                                                                      embedder):
    base = index_copy / "gen-000001"
    before = fingerprint(base)
    size_before = sum(f.stat().st_size for f in base.iterdir())
    new = write_report(tmp_path / "in", "kunpeng", "鲲鹏智算产业园")
    eng = engine_on(index_copy, embedder)
    change, _ = eng.add([new])

    assert change.added == ["kunpeng"] and change.generation == "gen-000002"
    assert segment_names(index_copy) == ["gen-000001", "gen-000002"]
    assert fingerprint(base) == before  # not rewritten, not even touched
    # The new generation holds the new report's rows only, and a manifest.
    gen2 = index_copy / "gen-000002"
    new_rows = store.load_jsonl(gen2 / "chunks.jsonl")
    assert {r["doc_id"] for r in new_rows} == {"kunpeng"}
    assert [d["doc_id"] for d in store.load_jsonl(gen2 / "documents.jsonl")] == ["kunpeng"]
    written = sum(f.stat().st_size for f in gen2.iterdir())
    assert written < size_before / 5
    # And the index answers as one: the seeds and the new report, found by its words.
    ix = eng.index
    assert sorted(ix.documents) == sorted([*SEED_IDS, "kunpeng"])
    assert ix.vectors.ntotal == len(ix.chunks) == ix.manifest.chunks
    assert eng.search("鲲鹏智算产业园", k=1)[0].doc_id == "kunpeng"
    assert idx.verify(index_copy) == []


def test_a_changed_report_tombstones_its_old_rows(index_copy, tmp_path, embedder):
    path = write_report(tmp_path / "in", "changing", "青田石雕文化街区")
    eng = engine_on(index_copy, embedder)
    eng.add([path])
    path.write_text(report("瓯江口数字港", sentences=12), "utf-8")
    change, _ = eng.add([path])
    assert change.replaced == ["changing"]
    segs = manifest(index_copy)["segments"]
    # The old version's one-report segment was wholly removed, so it is no longer named.
    assert [s["name"] for s in segs] == ["gen-000001", "gen-000003"]
    assert not any("青田石雕" in c.text for c in eng.index.chunks)
    assert all(h.doc_id != "changing" or "青田石雕" not in h.text
               for h in eng.search("青田石雕文化街区", k=20))
    assert idx.verify(index_copy) == []


# ---- remove -------------------------------------------------------------------------------------

def test_remove_writes_only_a_manifest_and_the_report_is_never_found(index_copy, embedder,
                                                                     capsys):
    gone = "002_e8d0747b3dfad330"  # 路桥区
    base = index_copy / "gen-000001"
    before = fingerprint(base)
    ix = idx.open_index(index_copy)
    rows = sum(1 for c in ix.chunks if c.doc_id == gone)
    # (under the share of removed rows that would make an automatic compaction rewrite it)
    assert rows <= Settings().removed_share * len(ix.chunks)

    assert main(["index", "remove", gone, "--index", str(index_copy)]) == 0
    assert "removed 002_e8d0747b3dfad330 -> gen-000002" in capsys.readouterr().out
    assert sorted(p.name for p in (index_copy / "gen-000002").iterdir()) == ["manifest.json"]
    assert fingerprint(base) == before
    m = manifest(index_copy)
    assert m["segments"][0]["removed"] == [gone]
    assert m["segments"][0]["removed_chunks"] == rows
    assert (m["documents"], m["chunks"]) == (4, len(ix.chunks) - rows)

    after = idx.open_index(index_copy, embedder)
    assert gone not in after.documents and after.vectors.ntotal == len(after.chunks)
    assert {c.doc_id for c in after.chunks} == set(after.documents)
    searcher = Searcher(after, embedder)
    for query in ("路桥区委全会", "路桥", "台州市路桥区"):
        for mode in ("dense", "lexical", "hybrid"):
            found = searcher.search(query, k=len(after.chunks), mode=mode)
            # (lexical search may find nothing: no other report names 路桥)
            assert found or mode == "lexical", (query, mode)
            assert all(h.doc_id != gone for h in found), (query, mode)
    assert idx.verify(index_copy) == []


def test_removing_most_of_a_segment_compacts_it(index_copy, capsys):
    rows = sum(1 for c in idx.open_index(index_copy).chunks if c.doc_id in SEED_IDS[:3])
    assert main(["index", "remove", *SEED_IDS[:3], "--index", str(index_copy)]) == 0
    # Over a fifth of the segment's rows were removed: it was rewritten without them, in a
    # commit of its own after the removal's.
    assert capsys.readouterr().out.splitlines() == [
        f"removed {', '.join(SEED_IDS[:3])} -> gen-000003",
        f"  compacted segments 1 -> 1; {rows} removed rows dropped"]
    m = manifest(index_copy)
    assert [s["name"] for s in m["segments"]] == ["gen-000003"]
    assert m["segments"][0]["removed"] == []
    rows = store.load_jsonl(index_copy / "gen-000003" / "chunks.jsonl")
    assert {r["doc_id"] for r in rows} == set(SEED_IDS[3:])
    assert sorted(idx.open_index(index_copy).documents) == SEED_IDS[3:]
    assert idx.verify(index_copy) == []


# ---- compaction ---------------------------------------------------------------------------------

def test_compact_merges_into_what_a_fresh_build_is(index_copy, seed_copy, tmp_path, embedder,
                                                   capsys):
    folder = tmp_path / "in"
    added = [write_report(folder, "kunpeng", "鲲鹏智算产业园"),
             write_report(folder, "qingtian", "青田石雕文化街区", 12)]
    eng = engine_on(index_copy, embedder)
    for path in added:
        eng.add([path])
    gone = "001_758a5b4942a02065"
    rows = sum(1 for c in eng.index.chunks if c.doc_id == gone)
    eng.remove([gone])
    assert len(segment_names(index_copy)) == 3

    assert main(["index", "compact", "--index", str(index_copy)]) == 0
    out = capsys.readouterr().out
    assert f"3 segments -> 1 (gen-000005); {rows} removed rows dropped" in out
    m = manifest(index_copy)
    assert [s["name"] for s in m["segments"]] == ["gen-000005"]
    assert m["segments"][0]["removed"] == []
    assert idx.verify(index_copy) == []

    fresh = tmp_path / "fresh"
    docs, errors = load_documents([*(seed_copy / f"{i}.txt" for i in SEED_IDS if i != gone),
                                   *added])
    assert not errors
    idx.build(fresh, docs, embedder, Settings(), [str(folder)])
    compacted, built = idx.open_index(index_copy), idx.open_index(fresh)
    assert compacted.documents.keys() == built.documents.keys()
    assert compacted.lexicon == built.lexicon
    tokens = dict(zip((c.chunk_id for c in compacted.chunks), compacted.tokens, strict=True))
    assert tokens == dict(zip((c.chunk_id for c in built.chunks), built.tokens, strict=True))
    # BM25 sees exactly what it sees after a fresh build: same passages, same scores.
    assert hits(index_copy, embedder, "lexical") == hits(fresh, embedder, "lexical")
    # The vectors are those embedded at add time, row for row. (The packaged int8 model
    # quantises each batch's activations on the fly, so a passage embedded in another batch
    # differs slightly; near-identical test reports can then swap places.)
    ours = dict(zip((c.chunk_id for c in compacted.chunks), compacted.matrix(), strict=True))
    for c, vector in zip(built.chunks, built.matrix(), strict=True):
        assert float(ours[c.chunk_id] @ vector) > 0.99, c.chunk_id

    # A second compaction has nothing to do.
    assert main(["index", "compact", "--index", str(index_copy)]) == 0
    assert "(index not rewritten)" in capsys.readouterr().out


def test_compact_cuts_again_what_an_older_tokenizer_cut(index_copy, capsys):
    """An index written before `tokenize` last changed still searches; `index info` says so,
    and a compaction cuts its BM25 tokens as a fresh build would."""
    data = manifest(index_copy)
    old = lexicon_digest(data["lexicon"], version=1)
    for seg in data["segments"]:
        seg["lexicon"] = old
    path = store.current_generation(index_copy) / "manifest.json"
    path.write_text(json.dumps(data), "utf-8")
    chunks = sum(s["chunks"] for s in data["segments"])

    assert main(["index", "info", "--index", str(index_copy)]) == 0
    assert (f"{chunks} passages keep BM25 tokens cut by an older policyrag; "
            "policyrag index compact cuts them again") in capsys.readouterr().out
    assert main(["search", "招商引资", "--retrieval", "lexical", "--json",
                 "--index", str(index_copy)]) == 0
    assert json.loads(capsys.readouterr().out)["hits"]
    assert main(["index", "compact", "--index", str(index_copy)]) == 0
    assert f"{chunks} rows re-tokenised" in capsys.readouterr().out
    assert [s["lexicon"] for s in manifest(index_copy)["segments"]] == [
        lexicon_digest(data["lexicon"])]
    assert main(["index", "info", "--index", str(index_copy)]) == 0
    assert "older policyrag" not in capsys.readouterr().out


def test_many_adds_compact_the_small_segments_automatically(index_copy, tmp_path, embedder):
    eng = engine_on(index_copy, embedder)
    base = fingerprint(index_copy / "gen-000001")
    limit = Settings().max_segments
    markers = ["大港头码头", "通济堰灌区", "仙都鼎湖峰", "百山祖国家公园", "千峡湖生态区",
               "九龙湿地公园", "古堰画乡", "南明山摩崖", "东西岩景区"]
    counts = []
    for i, marker in enumerate(markers[:limit]):
        eng.add([write_report(tmp_path / "in", f"r{i}", marker, 3)])
        counts.append(len(segment_names(index_copy)))
    # One segment per add until there are more than `limit`; then the smallest are merged.
    assert counts[:limit - 1] == list(range(2, limit + 1))
    assert counts[-1] == limit // 2
    assert segment_names(index_copy)[0] == "gen-000001"
    assert fingerprint(index_copy / "gen-000001") == base  # the big one stays as it was
    ix = eng.index
    assert len(ix.documents) == 5 + limit
    for i, marker in enumerate(markers[:limit]):
        assert eng.search(marker, k=1)[0].doc_id == f"r{i}"
    assert idx.verify(index_copy) == []


# ---- crash safety -------------------------------------------------------------------------------

def answers(root: Path, embedder) -> dict:
    ix = idx.open_index(root, embedder)
    return {"generation": ix.generation.name, "documents": sorted(ix.documents),
            "hits": hits(root, embedder)}


@pytest.mark.slow
def test_compact_killed_at_each_point_leaves_a_working_index(index_copy, tmp_path, embedder):
    eng = engine_on(index_copy, embedder)
    eng.add([write_report(tmp_path / "in", "kunpeng", "鲲鹏智算产业园")])
    eng.remove(["001_758a5b4942a02065"])
    points = store.PAUSE_POINTS
    roots = copies(index_copy, tmp_path, len(points))
    before = answers(roots[0], embedder)
    kill_each_at_its_point(points, roots, lambda root: ["index", "compact", "--index", str(root)])
    for point, root in zip(points, roots, strict=True):
        assert idx.verify(root) == [], point
        now = answers(root, embedder)
        if point == "after_current":
            assert now["generation"] == "gen-000004"
            assert now["documents"] == before["documents"]
            assert len(segment_names(root)) == 1
        else:
            assert now == before, point
        # The next writer cleans up and compacts (or finds nothing left to do).
        done = idx.compact(root, Settings())
        assert leftovers(root) == [] and idx.verify(root) == [], point
        assert len(segment_names(root)) == 1
        assert done.generation == (None if point == "after_current" else "gen-000004")
        assert answers(root, embedder)["hits"] == before["hits"], point


@pytest.mark.slow
def test_add_killed_midway_keeps_every_segment(index_copy, tmp_path, embedder):
    eng = engine_on(index_copy, embedder)
    eng.add([write_report(tmp_path / "in", "first", "鲲鹏智算产业园")])
    before = answers(index_copy, embedder)
    files = {g: fingerprint(index_copy / g) for g in segment_names(index_copy)}
    new = write_report(tmp_path / "in", "second", "青田石雕文化街区")
    w = Writer(["index", "add", str(new), "--index", str(index_copy)], pause_at="mid_write")
    w.wait_for_pause("mid_write")
    w.kill()
    assert answers(index_copy, embedder) == before
    assert {g: fingerprint(index_copy / g) for g in segment_names(index_copy)} == files
    change, _ = eng.add([new])
    assert change.added == ["second"] and change.generation == "gen-000003"
    assert leftovers(index_copy) == [] and idx.verify(index_copy) == []


# ---- verify, old indexes, collection ------------------------------------------------------------

def test_verify_checks_older_segments_and_tombstones(index_copy, tmp_path, embedder):
    eng = engine_on(index_copy, embedder)
    eng.add([write_report(tmp_path / "in", "kunpeng", "鲲鹏智算产业园")])
    eng.remove(["000_e9f0a6d5a56f891f"])
    assert idx.verify(index_copy) == []
    live = store.current_generation(index_copy)
    data = json.loads((live / "manifest.json").read_text("utf-8"))
    data["segments"][0]["removed"].append("no-such-report")
    (live / "manifest.json").write_text(json.dumps(data), "utf-8")
    problems = idx.verify(index_copy)
    assert ("segment gen-000001 tombstones reports it does not hold: no-such-report"
            in problems)

    path = index_copy / "gen-000001" / "vectors.faiss"
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert ("gen-000001/vectors.faiss does not match its checksum in manifest.json "
            "(corrupted or edited)") in idx.verify(index_copy)
    with pytest.raises(idx.IndexDamaged, match="gen-000001/vectors.faiss does not match"):
        idx.open_index(index_copy)

    shutil.rmtree(index_copy / "gen-000001")
    assert "segment gen-000001 is missing (its folder does not exist)" in idx.verify(index_copy)
    with pytest.raises(idx.IndexDamaged, match="segment gen-000001 is missing"):
        idx.open_index(index_copy)


def make_version_1(root: Path) -> None:
    """Turn a one-segment index into what policyrag wrote before segments."""
    gen = store.current_generation(root)
    data = json.loads((gen / "manifest.json").read_text("utf-8"))
    seg = data.pop("segments")[0]
    docs = store.load_jsonl(gen / "documents.jsonl")
    for row in docs:
        del row["chunks"]
    (gen / "documents.jsonl").write_bytes(store.dump_jsonl(docs))
    from policyrag.index.checksum import file_checksum

    data["checksums"] = {**seg["checksums"],
                         "documents.jsonl": file_checksum(gen / "documents.jsonl")}
    data["sizes"] = {**seg["sizes"], "documents.jsonl": (gen / "documents.jsonl").stat().st_size}
    data["format_version"] = 1
    (gen / "manifest.json").write_text(json.dumps(data), "utf-8")


def test_an_index_from_before_segments_opens_and_takes_changes(index_copy, tmp_path, embedder):
    before = hits(index_copy, embedder)
    make_version_1(index_copy)
    assert idx.verify(index_copy) == []
    assert hits(index_copy, embedder) == before
    eng = engine_on(index_copy, embedder)
    eng.add([write_report(tmp_path / "in", "kunpeng", "鲲鹏智算产业园")])
    eng.remove(["003_44711a7aea527f8e"])
    m = manifest(index_copy)
    assert m["format_version"] == 2
    assert [s["name"] for s in m["segments"]] == ["gen-000001", "gen-000002"]
    assert m["segments"][0]["removed_chunks"] > 0  # counted from its chunk store
    assert idx.verify(index_copy) == []
    assert "003_44711a7aea527f8e" not in eng.index.documents
    assert eng.search("鲲鹏智算产业园", k=1)[0].doc_id == "kunpeng"


def test_old_generations_are_collected_but_not_the_segments_in_use(index_copy, tmp_path,
                                                                    embedder, capsys):
    eng = engine_on(index_copy, embedder)
    for i, marker in enumerate(["大港头码头", "通济堰灌区", "仙都鼎湖峰"]):
        eng.add([write_report(tmp_path / "in", f"r{i}", marker, 3)])
    # gen-000004 is live, gen-000003 the one before (generations_kept = 2); the first two
    # stay for their segments only, no longer states to go back to.
    assert segment_names(index_copy) == [f"gen-{i:06d}" for i in range(1, 5)]
    assert not (index_copy / "gen-000001" / "manifest.json").exists()
    assert not (index_copy / "gen-000002" / "manifest.json").exists()
    assert (index_copy / "gen-000003" / "manifest.json").exists()
    assert idx.verify(index_copy) == []
    assert main(["index", "rebuild", "--from", "gen-000001", "--index", str(index_copy)]) == 2
    assert "there are: gen-000003, gen-000004" in capsys.readouterr().err
    assert main(["index", "rebuild", "--from", "gen-000003", "--index", str(index_copy)]) == 0
    capsys.readouterr()
    assert sorted(idx.open_index(index_copy).documents) == sorted([*SEED_IDS, "r0", "r1"])


@pytest.mark.slow
def test_readers_see_whole_snapshots_while_adds_compact_and_collect(index_copy, tmp_path,
                                                                    embedder):
    """Readers loop while a writer adds past the segment limit (so an automatic compaction
    runs and old generations are collected, some of them keeping only their segment)."""
    from tests.test_crash_safety import watch_writer

    n = Settings().max_segments + 2
    files = [str(write_report(tmp_path / "in", f"s{i}", marker, 3)) for i, marker in
             enumerate(["大港头码头", "通济堰灌区", "仙都鼎湖峰", "百山祖国家公园", "千峡湖生态区",
                        "九龙湿地公园", "古堰画乡", "南明山摩崖", "东西岩景区", "白云山公园"][:n])]
    writer, seen, _, out, err = watch_writer(index_copy, files, embedder)
    assert writer.returncode == 0, err
    assert out.count("committed") == n
    final = idx.open_index(index_copy)
    assert len(final.documents) == 5 + n
    assert len(segment_names(index_copy)) <= Settings().max_segments
    # a compaction commit came in between (n adds, more than n generations)
    assert int(final.generation.name[4:]) > 1 + n
    assert idx.verify(index_copy) == []
    assert len(seen) >= 3, seen


def same_index(a: idx.Index, b: idx.Index) -> None:
    assert a.generation == b.generation
    assert list(a.documents) == list(b.documents) and a.documents == b.documents
    assert [c.chunk_id for c in a.chunks] == [c.chunk_id for c in b.chunks]
    assert a.tokens == b.tokens
    assert (a.matrix() == b.matrix()).all()


def test_reopening_after_a_change_reads_only_what_changed(index_copy, tmp_path, embedder,
                                                          monkeypatch):
    eng = engine_on(index_copy, embedder)
    assert eng.search("招商引资", k=3)
    read: list[str] = []
    real = store.load_jsonl
    monkeypatch.setattr(store, "load_jsonl",
                        lambda path: read.append(f"{path.parent.name}/{path.name}") or real(path))
    idx.add(index_copy, [*load_documents([write_report(tmp_path / "in", "kunpeng",
                                                       "鲲鹏智算产业园")])[0]],
            embedder, Settings())
    read.clear()
    reopened = eng.index  # the engine sees the new generation and reopens
    assert sorted(read) == ["gen-000002/chunks.jsonl", "gen-000002/documents.jsonl"]
    same_index(reopened, idx.open_index(index_copy))
    assert eng.search("鲲鹏智算产业园", k=1)[0].doc_id == "kunpeng"

    eng.remove(["002_e8d0747b3dfad330"])  # a tombstone in a segment it holds: nothing to read
    read.clear()
    reopened = eng.index
    assert read == []
    same_index(reopened, idx.open_index(index_copy))
    assert all(h.doc_id != "002_e8d0747b3dfad330" for h in eng.search("路桥区委全会", k=20))


def test_automatic_compaction_merges_small_segments_and_leaves_full_ones_alone():
    from policyrag.index.segments import Segment, to_merge

    full = [Segment(f"gen-{i:06d}", documents=10, chunks=50_000) for i in range(12)]
    small = [Segment(f"gen-1{i:05d}", documents=1, chunks=10 + i) for i in range(9)]
    chosen = to_merge(full + small, max_segments=8, removed_share=0.2, full=50_000)
    # Twelve segments of a streamed build are not merged because they are many; the nine
    # small adds after them are, smallest first, down to half the limit.
    assert chosen and set(chosen) <= {s.name for s in small}
    assert len(chosen) == 9 - 8 // 2 + 1
    # A full segment that lost most of its rows is still rewritten.
    full[0].removed, full[0].removed_chunks = ["x"], 30_000
    assert full[0].name in to_merge(full, 8, 0.2, full=50_000)
