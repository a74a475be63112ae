"""Batch reports: answer every question in a file, write Markdown, JSON and CSV.

Questions come one per line (blank lines and lines starting with # are skipped), or as a JSON or
YAML list (of strings, or of objects with a "question" key). One failing question is reported
and the others still complete.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from policyrag.answer.extractive import ABSTRACTIVE, Answer, Answerer
from policyrag.search.retrieval import Filters

FORMATS = ("md", "json", "csv")
FILENAMES = {"md": "report.md", "json": "answers.json", "csv": "answers.csv"}
CSV_COLUMNS = ("question", "locality", "point", "doc_id", "quote")


class QuestionsError(ValueError):
    """The questions file cannot be read or holds no questions."""


@dataclass
class Outcome:
    question: str
    answer: Answer | None = None
    error: str | None = None

    def to_dict(self, mode: str) -> dict:
        if self.answer is not None:
            return self.answer.to_dict()
        return {"question": self.question, "mode": mode, "localities": [], "error": self.error}


def read_questions(path: Path) -> list[str]:
    try:
        raw = Path(path).read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionsError(f"cannot read {path}: {exc}") from exc
    suffix = Path(path).suffix.lower()
    stripped = raw.lstrip()
    if suffix == ".json" or (suffix not in (".yaml", ".yml") and stripped.startswith("[")):
        try:
            items = json.loads(raw)
        except ValueError as exc:
            if suffix == ".json":
                raise QuestionsError(f"{path} is not valid JSON: {exc}") from exc
            items = None  # a plain line that happens to start with "["
        if items is not None:
            return _from_list(items, path)
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            items = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise QuestionsError(f"{path} is not valid YAML: {exc}") from exc
        if isinstance(items, dict) and "questions" in items:
            items = items["questions"]
        return _from_list(items, path)
    questions = [line.strip() for line in raw.splitlines()]
    questions = [q for q in questions if q and not q.startswith("#")]
    if not questions:
        raise QuestionsError(f"{path} holds no questions (one per line, or a JSON/YAML list)")
    return questions


def _from_list(items: object, path: Path) -> list[str]:
    if isinstance(items, dict) and "questions" in items:
        items = items["questions"]
    if not isinstance(items, list):
        raise QuestionsError(f"{path} must hold a list of questions")
    out = []
    for item in items:
        if isinstance(item, dict):
            item = item.get("question")
        if item is None or not str(item).strip():
            continue
        out.append(str(item).strip())
    if not out:
        raise QuestionsError(f"{path} holds no questions")
    return out


def run_batch(answerer: Answerer, questions: list[str], *, by_locality: bool = False,
              mode: str = "extractive", k: int | None = None, filters: Filters | None = None,
              rewrite: Callable[[Answer], Answer] | None = None, progress: bool | None = None,
              on_error: Callable[[int, str, str], None] | None = None) -> list[Outcome]:
    """Answer each question; an error becomes that question's outcome, not the batch's end."""
    from tqdm.auto import tqdm

    outcomes: list[Outcome] = []
    disable = not sys.stderr.isatty() if progress is None else not progress
    bar = tqdm(questions, desc="questions", unit="q", disable=disable, file=sys.stderr)
    for n, question in enumerate(bar, 1):
        try:
            answer = answerer.ask(question, by_locality=by_locality, k=k, filters=filters)
            if mode == ABSTRACTIVE and rewrite is not None:
                answer = rewrite(answer)
            outcomes.append(Outcome(question, answer))
        except Exception as exc:  # noqa: BLE001 - one bad question must not end the batch
            message = str(exc) or exc.__class__.__name__
            outcomes.append(Outcome(question, error=message))
            if on_error is not None:
                on_error(n, question, message)
    bar.close()
    return outcomes


# ---------------------------------------------------------------- writers


def write_json(outcomes: list[Outcome], path: Path, mode: str = "extractive") -> Path:
    data = [o.to_dict(mode) for o in outcomes]
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return path


def csv_rows(outcomes: Iterable[Outcome]) -> Iterable[dict[str, str]]:
    for o in outcomes:
        if o.answer is None:
            continue
        for loc in o.answer.localities:
            for p in loc.points:
                for c in p.citations:
                    yield {"question": o.question, "locality": loc.locality or "",
                           "point": p.text, "doc_id": c.doc_id, "quote": c.quote}


def write_csv(outcomes: list[Outcome], path: Path) -> Path:
    # utf-8-sig so that spreadsheet programs read the Chinese correctly.
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_rows(outcomes))
    return path


def _md_text(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _footnote_markers(text: str, labels: list[str]) -> str:
    """[m] (the m-th citation of a locality) as the Markdown footnote reference [^label]."""
    def sub(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return f"[^{labels[n - 1]}]" if 1 <= n <= len(labels) else m.group(0)

    return re.sub(r"\[(\d+)\]", sub, text)


def markdown(outcomes: list[Outcome], *, titles: dict[str, str] | None = None,
             heading: str = "policyrag report", mode: str = "extractive") -> str:
    titles = titles or {}
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    failed = sum(o.answer is None for o in outcomes)
    lines = [f"# {heading}", "",
             f"{len(outcomes)} question{'s' if len(outcomes) != 1 else ''}, {failed} failed · "
             f"mode: {mode} · generated {now}", ""]
    for qn, o in enumerate(outcomes, 1):
        lines += [f"## {qn}. {_md_text(o.question)}", ""]
        if o.answer is None:
            lines += [f"> **Failed:** {_md_text(o.error or 'unknown error')}", ""]
            continue
        if o.answer.notice:
            lines += [f"> {_md_text(o.answer.notice)}", ""]
        notes: list[str] = []
        for loc in o.answer.localities:
            name = loc.locality or "All localities"
            docs = ", ".join(loc.doc_ids)
            lines += [f"### {name}" + (f" ({docs})" if docs else ""), ""]
            if not loc.points:
                lines += ["_No passage answers this question here._", ""]
                continue
            labels: dict = {}  # citation -> footnote label; [m] is the m-th of the locality
            for p in loc.points:
                for c in p.citations:
                    if c in labels:
                        continue
                    labels[c] = f"q{qn}-{len(notes) + 1}"
                    title = titles.get(c.doc_id)
                    where = f"{c.doc_id}" + (f" «{_md_text(title)}»" if title else "")
                    notes.append(f"[^{labels[c]}]: {where}, {c.chunk_id}, chars "
                                 f"{c.start}–{c.end}: “{_md_text(c.quote)}”")
                text = _md_text(p.text)
                if o.answer.mode == ABSTRACTIVE:
                    text = _footnote_markers(text, list(labels.values()))
                    marks = "".join(f"[^{labels[c]}]" for c in p.citations
                                    if f"[^{labels[c]}]" not in text)
                else:
                    marks = "".join(f"[^{labels[c]}]" for c in p.citations)
                lines.append(f"- {text}{marks}")
            lines.append("")
        lines += notes + [""]
    return "\n".join(lines)


def write_markdown(outcomes: list[Outcome], path: Path, **kwargs) -> Path:
    path.write_text(markdown(outcomes, **kwargs), "utf-8")
    return path


def parse_formats(spec: str) -> list[str]:
    formats = [f.strip().lower().lstrip(".") for f in spec.split(",") if f.strip()]
    formats = ["md" if f == "markdown" else f for f in formats]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise QuestionsError(f"unknown format(s) {', '.join(unknown) or spec!r}; "
                             f"choose from {','.join(FORMATS)}")
    return list(dict.fromkeys(formats))


def write_all(outcomes: list[Outcome], out_dir: Path, formats: list[str], *,
              mode: str = "extractive", titles: dict[str, str] | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = out_dir / FILENAMES[fmt]
        if fmt == "md":
            written.append(write_markdown(outcomes, path, titles=titles, mode=mode))
        elif fmt == "json":
            written.append(write_json(outcomes, path, mode))
        else:
            written.append(write_csv(outcomes, path))
    return written
