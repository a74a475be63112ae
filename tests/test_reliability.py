"""Nothing lost, nothing silently wrong (issue 13): damaged generations, duplicate doc_ids,
corruption that keeps a file's size, a full disk, edited manifests, odd entries in folders.
Real model, real FAISS, the real command line."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from policyrag.cli import main
from policyrag.index import lifecycle as idx
from policyrag.index import store
from tests.conftest import report

SEED_IDS = ["000_e9f0a6d5a56f891f", "001_758a5b4942a02065", "002_e8d0747b3dfad330",
            "003_44711a7aea527f8e", "004_c93a4296dfa4c8a6"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Verified-checksum records of these tests stay in their own folder."""
    monkeypatch.setenv("POLICYRAG_CACHE_DIR", str(tmp_path / "cache"))


def generations(root: Path) -> list[str]:
    return [g.name for g in store.generations(root)]


# ---- 1. a rebuild over a damaged generation ---------------------------------------------------

@pytest.fixture
def two_generations(tmp_path, seeds_dir, capsys) -> tuple[Path, Path]:
    """gen-000001 with 2 reports, then gen-000002 with all 5 (the live one)."""
    src = tmp_path / "reports"
    src.mkdir()
    for name in SEED_IDS[:2]:
        shutil.copy(seeds_dir / f"{name}.txt", src)
    root = tmp_path / "index"
    assert main(["index", "build", str(src), "--index", str(root)]) == 0
    for name in SEED_IDS[2:]:
        shutil.copy(seeds_dir / f"{name}.txt", src)
    assert main(["index", "add", str(src), "--index", str(root)]) == 0
    capsys.readouterr()
    assert generations(root) == ["gen-000001", "gen-000002"]
    return root, src


def break_line(gen: Path, number: int) -> dict:
    """Make one line of the document store unparsable; return the report it held."""
    path = gen / "documents.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    row = json.loads(lines[number - 1])
    lines[number - 1] = b'{"doc_id": "' + row["doc_id"].encode() + b'", "text": "\xe5\n'
    path.write_bytes(b"".join(lines))
    return row


def test_rebuild_over_a_broken_document_store_repairs_it_from_recorded_sources(
        two_generations, capsys):
    root, _ = two_generations
    lost = break_line(root / "gen-000002", 3)
    code = main(["index", "rebuild", "--index", str(root)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "documents.jsonl line 3 is not valid JSON" in captured.err  # the damage is named
    assert lost["doc_id"] in captured.err  # and what was re-read from its source
    ix = idx.open_index(root)
    assert sorted(ix.documents) == SEED_IDS  # 5 reports, not the 2 of gen-000001
    assert ix.documents[lost["doc_id"]].source == lost["source"]
    assert idx.verify(root) == []
    # After damage nothing is collected: the damaged generation and the one before stay.
    assert generations(root) == ["gen-000001", "gen-000002", "gen-000003"]


def test_rebuild_refuses_when_a_broken_document_store_would_lose_reports(two_generations,
                                                                         capsys):
    root, _ = two_generations
    lost = break_line(root / "gen-000002", 3)
    Path(lost["source"]).unlink()  # its source is gone too: it cannot be re-read
    code = main(["index", "rebuild", "--index", str(root)])
    err = capsys.readouterr().err
    assert code == 2
    assert "documents.jsonl line 3 is not valid JSON" in err
    assert f"1 report(s) ({lost['doc_id']}) cannot be re-read" in err
    assert "nothing was changed" in err
    assert "gen-000001 (2 reports)" in err and "policyrag index rebuild --from GENERATION" in err
    assert store.read_current(root) == "gen-000002"
    assert generations(root) == ["gen-000001", "gen-000002"]
    # Falling back to the older generation is there, but only when asked for by name.
    assert main(["index", "rebuild", "--from", "gen-000001", "--index", str(root)]) == 0
    assert "rebuilt from gen-000001 as asked" in capsys.readouterr().err
    assert sorted(idx.open_index(root).documents) == SEED_IDS[:2]
    assert generations(root) == ["gen-000001", "gen-000002", "gen-000003"]


# ---- 2. the same doc_id in two files' front matter --------------------------------------------

def front_matter_report(doc_id: str, marker: str) -> str:
    return f"---\ndoc_id: {doc_id}\ntitle: {marker}会议\n---\n" + report(marker)


def test_same_front_matter_doc_id_gets_distinct_ids_and_says_so(tmp_path, capsys):
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "a.md").write_text(front_matter_report("same", "龙泉宝剑小镇"), "utf-8")
    (folder / "b.md").write_text(front_matter_report("same", "庆元廊桥博物馆"), "utf-8")
    root = tmp_path / "index"
    assert main(["index", "build", str(folder), "--index", str(root)]) == 0
    err = capsys.readouterr().err
    note = next(line for line in err.splitlines() if line.startswith("note: "))
    assert note.startswith(f"note: {folder / 'b.md'}: doc_id 'same' is already that of "
                           f"{folder / 'a.md'}; indexed as 'same-")
    ix = idx.open_index(root)
    assert len(ix.documents) == 2 and "same" in ix.documents
    assert idx.verify(root) == []
    b_id = next(i for i in ix.documents if i != "same")
    assert note.endswith(f"indexed as {b_id!r}")
    assert ix.documents[b_id].source == str(folder / "b.md")
    assert ix.documents["same"].source == str(folder / "a.md")
    # A later add with that id again is told the same way.
    (folder / "c.md").write_text(front_matter_report("same", "遂昌金矿公园"), "utf-8")
    assert main(["index", "add", str(folder / "c.md"), "--index", str(root)]) == 0
    err = capsys.readouterr().err
    assert f"{folder / 'c.md'}: doc_id 'same' is already that of {folder / 'a.md'}" in err
    assert len(idx.open_index(root).documents) == 3 and idx.verify(root) == []


# ---- 3. corruption that keeps the size --------------------------------------------------------

def flip_inside_vectors(gen: Path, keep_mtime: bool) -> None:
    path = gen / "vectors.faiss"
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # a byte inside the last vector: same size, FAISS still reads it
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("keep_mtime", [False, True], ids=["plain edit", "mtime set back"])
def test_flipped_bytes_in_the_vectors_are_refused_on_open(index_copy, keep_mtime, capsys):
    idx.open_index(index_copy)  # a verified open: its result is remembered
    gen = store.current_generation(index_copy)
    flip_inside_vectors(gen, keep_mtime)
    with pytest.raises(idx.IndexDamaged) as exc:
        idx.open_index(index_copy)
    message = str(exc.value)
    assert ("vectors.faiss does not match its checksum in manifest.json (corrupted or edited "
            "in place)") in message
    assert f"Repair it with: policyrag index rebuild --index {index_copy}" in message
    assert main(["search", "招商引资", "--index", str(index_copy)]) == 2
    assert "vectors.faiss does not match its checksum" in capsys.readouterr().err
    assert main(["index", "verify", "--index", str(index_copy)]) == 2


def test_a_warm_open_does_not_read_the_files_again(index_copy, monkeypatch):
    from policyrag.index import checksum

    idx.open_index(index_copy)
    hashed: list[Path] = []
    real = checksum.file_checksum
    monkeypatch.setattr(checksum, "file_checksum", lambda p: hashed.append(p) or real(p))
    idx.open_index(index_copy)
    assert hashed == []
    # verify always reads everything.
    assert idx.verify(index_copy) == []
    assert len(hashed) == 3


# ---- 8. a full disk ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["add", "build"])
def test_a_full_disk_is_one_line_and_the_index_stays(index_copy, tmp_path, monkeypatch, capsys,
                                                     command):
    """A real full disk cannot be made here, so the function every index file is written
    through raises OSError(ENOSPC), as the kernel does when a write finds no space."""
    new = tmp_path / "new.txt"
    new.write_text(report("松阳老街修缮"), "utf-8")
    live = store.read_current(index_copy)

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(store, "write_file_durably", full)
    code = main(["index", command, str(new), "--index", str(index_copy)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("policyrag: error: the disk is full: no space left on the device "
                          f"holding {index_copy}/")
    assert f"the previous index ({live}) is intact and still live" in err
    monkeypatch.undo()
    assert store.read_current(index_copy) == live
    assert not list(index_copy.glob(".tmp-*"))  # the half-written generation is gone
    assert sorted(idx.open_index(index_copy).documents) == SEED_IDS


# ---- 9. precise messages ----------------------------------------------------------------------

def test_an_edited_dimension_names_the_file_and_the_fix(index_copy, capsys):
    gen = store.current_generation(index_copy)
    m = json.loads((gen / "manifest.json").read_text("utf-8"))
    m["dim"] = 384
    (gen / "manifest.json").write_text(json.dumps(m), "utf-8")
    assert main(["search", "招商引资", "--index", str(index_copy)]) == 2
    err = capsys.readouterr().err
    assert "vectors.faiss holds 512-dim vectors, manifest.json says 384" in err
    assert f"policyrag index rebuild --index {index_copy}" in err
    assert "was built with model" not in err  # not another model: an edited file


def test_an_empty_current_names_the_file_and_the_fix(index_copy, capsys):
    (index_copy / "CURRENT").write_text("", "utf-8")
    assert main(["search", "招商引资", "--index", str(index_copy)]) == 2
    err = capsys.readouterr().err
    assert f"{index_copy / 'CURRENT'} is empty" in err
    assert f"policyrag index rebuild --index {index_copy}" in err
    assert "no index at" not in err
    assert main(["index", "verify", "--index", str(index_copy)]) == 2
    assert f"problem: {index_copy / 'CURRENT'} is empty" in capsys.readouterr().out
    assert main(["index", "rebuild", "--index", str(index_copy)]) == 0
    assert "was empty; rebuilt from gen-000001" in capsys.readouterr().err
    assert store.read_current(index_copy) == "gen-000002"
    assert generations(index_copy) == ["gen-000001", "gen-000002"]
    assert sorted(idx.open_index(index_copy).documents) == SEED_IDS


@pytest.fixture
def no_hub(monkeypatch) -> list[str]:
    """Records every attempt to load a sentence-transformers model (a hub lookup for a name
    that is not a folder), and fails it as an offline machine would."""
    import sentence_transformers

    tried: list[str] = []

    def offline(name, *args, **kwargs):
        tried.append(name)
        raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {name}")

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", offline)
    return tried


def test_a_bogus_model_name_is_refused_without_a_hub_lookup(index_copy, no_hub, capsys):
    code = main(["search", "招商引资", "--index", str(index_copy), "--model", "no-such-model"])
    err = capsys.readouterr().err
    assert code == 2
    assert no_hub == []
    assert err.startswith("policyrag: error: no model 'no-such-model': it is not a local "
                          "folder")
    assert "packaged:use-multilingual" in err


def test_a_hub_id_without_a_local_folder_says_it_tried_the_hub(index_copy, no_hub, capsys):
    code = main(["search", "招商引资", "--index", str(index_copy), "--model", "someorg/nothing"])
    err = capsys.readouterr().err
    assert code == 2
    assert no_hub == ["someorg/nothing"]
    assert ("'someorg/nothing' is not a local folder, so it was looked up on the Hugging Face "
            "hub, which failed") in err


# ---- 10. odd entries and odd names in an input folder -----------------------------------------

def test_links_loops_and_pipes_in_a_folder_are_each_named_once(index_copy, tmp_path, capsys):
    folder = tmp_path / "reports"
    (folder / "sub").mkdir(parents=True)
    (folder / "good.txt").write_text(report("景宁畲乡"), "utf-8")
    (folder / "loop.txt").symlink_to("loop.txt")
    (folder / "broken.txt").symlink_to("nowhere.txt")
    os.mkfifo(folder / "pipe.txt")
    (folder / "sub" / "up").symlink_to("..", target_is_directory=True)
    code = main(["index", "add", str(folder), str(folder / "good.txt"), "--index",
                 str(index_copy)])
    err = capsys.readouterr().err.splitlines()
    assert code == 1  # files were skipped
    expected = {
        "loop.txt": "is a symbolic link loop; skipped",
        "broken.txt": "is a broken symbolic link (its target does not exist); skipped",
        "pipe.txt": "is a named pipe (FIFO), not a file; skipped",
        "sub/up": "is a link to a folder, which is not followed; skipped (name the folder "
                  "itself to index it)",
    }
    for name, why in expected.items():
        assert [line for line in err if f"{folder / name}:" in line] == [
            f"skipped {folder / name}: {why}"]
    assert len(err) == len(expected)
    assert "good" in idx.open_index(index_copy).documents


def test_a_newline_in_a_file_name_is_printed_quoted(index_copy, tmp_path, capsys):
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "two\nlines.txt").write_text(report("青田石雕"), "utf-8")
    (folder / "empty\nfile.txt").write_bytes(b"")
    assert main(["index", "add", str(folder), "--index", str(index_copy)]) == 1
    captured = capsys.readouterr()
    assert "  added     'two\\nlines'" in captured.out.splitlines()
    empty = str(folder / "empty\nfile.txt")
    assert "\\n" in repr(empty)
    assert captured.err.splitlines() == [f"skipped {empty!r}: is empty (0 bytes)"]
    assert all(line.startswith(("added ", "  added ")) for line in captured.out.splitlines())
