"""Progress of `policyrag index add/build` when stderr is a log, not a terminal: whole lines with
counts, rate and time left, not a bar's carriage returns. Real model, real command line."""

from __future__ import annotations

import json
import re

from policyrag.cli import main
from policyrag.config import Settings
from policyrag.index import lifecycle as idx
from tests.conftest import report


def test_add_writes_progress_lines_to_a_log(index_copy, tmp_path, capsys, monkeypatch,
                                            embedder):
    monkeypatch.setenv("POLICYRAG_PROGRESS_SECONDS", "0")  # a line after every batch
    path = tmp_path / "long.txt"
    path.write_text(report("龙泉宝剑锻制技艺", sentences=600), "utf-8")
    assert main(["index", "add", str(path), "--index", str(index_copy)]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    chunks = sum(1 for c in idx.open_index(index_copy).chunks if c.doc_id == "long")
    batch = Settings().batch_size
    assert chunks > 2 * batch  # (so that there are several batches to report)
    pattern = re.compile(r"embedding: (\d+)/(\d+) chunks \((\d+)%\), .*chunk/s, .* left")
    # Before embedding, the reports are read (counted, without a total: see the build test).
    assert lines[0].startswith("reading reports: 1 so far"), lines
    seen = [pattern.fullmatch(line) for line in lines[1:]]
    assert all(seen), lines
    counts = [int(m.group(1)) for m in seen]
    assert counts == [*range(batch, chunks, batch), chunks]
    assert {int(m.group(2)) for m in seen} == {chunks}
    assert seen[-1].group(3) == "100"


def test_no_progress_lines_in_a_short_job(index_copy, tmp_path, capsys):
    path = tmp_path / "short.txt"
    path.write_text(report("庆元香菇市场"), "utf-8")
    assert main(["index", "add", str(path), "--index", str(index_copy)]) == 0
    assert capsys.readouterr().err == ""  # well under the default 30 s between lines


def test_a_streamed_build_counts_every_report_and_chunk_across_its_segments(tmp_path, capsys,
                                                                              monkeypatch):
    """A build written as several segments shows one count over the whole build, with the
    total known before the first chunk is embedded, and the time left."""
    monkeypatch.setenv("POLICYRAG_PROGRESS_SECONDS", "0")
    monkeypatch.setenv("POLICYRAG_SEGMENT_CHUNKS", "8")
    monkeypatch.setenv("POLICYRAG_EMBED_WINDOW", "16")
    collection = tmp_path / "reports.jsonl"
    rows = [{"id": f"r{i}", "text": report(f"第{i}号试点园区", sentences=30)} for i in range(6)]
    collection.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                          "utf-8")
    root = tmp_path / "index"
    assert main(["index", "build", str(collection), "--index", str(root)]) == 0
    lines = capsys.readouterr().err.splitlines()
    ix = idx.open_index(root)
    assert len(ix.manifest.segments) > 1  # (so that the count runs across segments)
    reading = [re.fullmatch(r"reading reports: (\d+) so far, .*report/s", x) for x in lines
               if x.startswith("reading")]
    assert [int(m.group(1)) for m in reading] == list(range(1, 7))
    embedding = [re.fullmatch(r"embedding: (\d+)/(\d+) chunks \((\d+)%\), .*, (.*) left", x)
                 for x in lines if x.startswith("embedding")]
    assert all(embedding), lines
    assert {int(m.group(2)) for m in embedding} == {len(ix.chunks)}
    counts = [int(m.group(1)) for m in embedding]
    assert counts == sorted(counts) and counts[-1] == len(ix.chunks)
    assert embedding[-1].group(4) == "00:00"
