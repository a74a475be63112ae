"""Progress of `policyrag index add/build` when stderr is a log, not a terminal: whole lines with
counts, rate and time left, not a bar's carriage returns. Real model, real command line."""

from __future__ import annotations

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
    seen = [pattern.fullmatch(line) for line in lines]
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
