"""The development question set and the off-topic set, checked by scripts/check_devset.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.devset_checker import checker

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
DEV = DATA / "dev_questions.jsonl"
OFFTOPIC = DATA / "offtopic_questions.jsonl"


@pytest.fixture(scope="module")
def result(seeds_dir):
    return checker.check(DEV, seeds_dir)


def _rewrite(tmp_path: Path, qid: str, **changes) -> Path:
    rows = [json.loads(line) for line in DEV.read_text("utf-8").splitlines() if line.strip()]
    for row in rows:
        if row["id"] == qid:
            row.update(changes)
    out = tmp_path / "dev.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return out


def test_dev_set_passes_the_checker(result):
    assert result.errors == []
    assert result.n >= 165


def test_dev_set_balances_languages_and_place_naming(result):
    share = {k: v / result.n for k, v in result.counts["lang"].items()}
    assert share["zh-Hans"] == pytest.approx(0.45, abs=0.05)
    assert share["zh-Hant"] == pytest.approx(0.20, abs=0.05)
    assert share["en"] == pytest.approx(0.35, abs=0.05)
    place = result.counts["place"]
    assert place["named"] / result.n == pytest.approx(0.5, abs=0.1)
    assert set(result.counts["kind"]) == {"fact", "paraphrase"}
    assert all(n >= 30 for n in result.counts["doc"].values())


def test_a_span_missing_from_its_report_is_an_error(tmp_path, seeds_dir):
    # The span exists, but in Wenzhou's report, not Liandu's.
    bad = _rewrite(tmp_path, "ld12", spans=["五城五高地"])
    out = checker.check(bad, seeds_dir)
    assert any(e.startswith("ld12: span '五城五高地'") for e in out.errors)


def test_a_wrong_place_label_is_an_error(tmp_path, seeds_dir):
    named_as_none = checker.check(_rewrite(tmp_path, "wz01", place="none"), seeds_dir)
    assert any(e.startswith("wz01: place 'none'") for e in named_as_none.errors)
    none_as_named = checker.check(_rewrite(tmp_path, "ld12", place="named"), seeds_dir)
    assert any(e.startswith("ld12: place 'named'") for e in none_as_named.errors)


def test_a_duplicate_id_or_wrong_script_is_an_error(tmp_path, seeds_dir):
    dup = checker.check(_rewrite(tmp_path, "ld13", id="ld12"), seeds_dir)
    assert any("duplicate id 'ld12'" in e for e in dup.errors)
    script = checker.check(_rewrite(tmp_path, "ld14", lang="zh-Hant"), seeds_dir)
    assert any(e.startswith("ld14: lang zh-Hant") for e in script.errors)


def test_checker_cli_exits_zero_and_prints_counts(capsys):
    assert checker.main([str(DEV)]) == 0
    out = capsys.readouterr().out
    assert "place: named" in out and "lang: en" in out and out.rstrip().endswith("OK")


def test_offtopic_questions_are_well_formed_and_name_no_seed_place():
    rows = [json.loads(line) for line in OFFTOPIC.read_text("utf-8").splitlines()
            if line.strip()]
    assert len(rows) >= 30
    assert len({r["id"] for r in rows}) == len(rows)
    assert {r["lang"] for r in rows} == {"zh-Hans", "zh-Hant", "en"}
    dev_ids = {json.loads(line)["id"] for line in DEV.read_text("utf-8").splitlines()
               if line.strip()}
    assert not dev_ids & {r["id"] for r in rows}
    for r in rows:
        assert r["q"].strip()
        assert not checker.names_place(r["q"], checker.ANY_PLACE), r["id"]


def test_held_out_questions_pass_the_checker_and_are_new(seeds_dir):
    """tests/data/heldout_questions.jsonl was written after retrieval was tuned, to check it
    honestly: its spans must hold, and none of its questions may repeat a development one."""
    heldout = DATA / "heldout_questions.jsonl"
    report = checker.check(heldout, seeds_dir)
    assert not report.errors, report.errors
    asked = {json.loads(line)["q"] for line in DEV.read_text("utf-8").splitlines() if line.strip()}
    rows = [json.loads(line) for line in heldout.read_text("utf-8").splitlines() if line.strip()]
    assert len(rows) >= 50 and not {r["q"] for r in rows} & asked
