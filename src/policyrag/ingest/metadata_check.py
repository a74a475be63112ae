"""Accuracy of extracted metadata against the hand-labelled sample (tests/data/metadata_labels.jsonl).

Each labelled text is read as a user's file would be: its headline (where the source had one
apart from the text) on the first line, then the text (its first 3,000 characters and, for longer
texts labelled since, its last 300).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from policyrag.ingest import cleaning
from policyrag.ingest.metadata import Metadata, extract

FIELDS = ("locality", "level", "doc_type", "date")
LABELS = Path(__file__).resolve().parents[3] / "tests" / "data" / "metadata_labels.jsonl"


@dataclass
class Outcome:
    id: str
    doc_type: str  # the labelled type, by which results are grouped
    expected: dict[str, str | None]
    got: dict[str, str | None]

    def correct(self, field: str) -> bool:
        return self.expected[field] == self.got[field]


def load(path: Path = LABELS) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def as_file_text(record: dict) -> str:
    """Headline, opening and (for long texts, where a signature's date sits) the last lines."""
    title, head = record.get("title"), record["head"]
    text = f"{title}\n{head}" if title and not head.startswith(title) else head
    return f"{text}\n……\n{record['tail']}" if record.get("tail") else text


def run(records: list[dict]) -> list[Outcome]:
    outcomes = []
    for rec in records:
        raw = as_file_text(rec)
        meta: Metadata = extract(raw, cleaning.clean(raw))
        got = {"locality": meta.locality, "level": meta.locality_level,
               "doc_type": meta.doc_type, "date": meta.date}
        outcomes.append(Outcome(rec["id"], rec["labels"]["doc_type"], rec["labels"], got))
    return outcomes


def accuracy(outcomes: list[Outcome]) -> dict[str, dict[str, tuple[int, int]]]:
    """{labelled type or 'all': {field: (correct, total)}}."""
    table: dict[str, dict[str, list[int]]] = defaultdict(lambda: {f: [0, 0] for f in FIELDS})
    for o in outcomes:
        for group in (o.doc_type, "all"):
            for f in FIELDS:
                table[group][f][0] += o.correct(f)
                table[group][f][1] += 1
    return {g: {f: (c, n) for f, (c, n) in row.items()} for g, row in table.items()}


def format_table(acc: dict[str, dict[str, tuple[int, int]]]) -> str:
    lines = [f"| type | n | {' | '.join(FIELDS)} |", "|---|---|" + "---|" * len(FIELDS)]
    for group in sorted(acc, key=lambda g: (g == "all", g)):
        row = acc[group]
        n = row[FIELDS[0]][1]
        cells = " | ".join(f"{c / t:.2f}" for c, t in (row[f] for f in FIELDS))
        lines.append(f"| {group} | {n} | {cells} |")
    return "\n".join(lines)
