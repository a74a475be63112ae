"""How often `ask` says "the reports do not answer this", on questions they do and do not answer.

    python benchmarks/offtopic.py [--index indexes/default]

Prints the share of development questions (answerable by construction) flagged as unanswered,
and the share of off-topic questions (tests/data/offtopic_questions.jsonl, checked against the
seeds by hand) that pass as answered. The thresholds are `answered_coverage` and
`answered_bm25` in policyrag.config. Meaningful on the seeds index: buried in a large
collection, an "off-topic" question may well be answered by the other texts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from policyrag.answer.extractive import Answerer  # noqa: E402
from policyrag.engine import Engine  # noqa: E402
from policyrag.evaluation import load_questions  # noqa: E402

DATA = ROOT / "tests" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", type=Path, default=ROOT / "indexes" / "default")
    args = ap.parse_args()
    answerer = Answerer(Engine(args.index))
    dev = load_questions(DATA / "dev_questions.jsonl")
    off = [json.loads(line)["q"] for line in
           (DATA / "offtopic_questions.jsonl").read_text("utf-8").splitlines() if line.strip()]
    flagged = [q for q in dev if not answerer.ask(q.q).answered]
    passed = [q for q in off if answerer.ask(q).answered]
    print(f"answerable questions said to be unanswered: {len(flagged)}/{len(dev)} "
          f"({len(flagged) / len(dev):.1%})")
    print(f"off-topic questions that pass as answered:  {len(passed)}/{len(off)} "
          f"({len(passed) / len(off):.1%})")
    for q in passed:
        print(f"  passed: {q}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
