"""Batch reports (`policyrag summarize`) on the real seeds and the real default model."""

from __future__ import annotations

import csv
import json
import re

import pytest

from policyrag.answer.extractive import Answerer
from policyrag.answer.reports import (
    CSV_COLUMNS,
    QuestionsError,
    markdown,
    parse_formats,
    read_questions,
    run_batch,
)
from policyrag.cli import main
from tests.conftest import SEED_LOCALITIES

QUESTIONS = ["各地区分别把哪些工作作为重点？", "What did each locality prioritize?",
             "各地區如何招商引資？"]


# ---------------------------------------------------------------- question files


def test_questions_one_per_line_skip_blanks_and_comments(tmp_path):
    f = tmp_path / "q.txt"
    f.write_text("\ufeff# my questions\n各地区的重点？\n\n  How about Luqiao?  \n", "utf-8")
    assert read_questions(f) == ["各地区的重点？", "How about Luqiao?"]


def test_questions_as_json_or_yaml_lists(tmp_path):
    j = tmp_path / "q.json"
    j.write_text(json.dumps(["甲？", {"question": "乙？"}, ""], ensure_ascii=False), "utf-8")
    assert read_questions(j) == ["甲？", "乙？"]
    y = tmp_path / "q.yaml"
    y.write_text("- 甲？\n- question: 乙？\n", "utf-8")
    assert read_questions(y) == ["甲？", "乙？"]
    y2 = tmp_path / "q.yml"
    y2.write_text("questions:\n  - What did each locality prioritize?\n", "utf-8")
    assert read_questions(y2) == ["What did each locality prioritize?"]


@pytest.mark.parametrize("name,content,why", [
    ("empty.txt", "\n# nothing\n", "no questions"),
    ("bad.json", "[1, 2", "not valid JSON"),
    ("bad.yaml", "- [unclosed", "not valid YAML"),
    ("dict.json", '{"a": 1}', "list of questions"),
])
def test_bad_question_files(tmp_path, name, content, why):
    f = tmp_path / name
    f.write_text(content, "utf-8")
    with pytest.raises(QuestionsError, match=why):
        read_questions(f)
    with pytest.raises(QuestionsError, match="cannot read"):
        read_questions(tmp_path / "missing.txt")


def test_formats():
    assert parse_formats("md,json,csv") == ["md", "json", "csv"]
    assert parse_formats(" CSV , markdown,csv") == ["csv", "md"]
    with pytest.raises(QuestionsError, match="unknown format"):
        parse_formats("md,pdf")


# ---------------------------------------------------------------- the batch command


def test_summarize_writes_complete_files_and_survives_a_failing_question(cli, tmp_path,
                                                                          seed_copy):
    qfile = tmp_path / "questions.txt"
    bad = "\x01\x02"  # nothing left once control characters go: this question fails
    qfile.write_text("\n".join([QUESTIONS[0], bad, QUESTIONS[1], QUESTIONS[2]]) + "\n", "utf-8")
    out_dir = tmp_path / "out"
    rc, out, err = cli("summarize", "--questions", str(qfile), "--by-locality", "--out",
                       str(out_dir))
    assert rc == 1  # one question failed ...
    assert "question 2 failed" in err and "answered 3 of 4" in out  # ... and was reported
    assert sorted(p.name for p in out_dir.iterdir()) == ["answers.csv", "answers.json",
                                                         "report.md"]

    data = json.loads((out_dir / "answers.json").read_text("utf-8"))
    assert [d["question"] for d in data] == [QUESTIONS[0], bad, QUESTIONS[1], QUESTIONS[2]]
    assert data[1]["localities"] == [] and "empty" in data[1]["error"]
    texts = {p.stem: p.read_text("utf-8") for p in seed_copy.glob("*.txt")}
    from policyrag.ingest.documents import load_documents

    docs = {d.doc_id: d for d in load_documents([seed_copy])[0]}
    assert texts  # the seeds are there to check against
    n_citations = 0
    for d in (data[0], data[2], data[3]):
        assert set(d) == {"question", "mode", "localities"}
        named = {loc["locality"] for loc in d["localities"]}
        if d["question"] == QUESTIONS[2]:
            # Only the reports that speak of attracting investment answer; Wenzhou's does not.
            assert {"丽水经开区", "莲都区"} <= named and "温州市" not in named
        else:
            assert named == set(SEED_LOCALITIES.values())
        for loc in d["localities"]:
            for p in loc["points"]:
                for c in p["citations"]:
                    n_citations += 1
                    assert docs[c["doc_id"]].text[c["start"]:c["end"]] == c["quote"]
                    assert SEED_LOCALITIES[c["doc_id"]] == loc["locality"]

    with (out_dir / "answers.csv").open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    assert len(rows) == n_citations
    assert {r["question"] for r in rows} == set(QUESTIONS)
    for r in rows:
        assert r["quote"] in docs[r["doc_id"]].text
        assert SEED_LOCALITIES[r["doc_id"]] == r["locality"] and r["point"]

    md = (out_dir / "report.md").read_text("utf-8")
    for n, q in enumerate([QUESTIONS[0], bad, QUESTIONS[1], QUESTIONS[2]], 1):
        assert f"## {n}. {q.strip()}" in md or n == 2
    assert "**Failed:**" in md
    assert md.count("### 丽水经开区") == 3
    refs = set(re.findall(r"\[\^(q\d+-\d+)\](?!:)", md))
    defs = set(re.findall(r"^\[\^(q\d+-\d+)\]:", md, flags=re.M))
    assert refs == defs and len(defs) == n_citations
    assert "——抓“双招双引”塑造发展实力" in md


def test_summarize_one_format_from_a_yaml_list(cli, tmp_path):
    qfile = tmp_path / "q.yaml"
    qfile.write_text("- 招商引资\n- question: How does Luqiao plan to attract private "
                     "investment?\n", "utf-8")
    rc, out, _ = cli("summarize", "--questions", str(qfile), "--out", str(tmp_path / "o"),
                     "--format", "json", "-k", "2")
    assert rc == 0 and "answered 2 of 2" in out
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["answers.json"]
    data = json.loads((tmp_path / "o" / "answers.json").read_text("utf-8"))
    assert all(len(d["localities"]) == 1 and d["localities"][0]["locality"] is None
               and 1 <= len(d["localities"][0]["points"]) <= 2 for d in data)


def test_summarize_abstractive_without_a_model_falls_back_and_says_so(cli, tmp_path):
    qfile = tmp_path / "q.txt"
    qfile.write_text("招商引资\n", "utf-8")
    rc, _, err = cli("summarize", "--questions", str(qfile), "--out", str(tmp_path / "o"),
                     "--mode", "abstractive", "--backend", "none", "--format", "md,json")
    assert rc == 0 and "abstractive mode unavailable" in err
    data = json.loads((tmp_path / "o" / "answers.json").read_text("utf-8"))
    assert data[0]["mode"] == "extractive" and "unavailable" in data[0]["notice"]
    assert "abstractive mode unavailable" in (tmp_path / "o" / "report.md").read_text("utf-8")


def test_summarize_bad_arguments_are_user_errors(cli, tmp_path):
    rc, _, err = cli("summarize", "--questions", str(tmp_path / "none.txt"))
    assert rc == 2 and "cannot read" in err
    q = tmp_path / "q.txt"
    q.write_text("改革\n", "utf-8")
    rc, _, err = cli("summarize", "--questions", str(q), "--format", "pdf")
    assert rc == 2 and "unknown format" in err


def test_run_batch_and_markdown_directly(engine):
    outcomes = run_batch(Answerer(engine), ["改革", ""], k=2, progress=False)
    assert outcomes[0].answer is not None and outcomes[1].error
    md = markdown(outcomes, titles={d: "T" for d in SEED_LOCALITIES})
    assert "## 1. 改革" in md and "«T»" in md and "**Failed:**" in md


def test_real_cli_end_to_end(index_dir, tmp_path, capsys):
    """Once without shortcuts: the command as a user runs it, loading its own model."""
    qfile = tmp_path / "q.txt"
    qfile.write_text("各地区分别把哪些工作作为重点？\n", "utf-8")
    rc = main(["summarize", "--index", str(index_dir), "--questions", str(qfile), "--out",
               str(tmp_path / "o"), "--by-locality", "--format", "csv"])
    out, _ = capsys.readouterr()
    assert rc == 0 and "answered 1 of 1" in out
    rows = list(csv.DictReader((tmp_path / "o" / "answers.csv").open(encoding="utf-8-sig")))
    assert {r["locality"] for r in rows} == set(SEED_LOCALITIES.values())
