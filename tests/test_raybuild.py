"""`policyrag index build --ray`: the index Ray makes is the one a single-process build makes."""

from __future__ import annotations

import errno
import gzip
import json
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from policyrag.cli import main
from policyrag.config import Settings
from policyrag.index import lifecycle as index
from policyrag.index import store
from policyrag.ingest.documents import load_documents
from tests.conftest import report
from tests.test_crash_safety import Writer, answers, leftovers

ray = pytest.importorskip("ray", reason="the ray extra: pip install -e .[ray]")

QUERIES = ["招商引资", "路桥如何吸引民间投资？", "共同富裕示范区建设", "数字经济", "燃放烟花爆竹"]


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with 2 CPUs, shut down after this file's tests."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, seed_copy) -> list[Path]:
    """The seeds, and what makes doc_ids and duplicates interesting: a same-named copy of a seed
    in another folder, a report whose front matter claims a seed's doc_id (and whose sidecar
    sets metadata), and a collection with a bad line."""
    extra = tmp_path_factory.mktemp("extra")
    first = sorted(seed_copy.glob("*.txt"))[0]
    (extra / "copies").mkdir()
    shutil.copy(first, extra / "copies" / first.name)
    (extra / "claims.md").write_text(f"---\ndoc_id: {first.stem}\n---\n" + report("海岛花园"),
                                     encoding="utf-8")
    (extra / "metadata.toml").write_text('["claims.md"]\ntitle = "海岛花园建设推进会"\n'
                                         'locality = "温岭市"\nreviewed = true\n',
                                         encoding="utf-8")
    coll = tmp_path_factory.mktemp("coll") / "more.jsonl.gz"
    rows = [{"id": "reg-1", "title": "温州市烟花爆竹安全管理条例", "doc_type": "regulation",
             "text": "第一条 为了加强烟花爆竹安全管理,预防安全事故,制定本条例。\n第二条 下列场所"
                     "禁止燃放烟花爆竹:(一)国家机关办公场所;(二)车站、码头等交通枢纽。\n"},
            {"text": "   "},
            {"id": "note-2", "text": report("“山海协作”飞地园区")}]
    with gzip.open(coll, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return [seed_copy, extra, coll]


@pytest.fixture(scope="module")
def single(tmp_path_factory, inputs, embedder) -> Path:
    """The same inputs built in one process, as `policyrag index build` does."""
    root = tmp_path_factory.mktemp("single") / "idx"
    docs, _ = load_documents(inputs)
    index.build(root, docs, embedder, Settings(), [str(p) for p in inputs])
    return root


def _open(root: Path, embedder) -> index.Index:
    return index.open_index(root, embedder)


def test_ray_reads_the_reports_load_documents_reads(local_ray, inputs):
    """Stage 1 on Ray workers gives the same reports, doc_ids and messages, in the same order."""
    from policyrag.index import raybuild

    docs, errors = load_documents(inputs)
    on_ray, ray_errors, found = raybuild.load_on_ray(raybuild.connect(None), inputs, workers=2)
    assert [d.to_dict() for d in on_ray] == [d.to_dict() for d in docs]
    assert [(type(e), str(e)) for e in ray_errors] == [(type(e), str(e)) for e in errors]
    # ids settled across files: a same-named file's, and one its front matter claimed
    first = sorted(inputs[0].glob("*.txt"))[0].stem
    assert len([d for d in on_ray if d.doc_id.startswith(f"{first}-")]) == 2
    claimed = next(d for d in on_ray if d.source.endswith("claims.md"))
    assert claimed.locality == "温岭市" and claimed.extra == {"reviewed": True}
    assert "山海协作" in found["note-2"]


def test_cli_build_on_ray_equals_a_single_process_build(local_ray, inputs, single, embedder,
                                                        tmp_path, capsys):
    root = tmp_path / "ray-idx"
    # `--ray PATH`: a path, not an address, so a local instance (here: the 2-CPU one above)
    rc = main(["index", "build", "--index", str(root), "--ray", *map(str, inputs)])
    out, err = capsys.readouterr()
    assert rc == 1  # the collection's blank line is skipped and named, as without --ray
    assert "more.jsonl.gz:2" in err and "duplicate" in err
    assert out.startswith(f"built {root}")

    want, got = _open(single, embedder), _open(root, embedder)
    assert {k: d.to_dict() for k, d in got.documents.items()} == \
        {k: d.to_dict() for k, d in want.documents.items()}
    assert [asdict(c) for c in got.chunks] == [asdict(c) for c in want.chunks]
    assert got.tokens == want.tokens
    assert got.lexicon == want.lexicon and "山海协作" in got.lexicon
    assert got.manifest.sources == want.manifest.sources
    assert got.manifest.corpus_fingerprint == want.manifest.corpus_fingerprint
    assert np.allclose(got.matrix(), want.matrix(), atol=1e-5)

    from policyrag.engine import Engine

    engines = []
    for r in (single, root):
        eng = Engine(r)
        eng._embedder = embedder
        engines.append(eng)
    for q in QUERIES:
        a, b = (e.search(q, 10) for e in engines)
        assert [h.chunk_id for h in a] == [h.chunk_id for h in b], q

    assert main(["index", "verify", "--index", str(root)]) == 0


def test_cli_says_what_is_wrong_with_ray(tmp_path, seed_copy, capsys, monkeypatch):
    root = tmp_path / "idx"
    rc = main(["index", "build", str(seed_copy), "--index", str(root), "--ray", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot connect to the Ray cluster at 127.0.0.1:1" in err
    assert not root.exists()

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    rc = main(["index", "build", str(seed_copy), "--index", str(root), "--ray"])
    err = capsys.readouterr().err
    assert rc == 2 and "pip install 'policyrag[ray]'" in err


# Segments of 4 chunks or more, cut after each embedding window of 4: many per build, and
# stage 3 in several stretches (of 8 batches, with 2 CPUs).
SMALL = replace(Settings(), segment_chunks=4, embed_window=4)


class Counted:
    """A progress bar that only counts."""

    def __init__(self) -> None:
        self.n = 0

    def update(self, n: int) -> None:
        self.n += n

    def close(self) -> None:
        pass


def test_ray_build_writes_each_segment_as_its_rows_arrive(local_ray, inputs, embedder,
                                                          tmp_path, monkeypatch):
    """The driver never holds the whole index: each segment is written into the new generation
    as soon as the rows of its last embedding window are back from the workers, while later
    ones are still to come, and the segments are the ones a single-process build cuts."""
    from policyrag.index import raybuild

    came = Counted()  # chunk rows the workers' stage 3 has handed the driver
    written: list[tuple[int, int]] = []  # (rows come back by then, chunks in the segment)
    real_stream, real_write = raybuild.stream, index.NewGeneration.write

    def stream(session, stage, *args):
        for part in real_stream(session, stage, *args):
            came.update(len(part["k"]) if stage == "embed" else 0)
            yield part

    def write(gen, batch):
        written.append((came.n, len(batch.chunks)))
        return real_write(gen, batch)

    monkeypatch.setattr(raybuild, "stream", stream)
    monkeypatch.setattr(index.NewGeneration, "write", write)
    shown = Counted()
    root = tmp_path / "ray-idx"
    done = raybuild.build(root, inputs, embedder, SMALL, progress=lambda *_: shown)
    monkeypatch.undo()
    total = index.read_manifest(root).chunks
    assert done.segments == len(written) >= 5
    assert sum(n for _, n in written) == total == came.n == shown.n
    # Every segment but the last was written with rows still to come, one it held at most
    # a stretch of stage 3 (8 batches of 4 chunks) ahead of it.
    so_far = 0
    for came_by_then, n in written[:-1]:
        so_far += n
        assert came_by_then < total and came_by_then - so_far <= 8 * SMALL.embed_window

    single = tmp_path / "single"
    docs, _ = load_documents(inputs)
    index.build(single, docs, embedder, SMALL, [str(p) for p in inputs])
    cut = [[(s["documents"], s["chunks"]) for s in index.read_manifest(r).segments]
           for r in (single, root)]
    assert cut[0] == cut[1]
    want, got = _open(single, embedder), _open(root, embedder)
    assert [asdict(c) for c in got.chunks] == [asdict(c) for c in want.chunks]
    assert got.tokens == want.tokens
    assert np.allclose(got.matrix(), want.matrix(), atol=1e-5)
    assert index.verify(root) == []


def test_a_ray_build_that_fails_between_segments_leaves_the_live_index(
        local_ray, inputs, index_copy, embedder, monkeypatch):
    from policyrag.index import raybuild

    before = answers(index_copy, embedder)
    real = index.NewGeneration.write

    def write(gen, batch):
        if gen.segments:  # one segment is on disk, in the new generation
            raise OSError(errno.EIO, "input/output error")
        return real(gen, batch)

    monkeypatch.setattr(index.NewGeneration, "write", write)
    with pytest.raises(OSError):
        raybuild.build(index_copy, inputs, embedder, SMALL)
    monkeypatch.undo()
    assert answers(index_copy, embedder) == before
    assert leftovers(index_copy) == []
    assert index.verify(index_copy) == []


@pytest.mark.slow
def test_a_ray_build_killed_between_segments_leaves_the_previous_index(
        local_ray, inputs, index_copy, embedder, monkeypatch):
    """kill -9 of the driver once a segment is written: the live index is untouched, and the
    next writer removes what the dead one left. The driver joins this file's Ray instance
    (which outlives it, as a cluster would) rather than start one of its own."""
    before = answers(index_copy, embedder)
    monkeypatch.setenv("POLICYRAG_SEGMENT_CHUNKS", "12")
    monkeypatch.setenv("POLICYRAG_EMBED_WINDOW", "16")
    address = ray.get_runtime_context().gcs_address
    w = Writer(["index", "build", "--index", str(index_copy), "--ray", address,
                *map(str, inputs)], pause_at=store.BETWEEN_SEGMENTS)
    w.wait_for_pause(store.BETWEEN_SEGMENTS, timeout=300)
    (tmp,) = index_copy.glob(".tmp-*")
    assert (tmp / "vectors.faiss").exists()  # one segment written, more to come
    w.kill()
    assert answers(index_copy, embedder) == before
    assert index.verify(index_copy) == []
    assert main(["index", "build", "--index", str(index_copy), *map(str, inputs)]) == 1
    assert leftovers(index_copy) == []
    assert "note-2" in _open(index_copy, embedder).documents
