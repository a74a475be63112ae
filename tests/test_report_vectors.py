"""A second encoder over the report passages (index/report_vectors.py): what it covers, how it
follows changes, and which questions it ranks. The mechanism is the same for any encoder, so
these tests use the packaged one as the second encoder too (EmbeddingGemma, the default, is
tested in test_gemma.py when it has been fetched)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from policyrag.cli import main
from policyrag.config import Settings
from policyrag.engine import Engine
from policyrag.index import report_vectors
from tests.conftest import report

SECOND = "packaged:use-multilingual"
PLACELESS = "聚焦民间投资,要怎样破冰山、立模式、激活力?"
NAMED = "路桥如何吸引民间投资?"
NEWS = "民间投资观察（新闻联播）\n央视网消息(新闻联播):记者今天走访企业,听他们谈民间投资和营商环境。\n"


def _as_made_by(model: str, path) -> None:
    stored = report_vectors._read(path)
    stored.model = model
    report_vectors._write(path, stored)


def _engine(root, embedder, **settings) -> Engine:
    eng = Engine(root, settings=Settings(**settings))
    eng._embedder = embedder
    return eng


@pytest.fixture
def with_news(tmp_path, index_copy, embedder):
    coll = tmp_path / "news.jsonl.gz"
    with gzip.open(coll, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "news-1", "text": NEWS, "doc_type": "news"},
                            ensure_ascii=False) + "\n")
    _engine(index_copy, embedder).add([coll])
    return index_copy


def test_only_report_passages_get_vectors_and_adds_keep_them_covered(with_news, embedder,
                                                                      tmp_path, capsys):
    assert main(["index", "info", "--index", str(with_news)]) == 0
    assert "report vectors none (policyrag index encode-reports" in capsys.readouterr().out
    assert main(["index", "encode-reports", "--encoder", SECOND, "--index", str(with_news)]) == 0
    out = capsys.readouterr().out
    assert "52 of 52 report passages, 52 embedded now" in out  # the seeds', not the news story's
    # Nothing new: nothing embedded again.
    assert main(["index", "encode-reports", "--index", str(with_news)]) == 0
    assert "52 of 52 report passages, 0 embedded now" in capsys.readouterr().out
    # A report added later gets its vectors with the add, without asking.
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "青田县会议.txt").write_text(
        "中共青田县委" + report("青田侨乡数字贸易港").replace("关于推进", "推进"), "utf-8")
    eng = _engine(with_news, embedder)
    eng.add([tmp_path / "new"])
    cov = report_vectors.coverage(eng.index)
    assert cov.model == SECOND and cov.covered == cov.report_chunks > 52
    assert main(["index", "info", "--index", str(with_news)]) == 0
    assert f"report vectors {SECOND}: {cov.covered} of {cov.covered}" in capsys.readouterr().out


def test_a_question_naming_no_place_is_also_ranked_by_the_report_vectors(with_news, embedder):
    report_vectors.encode_reports(_engine(with_news, embedder).index, embedder)
    on, off = _engine(with_news, embedder), _engine(with_news, embedder, report_vectors=False)
    # One more list in the fusion: the place-less question's scores change...
    assert [h.score for h in on.search(PLACELESS)] != [h.score for h in off.search(PLACELESS)]
    assert on.search(PLACELESS)[0].doc_id == "002_e8d0747b3dfad330"
    # ...a question that names its place is searched as before.
    assert [(h.chunk_id, h.score) for h in on.search(NAMED)] == \
        [(h.chunk_id, h.score) for h in off.search(NAMED)]


def test_vectors_whose_encoder_cannot_load_leave_search_working(with_news, embedder):
    eng = _engine(with_news, embedder)
    report_vectors.encode_reports(eng.index, embedder)
    _as_made_by("packaged:no-such-model", with_news / report_vectors.FILE)
    with pytest.warns(UserWarning, match="no-such-model"):
        hits = _engine(with_news, embedder).search(PLACELESS)
    assert hits and hits[0].doc_id == "002_e8d0747b3dfad330"


def test_a_failed_encoding_leaves_the_stored_vectors_as_they_were(with_news, embedder):
    eng = _engine(with_news, embedder)
    report_vectors.encode_reports(eng.index, embedder)
    path = with_news / report_vectors.FILE
    before = path.read_bytes()

    class Broken:
        name, dim = "packaged:other", embedder.dim

        def encode(self, texts, kind="passage", batch_size=32, progress=False):
            raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        report_vectors.encode_reports(eng.index, Broken())
    assert path.read_bytes() == before
    assert not [p for p in with_news.iterdir() if p.name.endswith(".tmp")]
    found = report_vectors.matrix(eng.index)
    assert len(found.rows) == 52 and len(found.vectors) > 52  # a vector per sentence
    assert found.vectors.shape[1] == embedder.dim and np.isfinite(found.vectors).all()


def test_a_damaged_vector_file_does_not_stop_searches(with_news, embedder):
    (with_news / report_vectors.FILE).write_bytes(b"not a numpy archive")
    with pytest.warns(UserWarning, match="cannot be read"):
        assert _engine(with_news, embedder).search(PLACELESS)[0].doc_id == \
            "002_e8d0747b3dfad330"


def test_an_add_commits_even_where_the_second_encoder_cannot_load(with_news, embedder,
                                                                 tmp_path):
    eng = _engine(with_news, embedder)
    report_vectors.encode_reports(eng.index, embedder)
    _as_made_by("packaged:no-such-model", with_news / report_vectors.FILE)
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "note.txt").write_text(report("缙云烧饼产业"), "utf-8")
    with pytest.warns(UserWarning, match="report vectors not updated"):
        change, _ = eng.add([tmp_path / "more"])
    assert change.added
    assert _engine(with_news, embedder, report_vectors=False).search("缙云烧饼产业")[0].doc_id \
        == change.added[0]


def test_a_passage_scores_as_its_closest_sentence():
    # Two passages: the first of two sentences, the second of one.
    found = report_vectors.ReportMatrix(
        "m", np.array([10, 20]), np.array([0, 2]),
        np.array([[1, 0, 0], [0, 1, 0], [0.6, 0.8, 0]], np.float32))
    queries = np.array([[0, 1, 0], [0, 0, 1]], np.float32)
    assert found.best(queries) == pytest.approx(np.array([[1, 0.8], [0, 0]]), abs=1e-3)


def test_an_older_per_passage_file_is_written_anew(with_news, embedder, capsys):
    # Before sentence vectors, the file held one vector per passage and no `unit`.
    path = with_news / report_vectors.FILE
    with path.open("wb") as fh:
        np.savez(fh, model=np.array(SECOND), keys=np.zeros((1, 16), np.uint8),
                 vectors=np.zeros((1, embedder.dim), np.float32))
    with pytest.warns(UserWarning, match="encode-reports writes it again"):
        assert _engine(with_news, embedder).search(PLACELESS)
    assert main(["index", "encode-reports", "--index", str(with_news)]) == 0
    assert "52 of 52 report passages, 52 embedded now" in capsys.readouterr().out
    assert report_vectors.matrix(_engine(with_news, embedder).index).model == SECOND
