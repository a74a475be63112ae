"""Index lifecycle with the real default model and real FAISS: add, remove, rebuild, verify.

Writable indexes here are copies of the session index (`index_dir`), which is much faster than
building one per test; the embedder is the session's, wrapped to count what it embeds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from policyrag.cli import main
from policyrag.config import Settings
from policyrag.engine import Engine
from policyrag.index import lifecycle as idx
from policyrag.index import store
from policyrag.ingest.chunking import chunk_text
from policyrag.ingest.documents import load_documents
from tests import conftest

SEED_IDS = ["000_e9f0a6d5a56f891f", "001_758a5b4942a02065", "002_e8d0747b3dfad330",
            "003_44711a7aea527f8e", "004_c93a4296dfa4c8a6"]


class CountingEmbedder:
    """The real embedder, counting the passages it is asked to embed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.passages = 0

    @property
    def revision(self) -> str:
        return self.inner.revision

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def max_chars(self) -> int:
        return self.inner.max_chars

    def encode(self, texts, kind="passage", batch_size=32, progress=False):
        if kind == "passage":
            self.passages += len(texts)
        return self.inner.encode(texts, kind, batch_size, progress)


def report(marker: str, sentences: int = 8) -> str:
    return conftest.report(marker, sentences, ",形成可复制可推广的经验")


@pytest.fixture
def counting(embedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


def engine_on(root: Path, emb) -> Engine:
    eng = Engine(root)
    eng._embedder = emb
    return eng


def chunks_of(eng: Engine, doc_id: str) -> list:
    return [c for c in eng.index.chunks if c.doc_id == doc_id]


def expected_chunks(path: Path, emb) -> int:
    docs, errors = load_documents([path])
    assert not errors
    s = Settings()
    return len(chunk_text(docs[0].doc_id, docs[0].text, min(s.chunk_max_chars, emb.max_chars),
                          s.chunk_overlap_chars))


def generations(root: Path) -> list[str]:
    return [g.name for g in store.generations(root)]


# ---- add -----------------------------------------------------------------------------------

def test_add_embeds_only_new_documents(index_copy, seed_copy, counting, tmp_path):
    new = tmp_path / "new_report.txt"
    new.write_text(report("鲲鹏智算产业园"), "utf-8")
    eng = engine_on(index_copy, counting)
    change, errors = eng.add([seed_copy, new])
    assert not errors
    assert change.added == ["new_report"]
    assert sorted(change.unchanged) == SEED_IDS
    assert change.replaced == [] and change.duplicates == []
    # Only the new report's chunks were embedded, none of the five seeds'.
    assert counting.passages == expected_chunks(new, counting) > 0
    assert eng.index.manifest.documents == 6
    assert eng.search("鲲鹏智算产业园", k=1)[0].doc_id == "new_report"
    assert idx.verify(index_copy) == []


def test_re_adding_the_same_file_is_a_no_op(index_copy, counting, tmp_path):
    new = tmp_path / "again.txt"
    new.write_text(report("白鹭湾未来社区"), "utf-8")
    eng = engine_on(index_copy, counting)
    first, _ = eng.add([new])
    assert first.added == ["again"] and first.generation
    gens, current = generations(index_copy), store.read_current(index_copy)
    embedded = counting.passages
    second, errors = eng.add([new])
    assert not errors
    assert second.unchanged == ["again"] and second.generation is None
    assert second.added == second.replaced == []
    assert counting.passages == embedded  # nothing embedded
    assert generations(index_copy) == gens and store.read_current(index_copy) == current


def test_changed_file_replaces_its_old_chunks(index_copy, counting, tmp_path):
    path = tmp_path / "changing.txt"
    path.write_text(report("青田石雕文化街区"), "utf-8")
    eng = engine_on(index_copy, counting)
    eng.add([path])
    before = len(eng.index.chunks)
    old_count = len(chunks_of(eng, "changing"))
    assert eng.search("青田石雕文化街区", k=1)[0].doc_id == "changing"

    path.write_text(report("瓯江口数字港", sentences=14), "utf-8")
    counting.passages = 0
    change, _ = eng.add([path])
    assert change.replaced == ["changing"] and change.added == []
    new_chunks = chunks_of(eng, "changing")
    assert counting.passages == len(new_chunks) == expected_chunks(path, counting)
    assert len(eng.index.chunks) == before - old_count + len(new_chunks)
    # The old text is gone from every part of the index, the new one is found.
    assert not any("青田石雕" in c.text for c in eng.index.chunks)
    assert "青田石雕" not in eng.index.documents["changing"].text
    assert all(h.doc_id != "changing" for h in eng.search("青田石雕文化街区", k=5))
    assert eng.search("瓯江口数字港", k=1)[0].doc_id == "changing"
    assert len(eng.index.documents) == 6
    assert idx.verify(index_copy) == []


def test_same_name_in_another_folder_is_a_new_report(index_copy, counting, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "notice.txt").write_text(report("松阳茶香小镇"), "utf-8")
    (tmp_path / "b" / "notice.txt").write_text(report("缙云烧饼产业"), "utf-8")
    eng = engine_on(index_copy, counting)
    first, _ = eng.add([tmp_path / "a" / "notice.txt"])
    second, _ = eng.add([tmp_path / "b" / "notice.txt"])
    assert first.added == ["notice"]
    assert len(second.added) == 1 and second.added[0].startswith("notice-")
    assert second.replaced == []
    assert eng.search("松阳茶香小镇", k=1)[0].doc_id == "notice"
    assert eng.search("缙云烧饼产业", k=1)[0].doc_id == second.added[0]


def test_add_to_a_missing_index_creates_it(tmp_path, counting):
    root = tmp_path / "brand-new" / "index"
    path = tmp_path / "first.txt"
    path.write_text(report("遂昌金矿遗址公园"), "utf-8")
    eng = engine_on(root, counting)
    change, errors = eng.add([path])
    assert not errors and change.added == ["first"]
    assert store.read_current(root) == "gen-000001"
    assert idx.verify(root) == []
    assert eng.search("遂昌金矿遗址公园", k=1)[0].doc_id == "first"


def test_cli_add_reports_what_it_did(index_copy, seed_copy, tmp_path, capsys):
    new = tmp_path / "cli_new.txt"
    new.write_text(report("庆元香菇市场"), "utf-8")
    assert main(["index", "add", str(new), str(seed_copy), "--index", str(index_copy)]) == 0
    out = capsys.readouterr().out
    assert "added 1, replaced 0, unchanged 5, duplicates 0 -> gen-000002" in out
    assert "added     cli_new" in out
    assert main(["index", "add", str(new), "--index", str(index_copy)]) == 0
    assert "(index not rewritten)" in capsys.readouterr().out


# ---- remove ----------------------------------------------------------------------------------

def test_remove_by_doc_id_and_by_path(index_copy, seed_copy, counting, monkeypatch):
    eng = engine_on(index_copy, counting)
    # A relative path works as well as the doc_id.
    monkeypatch.chdir(seed_copy.parent)
    relative = Path(seed_copy.name) / "002_e8d0747b3dfad330.txt"
    change = eng.remove(["000_e9f0a6d5a56f891f", str(relative)])
    assert change.removed == ["000_e9f0a6d5a56f891f", "002_e8d0747b3dfad330"]
    assert counting.passages == 0  # removing embeds nothing
    ix = eng.index
    assert sorted(ix.documents) == [SEED_IDS[1], SEED_IDS[3], SEED_IDS[4]]
    assert {c.doc_id for c in ix.chunks} == set(ix.documents)
    assert ix.vectors.ntotal == len(ix.chunks)
    hits = eng.search("路桥", k=10)
    assert hits and all(h.doc_id not in change.removed for h in hits)
    assert idx.verify(index_copy) == []


def test_remove_by_the_path_of_a_file_that_is_gone(index_copy, counting, tmp_path,
                                                   monkeypatch):
    path = tmp_path / "gone.txt"
    path.write_text(report("大洋山森林公园"), "utf-8")
    eng = engine_on(index_copy, counting)
    eng.add([path])
    path.unlink()
    monkeypatch.chdir(tmp_path)
    assert eng.remove(["gone.txt"]).removed == ["gone"]
    assert sorted(eng.index.documents) == SEED_IDS


def test_remove_of_an_unknown_report_changes_nothing(index_copy, capsys):
    current = store.read_current(index_copy)
    code = main(["index", "remove", "000_e9f0a6d5a56f891f", "no-such-report",
                 "--index", str(index_copy)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"policyrag: error: no report 'no-such-report' in {index_copy} (nothing was removed)" \
        in err
    assert "Traceback" not in err
    assert store.read_current(index_copy) == current
    assert len(idx.open_index(index_copy).documents) == 5


# ---- rebuild ---------------------------------------------------------------------------------

def test_rebuild_keeps_reports_whose_source_vanished(tmp_path, seeds_dir, embedder, capsys):
    src = tmp_path / "reports"
    src.mkdir()
    for name in SEED_IDS[:3]:
        shutil.copy(seeds_dir / f"{name}.txt", src)
    root = tmp_path / "index"
    eng = engine_on(root, embedder)
    eng.build([src])
    stored = eng.index.documents
    gone = src / f"{SEED_IDS[0]}.txt"
    gone.unlink()
    changed = src / f"{SEED_IDS[1]}.txt"
    changed.write_text(changed.read_text("utf-8") + "\n会议还研究部署了龙泉青瓷传承工作。\n",
                       "utf-8")

    code = main(["index", "rebuild", "--index", str(root)])
    captured = capsys.readouterr()
    assert code == 0
    assert "1 kept from stored text (source files gone or unreadable)" in captured.out
    assert (f"kept {gone}: no such file; kept report '{SEED_IDS[0]}' from the text stored in "
            "the index") in captured.err

    ix = idx.open_index(root)
    assert sorted(ix.documents) == SEED_IDS[:3]  # nothing lost, doc_ids kept
    assert ix.documents[SEED_IDS[0]].text == stored[SEED_IDS[0]].text
    assert "龙泉青瓷" in ix.documents[SEED_IDS[1]].text  # re-read from its source
    assert ix.documents[SEED_IDS[2]].text == stored[SEED_IDS[2]].text
    assert idx.verify(root) == []
    assert {c.doc_id for c in ix.chunks} == set(SEED_IDS[:3])


def test_rebuild_repairs_a_damaged_index(index_copy, embedder):
    gen = store.current_generation(index_copy)
    (gen / "vectors.faiss").write_bytes(b"garbage")
    with pytest.raises(idx.IndexDamaged):
        idx.open_index(index_copy)
    eng = engine_on(index_copy, embedder)
    eng.rebuild()
    assert idx.verify(index_copy) == []
    assert sorted(idx.open_index(index_copy).documents) == SEED_IDS


def test_missing_index_commands_say_how_to_build(tmp_path, capsys):
    root = tmp_path / "nothing-here"
    for argv in (["index", "info"], ["index", "verify"], ["index", "rebuild"],
                 ["index", "remove", "x"], ["search", "招商引资"]):
        assert main([*argv, "--index", str(root)]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"policyrag: error: no index at {root}; build one with: "
                              f"policyrag index build [PATHS...] --index {root}"), argv
        assert "Traceback" not in err
    assert not root.exists()  # reading commands leave no folder behind


# ---- verify ----------------------------------------------------------------------------------

def _manifest(gen: Path) -> dict:
    return json.loads((gen / "manifest.json").read_text("utf-8"))


def _truncate_vectors(gen: Path) -> list[str]:
    path = gen / "vectors.faiss"
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.truncate(size // 2)
    return [f"vectors.faiss is {size // 2} bytes, manifest.json says {size} "
            "(truncated or overwritten)",
            "vectors.faiss cannot be read by FAISS (truncated or corrupted)"]


def _corrupt_vectors(gen: Path) -> list[str]:
    path = gen / "vectors.faiss"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # a byte inside the last vector: same size, still readable
    path.write_bytes(bytes(data))
    return ["vectors.faiss does not match its checksum in manifest.json (corrupted or edited)"]


def _edit_chunk_store(gen: Path) -> list[str]:
    path = gen / "chunks.jsonl"
    rows = store.load_jsonl(path)
    text = rows[3]["text"]
    rows[3]["text"] = text.replace(text[0], "乙" if text[0] != "乙" else "甲", 1)
    path.write_bytes(store.dump_jsonl(rows))  # same length in UTF-8, so same size
    return ["chunks.jsonl does not match its checksum in manifest.json (corrupted or edited)",
            f"chunk {rows[3]['chunk_id']} does not match its document's text at its offsets "
            "(chunk store edited?)"]


def _wrong_counts(gen: Path) -> list[str]:
    m = _manifest(gen)
    real_chunks, real_docs = m["chunks"], m["documents"]
    m["chunks"], m["documents"] = real_chunks - 1, real_docs + 1
    (gen / "manifest.json").write_text(json.dumps(m), "utf-8")
    return [f"vectors.faiss holds {real_chunks} vectors, manifest.json says {real_chunks - 1} "
            "chunks",
            f"chunks.jsonl has {real_chunks} chunks, manifest.json says {real_chunks - 1}",
            f"documents.jsonl has {real_docs} documents, manifest.json says {real_docs + 1}"]


def _missing_file(gen: Path) -> list[str]:
    (gen / "documents.jsonl").unlink()
    return ["documents.jsonl is missing"]


def _missing_manifest(gen: Path) -> list[str]:
    (gen / "manifest.json").unlink()
    return ["manifest.json is missing"]


def _missing_generation(gen: Path) -> list[str]:
    shutil.rmtree(gen)
    return [f"CURRENT names {gen.name}, which does not exist"]


DAMAGE = {
    "truncated vectors": _truncate_vectors,
    "corrupted vectors": _corrupt_vectors,
    "chunk store edited": _edit_chunk_store,
    "manifest counts wrong": _wrong_counts,
    "missing file": _missing_file,
    "missing manifest": _missing_manifest,
    "missing generation": _missing_generation,
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_verify_names_exactly_what_is_wrong(index_copy, damage, capsys):
    assert main(["index", "verify", "--index", str(index_copy)]) == 0
    assert "OK (vectors, chunk store and manifest agree)" in capsys.readouterr().out
    expected = DAMAGE[damage](store.current_generation(index_copy))
    assert idx.verify(index_copy) == expected
    code = main(["index", "verify", "--index", str(index_copy)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out.splitlines() == [f"problem: {p}" for p in expected]
    count = f"{len(expected)} problem" + ("s" if len(expected) != 1 else "")
    assert captured.err == (f"policyrag: error: {index_copy} failed verification "
                            f"({count}); repair with: policyrag index rebuild "
                            f"--index {index_copy}\n")


def test_verify_with_another_model_says_so(index_copy, embedder):
    other = CountingEmbedder(embedder)
    other.name = "other-model"
    problems = idx.verify(index_copy, other)
    assert len(problems) == 1
    assert problems[0].startswith(f"{index_copy} was built with model 'packaged:use-multilingual'"
                                  " (512 dims); it cannot be searched with 'other-model'")


# ---- a running engine sees other processes' changes -----------------------------------------

def test_running_engine_sees_additions_from_another_process(index_copy, embedder, tmp_path):
    eng = engine_on(index_copy, embedder)
    assert all(h.doc_id in SEED_IDS for h in eng.search("景宁畲族风情", k=3))
    opened = eng.index.generation
    new = tmp_path / "from_elsewhere.txt"
    new.write_text(report("景宁畲族风情旅游区"), "utf-8")
    done = subprocess.run([sys.executable, "-m", "policyrag", "index", "add", str(new),
                           "--index", str(index_copy)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    # The same Engine object, not restarted, answers from the new generation.
    assert eng.search("景宁畲族风情旅游区", k=1)[0].doc_id == "from_elsewhere"
    assert eng.index.generation != opened
    assert len(eng.index.documents) == 6
