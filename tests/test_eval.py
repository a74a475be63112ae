"""The evaluation harness: metrics on hand-made rankings, the dev set itself, `policyrag eval`."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest

from policyrag.cli import main
from policyrag.evaluation import (
    Question,
    QuestionFileError,
    evaluate,
    format_reports,
    keypoint_coverage,
    load_keypoints,
    load_questions,
    ndcg_at,
    normalise,
    parse_questions,
    recall_at,
    reciprocal_rank,
    relevant_counts,
)

from .conftest import SEED_LOCALITIES

DATA = Path(__file__).parent / "data"
DEV = DATA / "dev_questions.jsonl"
KEYPOINTS = DATA / "locality_keypoints.json"

# Measured on the seeds with the default model (182 questions): hybrid 0.841, dense 0.742,
# lexical 0.802 recall@5 (on the first 52: 0.808, 0.731, 0.827). The floors sit about three
# questions below, so a real regression fails while a one-question wobble does not.
RECALL5_FLOOR = {"hybrid": 0.82, "dense": 0.72, "lexical": 0.78}

LOG2_3, LOG2_5 = math.log2(3), math.log2(5)


# ---- metrics ---------------------------------------------------------------------------------

def test_recall_counts_a_question_once_at_each_cutoff():
    rels = [False, True, False, True, False]
    assert [recall_at(rels, k) for k in (1, 2, 3, 5, 10)] == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert recall_at([], 5) == 0.0
    assert recall_at([False] * 10, 10) == 0.0


def test_reciprocal_rank_is_one_over_first_relevant_rank_within_ten():
    assert reciprocal_rank([True]) == 1.0
    assert reciprocal_rank([False, False, True]) == pytest.approx(1 / 3)
    assert reciprocal_rank([False] * 10 + [True]) == 0.0  # rank 11 is beyond MRR@10
    assert reciprocal_rank([]) == 0.0


def test_ndcg_exact_values():
    # Relevant at ranks 2 and 4, two relevant chunks in the corpus.
    rels = [False, True, False, True, False]
    dcg = 1 / LOG2_3 + 1 / LOG2_5
    ideal = 1 + 1 / LOG2_3
    assert ndcg_at(rels, 10, n_relevant=2) == pytest.approx(dcg / ideal)
    assert ndcg_at(rels, 10, n_relevant=2) == pytest.approx(0.650921, abs=1e-6)
    # Three relevant in the corpus but only two retrieved: the ideal grows, the score drops.
    assert ndcg_at(rels, 10, n_relevant=3) == pytest.approx(dcg / (ideal + 0.5))
    # Default ideal: what the list itself holds.
    assert ndcg_at([True, False], 10) == 1.0
    assert ndcg_at([False, True], 10) == pytest.approx(1 / LOG2_3)
    # Cut-off: a hit at rank 3 does not count at k=2.
    assert ndcg_at([False, False, True], 2, n_relevant=1) == 0.0
    assert ndcg_at([False] * 5, 10, n_relevant=0) == 0.0


def test_evaluate_scores_a_hand_made_ranking():
    qs = [Question("a", "q1", "d1", ["产业"], "zh-Hans", "fact"),
          Question("b", "q2", "d2", ["民营"], "en", "paraphrase"),
          Question("c", "q3", "d1", ["不存在"], "en", "fact")]
    rankings = {
        "q1": [("d1", "无关"), ("d1", "產(chǎn)業發展"), ("d2", "产业")],  # rank 2; wrong doc at 3
        "q2": [("d2", "民营经济")],                                       # rank 1
        "q3": [("d1", "x")] * 12,                                         # never
    }
    report = evaluate(qs, lambda q, n: rankings[q][:n], k=1, mode="test",
                      counts={"a": 1, "b": 2, "c": 0})
    by_id = {o.id: o for o in report.outcomes}
    assert [by_id[i].rank for i in "abc"] == [2, 1, None]
    overall = report.overall()
    assert overall["recall@1"] == pytest.approx(1 / 3)
    assert overall["recall@3"] == pytest.approx(2 / 3)
    assert overall["mrr@10"] == pytest.approx((0.5 + 1 + 0) / 3)
    # b: one of its two relevant chunks at rank 1 -> 1 / (1 + 1/log2 3).
    assert overall["ndcg@10"] == pytest.approx((1 / LOG2_3 + 1 / (1 + 1 / LOG2_3)) / 3)
    assert report.by("lang")["en"]["n"] == 2
    assert report.by("lang")["en"]["recall@1"] == 0.5
    assert [o.id for o in report.misses()] == ["a", "c"]  # k=1: rank 2 is a miss
    assert [o.id for o in report.unanswerable()] == ["c"]
    text = format_reports([report])
    assert "lang=en" in text and "kind=paraphrase" in text and "misses (test" in text


def test_normalise_folds_script_pinyin_width_and_space():
    assert normalise("產(chǎn)業 發\n展") == "产业发展"
    assert normalise("“３﹢２﹢１”农业") == normalise("“3+2+1”農業")
    assert normalise("Ｌｕｑｉａｏ") == "luqiao"


def test_relevant_counts_scans_the_corpus():
    qs = [Question("a", "q", "d1", ["发展", "改革"])]
    chunks = [("d1", "高质量发展"), ("d1", "深化改革"), ("d2", "发展"), ("d1", "其他")]
    assert relevant_counts(qs, chunks) == {"a": 2}


# ---- the question file -----------------------------------------------------------------------

GOOD = '{"id": "x1", "q": "谁?", "doc": "d1", "spans": ["甲"]}'


@pytest.mark.parametrize("line, message", [
    ('{"id": "x1", "q": "谁?", "doc": "d1", "spans": ["甲"]', "not valid JSON"),
    ('["x1", "谁?"]', "expected a JSON object"),
    ('{"id": "x2", "q": "谁?", "spans": ["甲"]}', "missing field(s) doc"),
    ('{"id": "x2", "q": "", "doc": "d1", "spans": ["甲"]}', "q must be"),
    ('{"id": "x2", "q": "谁?", "doc": "d1", "spans": []}', "spans must be"),
    ('{"id": "x2", "q": "谁?", "doc": "d1", "spans": "甲"}', "spans must be"),
    ('{"id": "x2", "q": "谁?", "doc": "d1", "spans": [" "]}', "spans must be"),
    ('{"id": "x1", "q": "谁?", "doc": "d1", "spans": ["甲"]}', "duplicate id 'x1'"),
    ('{"id": "x2", "q": "谁?", "doc": "nope", "spans": ["甲"]}', "unknown doc 'nope'"),
    ('{"id": "x2", "q": "谁?", "doc": "d1", "spans": ["甲"], "lang": 3}', "lang must be"),
])
def test_bad_lines_name_the_file_and_line(line, message):
    with pytest.raises(QuestionFileError) as err:
        parse_questions(["# comment", GOOD, "", line], "qs.jsonl", known_docs={"d1"})
    assert f"qs.jsonl:4: {message}" in str(err.value)


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n# nothing\n", "utf-8")
    with pytest.raises(QuestionFileError, match="no questions"):
        load_questions(path)


def test_cli_reports_bad_file_with_line(index_dir, tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    good = json.loads(DEV.read_text("utf-8").splitlines()[0])
    path.write_text(json.dumps(good, ensure_ascii=False) + "\n"
                    + json.dumps({**good, "id": "z", "doc": "missing_report"}) + "\n", "utf-8")
    assert main(["eval", str(path), "--index", str(index_dir)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: unknown doc 'missing_report'" in err
    assert "Traceback" not in err

    path.write_text("{oops\n", "utf-8")
    assert main(["eval", str(path), "--index", str(index_dir)]) == 2
    assert f"{path}:1: not valid JSON" in capsys.readouterr().err

    assert main(["eval", str(tmp_path / "absent.jsonl"), "--index", str(index_dir)]) == 2
    assert "cannot read" in capsys.readouterr().err


# ---- the development set ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def dev_questions():
    return load_questions(DEV, set(SEED_LOCALITIES))


@pytest.fixture(scope="module")
def seed_docs(seed_copy):
    from policyrag.ingest.documents import load_documents

    docs, errors = load_documents([seed_copy])
    assert not errors
    return {d.doc_id: d for d in docs}


def test_dev_set_is_big_and_varied(dev_questions):
    assert len(dev_questions) >= 40
    assert {q.lang for q in dev_questions} == {"zh-Hans", "zh-Hant", "en"}
    assert {q.kind for q in dev_questions} == {"fact", "paraphrase"}
    assert {q.doc for q in dev_questions} == set(SEED_LOCALITIES)
    for lang in ("zh-Hans", "zh-Hant", "en"):
        kinds = {q.kind for q in dev_questions if q.lang == lang}
        assert kinds == {"fact", "paraphrase"}, lang


def test_every_span_occurs_in_its_report(dev_questions, seed_docs):
    for q in dev_questions:
        body = normalise(seed_docs[q.doc].text)
        for span in q.spans:
            assert normalise(span) in body, (q.id, span)


def test_every_question_has_a_relevant_chunk_in_the_index(dev_questions, engine):
    counts = relevant_counts(dev_questions, ((c.doc_id, c.text) for c in engine.index.chunks))
    assert [qid for qid, n in counts.items() if n == 0] == []


# ---- `policyrag eval` on the real index ------------------------------------------------------

@pytest.fixture(scope="module")
def eval_json(index_dir):
    # capsys is function-scoped; this module-wide run captures stdout itself.
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["eval", str(DEV), "--index", str(index_dir), "--json",
                     "--retrieval", "all"]) == 0
    return json.loads(buf.getvalue())


def test_eval_json_has_every_mode_and_group(eval_json, dev_questions):
    assert set(eval_json["modes"]) == {"dense", "lexical", "hybrid"}
    for report in eval_json["modes"].values():
        assert report["n"] == len(dev_questions)
        assert set(report["by_lang"]) == {"zh-Hans", "zh-Hant", "en"}
        assert set(report["by_kind"]) == {"fact", "paraphrase"}
        assert report["unanswerable"] == []
        o = report["overall"]
        assert 0 <= o["recall@1"] <= o["recall@3"] <= o["recall@5"] <= o["recall@10"] <= 1


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_recall_at_5_stays_above_the_measured_floor(eval_json, mode):
    recall = eval_json["modes"][mode]["overall"]["recall@5"]
    assert recall >= RECALL5_FLOOR[mode], f"{mode} recall@5 fell to {recall:.3f}"


def test_eval_text_output_lists_misses(index_dir, capsys):
    assert main(["eval", str(DEV), "--index", str(index_dir), "--retrieval", "hybrid",
                 "-k", "1"]) == 0
    out = capsys.readouterr().out
    assert "recall@5" in out and "hybrid" in out and "lang=zh-Hant" in out
    assert "misses (hybrid, no relevant chunk in top 1)" in out


# ---- key-point coverage ----------------------------------------------------------------------

def test_keypoints_name_the_index_localities_and_occur_in_their_reports(seed_docs):
    kp = load_keypoints(KEYPOINTS)["keypoints"]
    assert set(kp) == set(SEED_LOCALITIES.values())
    by_locality = {d.locality: normalise(d.text) for d in seed_docs.values()}
    for loc, items in kp.items():
        assert len(items) >= 5, loc
        for item in items:
            alts = [item] if isinstance(item, str) else item
            assert any(normalise(a) in by_locality[loc] for a in alts), (loc, alts)


def test_coverage_on_a_hand_made_answer():
    keypoints = {"莲都区": ["双招双引", ["产业升级", "生态工业"], "人民至上", "党建引领"],
                 "温州市": ["五城五高地", "全省第三极"],
                 "路桥区": ["七优享"]}
    answer = {
        "question": "各地分别把哪些工作列为重点?",
        "mode": "extractive",
        "localities": [
            {"locality": "蓮都區", "doc_ids": ["000"],  # traditional script still matches
             "points": [{"text": "深入实施“雙招雙引”战略", "citations": ["000#5"]},
                        {"text": "全力主攻生态 工业高质量发展", "citations": ["000#5"]}]},
            {"locality": "温州市", "doc_ids": ["004"],
             "points": [{"text": "系统建设“五城五高地”", "citations": ["004#7"]},
                        {"text": "做强全省第三极", "citations": ["004#7"]}]},
        ],
    }
    cov = keypoint_coverage(answer, keypoints)
    per = {p["locality"]: p for p in cov["localities"]}
    assert per["莲都区"]["score"] == 0.5
    assert per["莲都区"]["missing"] == ["人民至上", "党建引领"]
    assert per["温州市"]["score"] == 1.0
    assert per["路桥区"] == {"locality": "路桥区", "answered": False, "score": 0.0,
                            "covered": [], "missing": ["七优享"]}
    assert cov["macro"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert cov["micro"] == pytest.approx(4 / 7)
    # The whole key-points file is accepted as well as its table.
    assert keypoint_coverage(answer, {"keypoints": keypoints}) == cov


def test_bad_keypoints_file(tmp_path):
    path = tmp_path / "kp.json"
    path.write_text('{"keypoints": {"莲都区": []}}', "utf-8")
    with pytest.raises(QuestionFileError, match="non-empty list"):
        load_keypoints(path)
    path.write_text("{", "utf-8")
    with pytest.raises(QuestionFileError, match="not valid JSON"):
        load_keypoints(path)


def test_keypoints_file_has_several_phrasings():
    data = load_keypoints(KEYPOINTS)
    assert len(data["questions"]) >= 3
    assert any(q.isascii() for q in data["questions"])  # an English phrasing too


def test_eval_scores_a_saved_answer_against_keypoints(index_dir, tmp_path, capsys):
    answer = {"question": "各地区分别把哪些工作作为重点？", "mode": "extractive",
              "localities": [{"locality": "温州市", "doc_ids": ["004_c93a4296dfa4c8a6"],
                              "points": [{"text": "系统建设“五城五高地”,做强全省第三极",
                                          "citations": []}]}]}
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(answer, ensure_ascii=False), "utf-8")
    assert main(["eval", "--keypoints", str(KEYPOINTS), "--answer", str(path),
                 "--index", str(index_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (run,) = out["keypoints"]["runs"]
    per = {p["locality"]: p for p in run["localities"]}
    assert per["温州市"]["score"] == pytest.approx(2 / 10)
    assert per["莲都区"]["answered"] is False and per["莲都区"]["score"] == 0.0

    assert main(["eval", "--answer", str(path), "--index", str(index_dir)]) == 2
    assert "--answer needs --keypoints" in capsys.readouterr().err
    assert main(["eval", "--index", str(index_dir)]) == 2
    assert "give QUESTIONS.jsonl, --keypoints FILE, or both" in capsys.readouterr().err


def test_bad_keypoints_questions(tmp_path):
    path = tmp_path / "kp.json"
    path.write_text('{"questions": [], "keypoints": {"莲都区": ["五个富"]}}', "utf-8")
    with pytest.raises(QuestionFileError, match="questions"):
        load_keypoints(path)


# Measured with the extractive ask of answer.py: 0.80 for the canonical phrasing, 0.76 to 0.82
# for the other four (mean 0.80). Before paraphrases were recognised as priorities questions
# two of them scored 0.30 and 0.23, which the per-phrasing floor catches.
ASK_COVERAGE_FLOOR = 0.7
PHRASING_COVERAGE_FLOOR = 0.6


def test_eval_runs_ask_by_locality_for_keypoint_coverage(index_dir, capsys):
    pytest.importorskip("policyrag.answer.extractive")
    assert main(["eval", "--keypoints", str(KEYPOINTS), "--index", str(index_dir),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    runs = out["keypoints"]["runs"]
    assert [r["question"] for r in runs] == load_keypoints(KEYPOINTS)["questions"]
    for r in runs:
        assert {p["locality"] for p in r["localities"]} == set(SEED_LOCALITIES.values())
        assert all(0.0 <= p["score"] <= 1.0 for p in r["localities"])
    canonical = runs[0]
    assert canonical["macro"] >= ASK_COVERAGE_FLOOR, canonical
    for r in runs[1:]:
        assert r["macro"] >= PHRASING_COVERAGE_FLOOR, (r["question"], r["macro"])
