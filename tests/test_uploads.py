"""The web UI's library (issue 13): upload limits, staging, same-name uploads, no server paths
in what the page and the API show, no `{"error": null}`. Real engine, real model, real server
(through HTTP, no browser)."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from tests import ui_helpers as ui  # before gradio is imported: sets the environment it reads
from tests.conftest import report

pytest.importorskip("gradio")

from policyrag import app, uploads  # noqa: E402
from policyrag.config import Settings  # noqa: E402
from policyrag.engine import Engine  # noqa: E402
from policyrag.index.store import IndexLocked, writer_lock  # noqa: E402

SUFFIXES = app.UPLOAD_SUFFIXES


@pytest.fixture
def engine(index_copy, embedder) -> Engine:
    eng = Engine(index_copy)
    eng._embedder = embedder
    return eng


def stored(engine: Engine) -> list[str]:
    """Every file under the uploads folder, staging included, relative to it."""
    root = uploads.uploads_dir(engine)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def upload(tmp_path: Path, folder: str, name: str, text: str) -> Path:
    """What Gradio hands the handler: the server's own temporary copy of the file."""
    path = tmp_path / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


# ---- 5. size limit --------------------------------------------------------------------------

def test_an_upload_over_the_size_limit_is_refused_before_it_is_read(engine, tmp_path,
                                                                    monkeypatch):
    big = tmp_path / "big.txt"
    with big.open("wb") as fh:
        fh.truncate(21_000_000)  # sparse: 21 MB on paper, nothing on disk
    opened: list[Path] = []
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: opened.append(self) or
                        real_open(self, *a, **k))
    done = uploads.add_uploads(engine, [big], SUFFIXES)
    monkeypatch.undo()
    assert done.refused == ["big.txt: 21 MB, over the 20 MB limit for one upload (a server "
                            "setting: POLICYRAG_UPLOAD_MAX_MB)"]
    assert big not in opened and done.change is None
    assert stored(engine) == []
    text = app.upload_summary(done)
    assert "Nothing new was added." in text and "over the 20 MB limit" in text


def test_the_upload_limit_is_a_setting(monkeypatch):
    assert Settings().upload_max_bytes == 20_000_000
    monkeypatch.setenv("POLICYRAG_UPLOAD_MAX_MB", "0.5")
    assert Settings().upload_max_bytes == 500_000


# ---- 6. staging, same names, nothing left behind ----------------------------------------------

def test_same_name_uploads_are_kept_apart_and_nothing_rejected_stays(engine, tmp_path):
    first = upload(tmp_path, "alice", "notice.txt", report("松阳茶香小镇"))
    second = upload(tmp_path, "bob", "notice.txt", report("缙云烧饼产业"))
    done = uploads.add_uploads(engine, [first], SUFFIXES)
    assert done.change.added == ["notice"] and not done.skipped
    (alice,) = stored(engine)
    assert alice.endswith("/notice.txt") and not alice.startswith(".incoming")
    assert engine.index.documents["notice"].source == str(uploads.uploads_dir(engine)
                                                          .resolve() / alice)

    done = uploads.add_uploads(engine, [second], SUFFIXES)
    (bob_id,) = done.change.added
    assert bob_id.startswith("notice-")
    assert done.notices == [f"notice.txt: doc_id 'notice' is already that of "
                            f"{uploads.uploads_dir(engine).resolve() / alice}; indexed as "
                            f"{bob_id!r}"]
    assert len(stored(engine)) == 2  # both kept, the first one untouched
    assert (uploads.uploads_dir(engine) / alice).read_text("utf-8") == report("松阳茶香小镇")
    assert engine.search("缙云烧饼产业", k=1)[0].doc_id == bob_id
    assert engine.search("松阳茶香小镇", k=1)[0].doc_id == "notice"

    # Refused, unreadable, duplicate, or the index busy: nothing of them stays.
    empty = upload(tmp_path, "carol", "empty.txt", "")
    copy = upload(tmp_path, "dave", "copy.txt", report("松阳茶香小镇"))
    pdf = upload(tmp_path, "erin", "scan.pdf", "%PDF-1.4")
    exe = upload(tmp_path, "gina", "tool.exe", "MZ")
    done = uploads.add_uploads(engine, [empty, copy, pdf, exe], SUFFIXES)
    assert done.skipped[0] == "empty.txt: is empty (0 bytes)"
    assert done.skipped[1].startswith("scan.pdf: is not a readable PDF")
    assert done.notices == ["copy.txt: same content as report 'notice'; indexed once, not twice"]
    assert done.refused == [f"tool.exe: only {', '.join(SUFFIXES)} files can be added"]
    late = upload(tmp_path, "frank", "late.txt", report("庆元香菇市场"))
    with writer_lock(engine.root), pytest.raises(IndexLocked):
        uploads.add_uploads(engine, [late], SUFFIXES, wait=0)
    assert len(stored(engine)) == 2

    # Removing an uploaded report deletes its stored copy, and only its.
    engine.remove(["notice"])
    uploads.forget(engine, str(uploads.uploads_dir(engine).resolve() / alice))
    assert len(stored(engine)) == 1 and not (uploads.uploads_dir(engine) / alice).parent.exists()


# ---- 7. no server paths ---------------------------------------------------------------------

def test_the_library_and_errors_show_no_server_paths(engine, tmp_path, seed_copy):
    uploads.add_uploads(engine, [upload(tmp_path, "u", "qingtian.txt", report("青田石雕"))],
                        SUFFIXES)
    rows = app.library_rows(engine)
    sources = {row[6]: row[7] for row in rows}
    assert sources["qingtian"].startswith("uploads/") and sources["qingtian"].endswith(
        "/qingtian.txt")
    assert sources["000_e9f0a6d5a56f891f"] == "000_e9f0a6d5a56f891f.txt"  # from its folder
    assert not any(s.startswith("/") for s in sources.values())
    assert str(tmp_path) not in app.stats_html(engine)

    gen = sorted(engine.root.glob("gen-*"))[-1]
    (gen / "vectors.faiss").write_bytes(b"garbage")
    engine._index = None
    with pytest.raises(Exception) as exc:
        engine.index  # noqa: B018
    shown = app.shown_error(engine, exc.value)
    assert str(tmp_path) not in shown
    assert shown.startswith(f"index at {engine.root.name} ({gen.name}) is damaged: "
                            "vectors.faiss is 7 bytes")


def test_the_library_tab_handlers(engine, tmp_path):
    """The Upload and Remove handlers themselves (the browser tests drive them through a page
    where Chromium is installed)."""
    demo = app.build_app(engine)
    handlers = {f.name: f.fn for f in demo.fns.values()}
    good = upload(tmp_path, "u", "qingtian.txt", report("青田石雕"))
    big = tmp_path / "u" / "huge.txt"
    with big.open("wb") as fh:
        fh.truncate(25_000_000)
    html, _ = handlers["add_files"]([str(good), str(big)], progress=lambda *a, **k: None)
    assert "Added 1 report(s): qingtian. Searchable now." in html
    assert "huge.txt: 25 MB, over the 20 MB limit for one upload" in html
    assert str(tmp_path) not in html
    assert len(stored(engine)) == 1
    assert "Removed qingtian from the index." in handlers["remove_doc"]("qingtian")
    assert stored(engine) == []


def test_an_upload_shows_its_counts_and_the_time_left(engine, tmp_path):
    demo = app.build_app(engine)
    handlers = {f.name: f.fn for f in demo.fns.values()}
    long = upload(tmp_path, "u", "longquan.txt", report("龙泉青瓷小镇", sentences=800))
    shown: list[tuple[float, str]] = []
    html, _ = handlers["add_files"]([str(long)],
                                    progress=lambda f, desc=None, **k: shown.append((f, desc)))
    assert "Added 1 report(s): longquan." in html
    chunks = sum(1 for c in engine.index.chunks if c.doc_id == "longquan")
    batch = Settings().batch_size
    assert chunks > 2 * batch
    lines = [d for _, d in shown if d and d.startswith("embedding")]
    pattern = rf"embedding: (\d+)/{chunks} chunks \(\d+%\), .*chunk/s, (\d\d:\d\d) left"
    assert [int(re.fullmatch(pattern, x).group(1)) for x in lines] == [
        *range(batch, chunks, batch), chunks]
    fractions = [f for f, _ in shown]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


# ---- 9. the API never answers {"error": null} -------------------------------------------------

def raw_call(url: str, endpoint: str, data: list) -> str:
    request = urllib.request.Request(url + f"gradio_api/call/{endpoint}",
                                     data=json.dumps({"data": data}).encode(),
                                     headers={"Content-Type": "application/json"})
    event = json.load(urllib.request.urlopen(request, timeout=60))["event_id"]
    with urllib.request.urlopen(url + f"gradio_api/call/{endpoint}/{event}", timeout=120) as r:
        return r.read().decode()


def test_api_answers_carry_a_message_and_no_server_paths(engine):
    with ui.running_app(engine) as url:
        answer = raw_call(url, "search", ["招商引资", 1])  # too few inputs: Gradio's own error
        assert "event: error" in answer
        assert '"error": null' not in answer
        assert "didn't receive enough input values (needed: 7, got: 2)" in answer
        hits = json.loads(raw_call(url, "search", ["招商引资", 3, [], [], "", "", "hybrid"])
                          .split("data: ", 1)[1])[0]["hits"]
        assert len(hits) == 3
        assert all(not h["source"].startswith("/") and h["source"].endswith(".txt")
                   for h in hits)
