"""Crash safety and concurrency, for real: writers killed with SIGKILL, competing writers, and
readers looping while a writer commits.

Writers run as `python -m policyrag ...` subprocesses. To kill one at a known point, the
test hook POLICYRAG_TEST_PAUSE_AT=POINT (see policyrag.index.store) makes it print a line and sleep
there; one test also kills at random moments instead.
"""

from __future__ import annotations

import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from policyrag.cli import main
from policyrag.engine import Engine
from policyrag.index import lifecycle as idx
from policyrag.index import store
from policyrag.search.retrieval import Searcher
from tests.conftest import report

pytestmark = pytest.mark.slow

QUERIES = ["招商引资", "路桥区委全会", "跨越式高质量发展", "效能建设"]


def copies(index_dir: Path, tmp_path: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        dest = tmp_path / f"index{i}"
        shutil.copytree(index_dir, dest)
        out.append(dest)
    return out


def answers(root: Path, embedder) -> dict:
    """What the index says: its generation, reports, chunks and answers to a few questions."""
    ix = idx.open_index(root, embedder)
    searcher = Searcher(ix, embedder)
    return {
        "generation": ix.generation.name,
        "documents": sorted(ix.documents),
        "chunks": [c.chunk_id for c in ix.chunks],
        "answers": {q: [(h.chunk_id, round(h.score, 5)) for h in searcher.search(q, k=5)]
                    for q in QUERIES},
    }


def kill_each_at_its_point(points: list[str], roots: list[Path],
                           argv: Callable[[Path], list[str]]) -> None:
    """One writer per index copy, each paused at its point; then all killed (kill -9)."""
    writers = [Writer(argv(root), pause_at=point)
               for point, root in zip(points, roots, strict=True)]
    for w, point in zip(writers, points, strict=True):
        w.wait_for_pause(point)
    for w in writers:
        w.kill()


class Writer:
    """A `policyrag` subprocess whose stderr is read line by line in the background."""

    def __init__(self, argv: list[str], pause_at: str | None = None) -> None:
        env = dict(os.environ)
        env.pop(store.PAUSE_ENV, None)
        if pause_at:
            env[store.PAUSE_ENV] = pause_at
        self.proc = subprocess.Popen([sys.executable, "-m", "policyrag", *argv], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_pause(self, point: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
            if f"policyrag: test pause at {point}" in line:
                return
        self.kill()
        raise AssertionError(f"writer never paused at {point}: {''.join(self.seen)}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        assert self.proc.returncode in (-signal.SIGKILL, 0, 1, 2)


def leftovers(root: Path) -> list[str]:
    live = store.read_current(root)
    number = int(live.split("-")[1]) if live else 0
    return sorted([p.name for p in root.glob(".tmp-*")]
                  + [g.name for g in store.generations(root) if int(g.name[4:]) > number])


# ---- kill -9 at every point of a commit ---------------------------------------------------------

def test_add_killed_at_each_point_leaves_a_working_index(index_dir, tmp_path, embedder):
    points = store.PAUSE_POINTS
    roots = copies(index_dir, tmp_path, len(points))
    before = answers(roots[0], embedder)
    new = tmp_path / "killed_add.txt"
    new.write_text(report("云和木玩童话小镇"), "utf-8")
    kill_each_at_its_point(points, roots, lambda root: ["index", "add", str(new), "--index",
                                                        str(root)])

    for point, root in zip(points, roots, strict=True):
        assert idx.verify(root) == [], point
        now = answers(root, embedder)
        if point == "after_current":
            # The commit was complete: the new generation is live and whole.
            assert now["generation"] == "gen-000002"
            assert now["documents"] == sorted([*before["documents"], "killed_add"])
        else:
            # The previous index is live and answers exactly as before.
            assert now == before, point
        expected_leftovers = {"locked": 0, "mid_write": 1, "before_commit": 1,
                              "after_rename": 1, "after_current": 0}[point]
        assert len(leftovers(root)) == expected_leftovers, (point, leftovers(root))
        if point == "after_rename":
            assert leftovers(root) == ["gen-000002"]  # renamed into place, never made live

        # The next writer cleans up after the dead one and commits normally.
        again = Engine(root)
        again._embedder = embedder
        change, _ = again.add([new])
        assert leftovers(root) == [], point
        assert idx.verify(root) == [], point
        assert "killed_add" in again.index.documents
        if point != "after_current":
            # (an orphan generation is removed, and its number used again)
            assert change.added == ["killed_add"]
            assert again.index.generation.name == "gen-000002"


def test_build_killed_midway_keeps_the_previous_index(index_dir, tmp_path, embedder, seeds_dir):
    points = ["mid_write", "before_commit", "after_rename"]
    roots = copies(index_dir, tmp_path, len(points))
    before = answers(roots[0], embedder)
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(seeds_dir / "003_44711a7aea527f8e.txt", one)
    writers = [Writer(["index", "build", str(one), "--index", str(root)], pause_at=point)
               for point, root in zip(points, roots, strict=True)]
    for w, point in zip(writers, points, strict=True):
        w.wait_for_pause(point)
        w.kill()
    for point, root in zip(points, roots, strict=True):
        assert answers(root, embedder) == before, point
        assert idx.verify(root) == [], point


def test_first_build_killed_leaves_no_index_then_builds(tmp_path, seeds_dir, capsys):
    root = tmp_path / "first"
    w = Writer(["index", "build", str(seeds_dir / "000_e9f0a6d5a56f891f.txt"),
                "--index", str(root)], pause_at="before_commit")
    w.wait_for_pause("before_commit")
    w.kill()
    assert len(list(root.glob(".tmp-*"))) == 1
    assert main(["search", "招商引资", "--index", str(root)]) == 2
    assert f"policyrag: error: no index at {root}; build one with" in capsys.readouterr().err
    assert main(["index", "build", str(seeds_dir / "000_e9f0a6d5a56f891f.txt"),
                 "--index", str(root)]) == 0
    assert list(root.glob(".tmp-*")) == []
    assert idx.verify(root) == []


def test_add_killed_at_random_moments(index_dir, tmp_path, embedder):
    """No hook: SIGKILL after a random delay, several times; the index is always old or new."""
    runs = 2
    roots = copies(index_dir, tmp_path, runs + 1)
    before = answers(roots[0], embedder)
    new = tmp_path / "random_kill.txt"
    # Long enough that embedding it, under the lock, is a good part of the writer's time.
    new.write_text(report("龙泉宝剑锻制技艺", sentences=100), "utf-8")
    # How long an add takes here, unkilled: the kills are spread over that span. The writer
    # holds the lock for most of it (embedding and writing), so most kills land mid-write.
    t0 = time.monotonic()
    reference = Writer(["index", "add", str(new), "--index", str(roots[-1])])
    assert reference.proc.wait(timeout=300) == 0
    span = time.monotonic() - t0
    rng = random.Random(20240905)
    delays = [rng.uniform(0.2, 0.95) * span for _ in range(runs)]
    for root, delay in zip(roots[:runs], delays, strict=True):
        w = Writer(["index", "add", str(new), "--index", str(root)])
        time.sleep(delay)
        w.kill()
    outcomes = []
    for root in roots[:runs]:
        assert idx.verify(root) == []
        now = answers(root, embedder)
        if now["generation"] == before["generation"]:
            assert now == before
            outcomes.append("old")
        else:
            assert now["documents"] == sorted([*before["documents"], "random_kill"])
            outcomes.append("new")
        # And the next writer always succeeds and leaves nothing behind.
        eng = Engine(root)
        eng._embedder = embedder
        eng.add([new])
        assert leftovers(root) == [] and idx.verify(root) == []
    print(f"add takes {span:.1f} s; killed at {[round(d, 1) for d in delays]} s -> {outcomes}")


# ---- one writer at a time; readers never blocked ------------------------------------------------

def test_second_writer_fails_fast_with_a_clear_message(index_copy, tmp_path, capsys):
    new = tmp_path / "blocked.txt"
    new.write_text(report("南明山摩崖石刻"), "utf-8")
    with store.writer_lock(index_copy):
        t0 = time.monotonic()
        code = main(["index", "add", str(new), "--index", str(index_copy)])
        elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    assert code == 2
    assert err == (f"policyrag: error: {index_copy} is being written by pid {os.getpid()}; "
                   "try again when it has finished, or pass --wait SECONDS to queue behind it\n")
    assert elapsed < 5
    assert "blocked" not in idx.open_index(index_copy).documents


def test_second_writer_waits_with_wait(index_copy, tmp_path, capsys):
    new = tmp_path / "queued.txt"
    new.write_text(report("古堰画乡艺术村"), "utf-8")
    held = threading.Event()

    def hold() -> None:
        with store.writer_lock(index_copy):
            held.set()
            time.sleep(1.5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    # Too short a wait still fails, saying how long it waited ...
    assert main(["index", "add", str(new), "--index", str(index_copy), "--wait", "0.3"]) == 2
    assert capsys.readouterr().err == (
        f"policyrag: error: {index_copy} is still being written by pid {os.getpid()} after "
        "waiting 0.3 s; try again later, or pass a longer --wait\n")
    # ... a long enough one queues behind the holder and then succeeds.
    t0 = time.monotonic()
    assert main(["index", "add", str(new), "--index", str(index_copy), "--wait", "30"]) == 0
    assert time.monotonic() - t0 > 0.5
    holder.join()
    assert "queued" in idx.open_index(index_copy).documents


def test_readers_are_not_blocked_by_a_writer(index_copy, embedder):
    eng = Engine(index_copy)
    eng._embedder = embedder
    with store.writer_lock(index_copy):
        assert eng.search("招商引资", k=3)
        assert idx.verify(index_copy) == []
        assert len(idx.open_index(index_copy).documents) == 5


WRITER = """
import sys
from pathlib import Path
from policyrag.index import lifecycle as idx
from policyrag.config import Settings
from policyrag.ingest.documents import load_documents
from policyrag.index.embedding import load_embedder


root, emb = Path(sys.argv[1]), load_embedder()
for path in sys.argv[2:]:
    docs, errors = load_documents([Path(path)])
    assert not errors, errors
    idx.add(root, docs, emb, Settings(), wait=60)
    print("committed", path, flush=True)
"""


def check_snapshot(ix: idx.Index) -> None:
    """Everything a reader relies on agrees within one opened generation."""
    assert ix.vectors.ntotal == len(ix.chunks) == ix.manifest.chunks
    assert len(ix.documents) == ix.manifest.documents
    for c in ix.chunks:
        assert ix.documents[c.doc_id].text[c.start:c.end] == c.text
    assert len(ix.tokens) == len(ix.chunks)


def watch_writer(index_copy, files: list[str], embedder, on_read=None):
    """Run WRITER adding `files` one commit each, opening the index over and over meanwhile;
    every opened generation must be whole. Returns (writer, documents seen per generation,
    reads, stdout, stderr)."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(index_copy), *files],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[str, int] = {}
    reads = 0
    try:
        while True:
            finished = writer.poll() is not None
            ix = idx.open_index(index_copy, embedder)
            check_snapshot(ix)
            seen[ix.generation.name] = len(ix.documents)
            if on_read is not None:
                on_read(ix, reads)
            reads += 1
            if finished:
                break
    finally:
        out, err = writer.communicate(timeout=300)
    return writer, seen, reads, out, err


def test_readers_see_consistent_snapshots_while_a_writer_commits(index_copy, tmp_path,
                                                                  embedder):
    files = []
    for i, marker in enumerate(["大港头码头", "通济堰灌区", "仙都鼎湖峰", "百山祖国家公园",
                                "千峡湖生态区", "九龙湿地公园"]):
        path = tmp_path / f"stream_{i}.txt"
        path.write_text(report(marker, sentences=3), "utf-8")
        files.append(str(path))

    def search_now_and_then(ix: idx.Index, reads: int) -> None:
        if reads % 10 == 0:
            hits = Searcher(ix, embedder).search("码头建设", k=3, mode="dense")
            assert all(h.doc_id in ix.documents for h in hits)

    writer, seen, reads, out, err = watch_writer(index_copy, files, embedder,
                                                 search_now_and_then)
    assert writer.returncode == 0, err
    assert out.count("committed") == len(files)
    final = idx.open_index(index_copy)
    assert len(final.documents) == 5 + len(files)
    assert final.generation.name == f"gen-{1 + len(files):06d}"
    # Each generation seen was whole: its documents are the seeds plus a prefix of the stream.
    for name, count in seen.items():
        assert count == 5 + int(name[4:]) - 1, (name, count)
    assert len(seen) >= 3, seen
    print(f"{reads} consistent reads over generations {sorted(seen)}")
