"""A second encoder re-orders an English question's first passages (search/second_opinion.py).

The mechanism is the same for any encoder, so these tests name the packaged one by its file
(an `onnx:` name: the index's own encoder is never asked twice); EmbeddingGemma, the default,
is tested in test_gemma.py when it has been fetched."""

from __future__ import annotations

import numpy as np
import pytest

from policyrag.cli import main
from policyrag.config import DEFAULT_MODEL, Settings
from policyrag.engine import Engine
from policyrag.index import embedding
from policyrag.index.embedding import packaged_path
from policyrag.search import second_opinion
from policyrag.search.retrieval import prepare_query

ENGLISH = "How does Luqiao plan to attract private investment?"
CHINESE = "路桥如何吸引民间投资?"
DEPTH = 15


def _engine(index_dir, embedder, **settings) -> Engine:
    eng = Engine(index_dir, settings=Settings(translate_queries=False, **settings))
    eng._embedder = embedder
    return eng


@pytest.fixture(scope="module")
def second() -> str:
    return f"onnx:{packaged_path(DEFAULT_MODEL)}"


def test_a_passage_both_rank_high_moves_up_and_the_rest_keep_their_place():
    ranked = [(row, 1.0 - row / 100) for row in range(20)]
    sims = np.zeros(15)
    sims[7] = 0.9  # the encoder's first choice, eighth in the fused order
    sims[0] = 0.8
    out = second_opinion.reorder(ranked, sims, weight=2.0, k=10)
    # Eighth -> fifth: the fused order still leads (weight 2), the encoder lifts its choice.
    assert [r for r, _ in out[:5]] == [0, 1, 2, 3, 7]
    assert out[15:] == ranked[15:]
    assert sorted(r for r, _ in out[:15]) == list(range(15))
    scores = [s for _, s in out]
    assert scores == sorted(scores, reverse=True)  # still falling down the list


def test_the_fused_order_stands_when_the_encoder_has_no_preference():
    ranked = [(row, 1.0) for row in range(10)]
    assert second_opinion.reorder(ranked, np.zeros(10), 2.0, 10) == ranked


def test_an_english_question_s_first_passages_follow_the_second_encoder(index_dir, embedder,
                                                                        second):
    # At weight 0 the fused order has no say among the first DEPTH passages: they come in
    # the second encoder's order, and they are the same passages as without it.
    on = _engine(index_dir, embedder, english_rerank=second, english_rerank_weight=0.0)
    off = _engine(index_dir, embedder, english_rerank="none")
    got, before = on.search(ENGLISH, k=DEPTH), off.search(ENGLISH, k=DEPTH)
    assert {h.chunk_id for h in got} == {h.chunk_id for h in before}
    assert [h.chunk_id for h in got] != [h.chunk_id for h in before]
    # The question as asked: not with the 路桥 that prepare_query adds for "Luqiao", which
    # would make any sentence naming the place look like an answer.
    assert prepare_query(ENGLISH, on.index) != ENGLISH
    # Scored as the search scores them, in the fused order: the int8 model's activations are
    # scaled per batch, so another order of the same sentences shifts cosines by ~1e-3.
    sims = second_opinion.similarities(second_opinion.encoder(second), ENGLISH,
                                       [h.text for h in before])
    expected = [before[j].chunk_id for j in np.argsort(-sims, kind="stable")]
    assert [h.chunk_id for h in got] == expected


def test_a_passage_counts_as_its_closest_sentence(second):
    # One answering sentence among others on other things scores as that sentence alone.
    model = second_opinion.encoder(second)
    answer = "聚焦民间投资,创新政府和社会资本合作模式,推动民间资本敢投、愿投、会投。"
    mixed = "全会听取和讨论了区委常委会的工作报告。" + answer + "会议号召全区上下团结一心。"
    sims = second_opinion.similarities(model, ENGLISH, [mixed, answer, "会议号召全区上下团结一心。"])
    assert sims[0] == pytest.approx(sims[1], abs=1e-5)
    assert sims[1] > sims[2]


def test_chinese_questions_keep_the_fused_order(index_dir, embedder, second):
    on = _engine(index_dir, embedder, english_rerank=second, english_rerank_weight=0.0)
    off = _engine(index_dir, embedder, english_rerank="none")
    assert [(h.chunk_id, h.score) for h in on.search(CHINESE, k=DEPTH)] == \
        [(h.chunk_id, h.score) for h in off.search(CHINESE, k=DEPTH)]


def test_an_encoder_that_does_not_load_warns_and_leaves_the_order(index_dir, embedder,
                                                                   tmp_path):
    missing = f"onnx:{tmp_path / 'gone.onnx'}"
    on = _engine(index_dir, embedder, english_rerank=missing)
    off = _engine(index_dir, embedder, english_rerank="none")
    with pytest.warns(UserWarning, match="keep the fused order"):
        got = on.search(ENGLISH)
    assert [h.chunk_id for h in got] == [h.chunk_id for h in off.search(ENGLISH)]


class _Failing:
    """An encoder whose every run fails, as an ONNX session out of memory would."""

    name = "failing"

    def encode(self, texts, kind="passage", batch_size=32, progress=False):
        raise RuntimeError("onnxruntime: failed to allocate memory")


def test_a_second_encoder_that_fails_at_search_time_leaves_the_fused_order(index_dir, embedder,
                                                                           monkeypatch):
    monkeypatch.setitem(embedding._LOADED, "failing", _Failing())
    on = _engine(index_dir, embedder, english_rerank="failing")
    off = _engine(index_dir, embedder, english_rerank="none")
    with pytest.warns(UserWarning, match="failed .*allocate memory"):
        got = on.search(ENGLISH)
    assert [h.chunk_id for h in got] == [h.chunk_id for h in off.search(ENGLISH)]


def test_index_info_says_how_english_questions_are_ordered_here(index_dir, second, tmp_path,
                                                                monkeypatch, capsys):
    def english_line() -> str:
        assert main(["index", "info", "--index", str(index_dir)]) == 0
        return next(line for line in capsys.readouterr().out.splitlines()
                    if line.startswith("english"))

    assert "keep the fused order (POLICYRAG_ENGLISH_RERANK is off)" in english_line()
    monkeypatch.setenv("POLICYRAG_ENGLISH_RERANK", second)
    assert f"first {DEPTH} fused passages are re-ordered by {second}" in english_line()
    # The default encoder, where it has not been fetched: said, with how to fetch it.
    monkeypatch.setenv("POLICYRAG_ENGLISH_RERANK", "packaged:embeddinggemma")
    monkeypatch.setenv("POLICYRAG_CACHE_DIR", str(tmp_path / "empty-cache"))
    assert "EmbeddingGemma is not fetched: policyrag model fetch" in english_line()
