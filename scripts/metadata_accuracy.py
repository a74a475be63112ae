"""Per-type accuracy of locality, level, doc_type and date on the hand-labelled sample.

    PYTHONPATH=src python scripts/metadata_accuracy.py [--errors]
"""

from __future__ import annotations

import sys

from policyrag.ingest.metadata_check import FIELDS, accuracy, format_table, load, run


def main() -> None:
    records = load()
    outcomes = run(records)
    held = {r["id"] for r in records if r.get("held_out")}
    print(f"{len(records)} hand-labelled texts (tests/data/metadata_labels.jsonl)\n")
    print(format_table(accuracy(outcomes)))
    # The held-out texts were labelled after the extractor was written and first scored blind.
    for name, part in (("development", [o for o in outcomes if o.id not in held]),
                       ("held-out", [o for o in outcomes if o.id in held])):
        print(f"\n{name} ({len(part)})\n{format_table(accuracy(part))}")
    if "--errors" in sys.argv:
        print()
        for o in outcomes:
            wrong = [f"{f}: {o.expected[f]} -> {o.got[f]}" for f in FIELDS if not o.correct(f)]
            if wrong:
                print(o.id, o.doc_type, "; ".join(wrong))


if __name__ == "__main__":
    main()
