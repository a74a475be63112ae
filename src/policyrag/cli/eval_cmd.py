"""`policyrag eval`: recall, MRR and nDCG of a question set; key-point coverage of `ask`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from policyrag.cli import UserError, emit_json
from policyrag.engine import Engine
from policyrag.evaluation import (
    QuestionFileError,
    evaluate_engine,
    format_coverage,
    format_misses,
    format_reports,
    format_side_by_side,
    keypoint_coverage,
    keypoint_questions,
    load_keypoints,
    load_questions,
)
from policyrag.search.retrieval import MODES


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "eval", parents=[common], help="measure retrieval on a question set",
        description="Score retrieval on QUESTIONS.jsonl: one JSON object a line, "
                    '{"id", "q", "doc", "spans", optional "lang", "kind"}. A hit is relevant '
                    "when it comes from `doc` and contains one of `spans` (compared without "
                    "pinyin, script, width or whitespace differences). Prints recall@1/3/5/10, "
                    "MRR@10 and nDCG@10 overall and by lang/kind, and the misses. With "
                    "--keypoints, also scores `ask --by-locality` by the share of each "
                    "locality's key points its answer mentions.",
        epilog="Example: policyrag eval tests/data/dev_questions.jsonl --keypoints "
               "tests/data/locality_keypoints.json")
    p.add_argument("questions", type=Path, nargs="?", metavar="QUESTIONS.jsonl")
    p.add_argument("-k", type=int, default=5,
                   help="a question is a miss when no relevant hit is in the top k (default 5)")
    p.add_argument("--retrieval", choices=(*MODES, "all"), default="all",
                   help="retrieval mode to score, or all three side by side (default: all)")
    p.add_argument("--keypoints", type=Path, metavar="FILE",
                   help='key points per locality ({"questions": [...], "keypoints": {locality: '
                        "[phrase | [alternatives]]}}): runs ask --by-locality on each question "
                        "and reports the share of key points each locality's answer mentions")
    p.add_argument("--answer", type=Path, metavar="ANSWER.json",
                   help="with --keypoints, score this saved `ask --by-locality --json` output "
                        "instead of running ask")
    p.add_argument("--at-scale", type=Path, metavar="DIR",
                   help="a second index holding the same reports buried among many other "
                        "texts (e.g. built with: policyrag index build seeds/ "
                        "../shared/corpus/distractors-dev.jsonl.gz --index indexes/scale); "
                        "prints recall@5 and MRR on both side by side")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--per-question", action="store_true",
                   help="with --json, include every question's rank and scores")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    if args.answer is not None and args.keypoints is None:
        raise UserError("--answer needs --keypoints FILE to score it against")
    if args.questions is None and args.keypoints is None:
        raise UserError("give QUESTIONS.jsonl, --keypoints FILE, or both")
    if args.k < 1:
        raise UserError("-k must be at least 1")
    engine = Engine(args.index, args.model)
    out: dict = {"index": str(engine.root)}
    text: list[str] = []
    try:
        if args.questions is not None:
            questions = load_questions(args.questions, set(engine.index.documents))
            modes = list(MODES) if args.retrieval == "all" else [args.retrieval]
            reports = evaluate_engine(engine, questions, modes, args.k)
            out.update({"questions": str(args.questions), "n": len(questions), "k": args.k,
                        "modes": {r.mode: r.to_dict(args.per_question) for r in reports}})
            text += [f"{len(questions)} questions from {args.questions}; index {engine.root}\n",
                     format_reports(reports)]
            if args.at_scale is not None:
                scale = Engine(args.at_scale, args.model)
                at_scale = evaluate_engine(scale, questions, modes, args.k)
                out["at_scale"] = {"index": str(args.at_scale),
                                   "documents": len(scale.index.documents),
                                   "chunks": len(scale.index.chunks),
                                   "modes": {r.mode: r.to_dict(args.per_question)
                                             for r in at_scale}}
                text += [f"\nseeds only ({len(engine.index.chunks)} chunks) vs at scale "
                         f"({args.at_scale}: {len(scale.index.documents)} texts, "
                         f"{len(scale.index.chunks)} chunks)\n",
                         format_side_by_side(reports, at_scale),
                         "\nat scale:", format_misses(at_scale[-1:])]
        if args.keypoints is not None:
            keypoints = load_keypoints(args.keypoints)
            runs = []
            for answer in _answers(engine, keypoints, args.answer):
                cov = keypoint_coverage(answer, keypoints)
                runs.append({"question": answer.get("question"), "mode": answer.get("mode"),
                             **cov})
                text += [f"\nkey-point coverage of ask --by-locality ({answer.get('mode')}): "
                         f"{answer.get('question')}", format_coverage(cov)]
            mean = sum(r["macro"] for r in runs) / len(runs)
            out["keypoints"] = {"file": str(args.keypoints), "runs": runs, "mean_macro": mean}
            if len(runs) > 1:
                text.append(f"\nmean coverage over {len(runs)} phrasings: {mean:.2f}")
    except QuestionFileError as exc:
        raise UserError(str(exc)) from exc
    if args.json:
        emit_json(out)
    else:
        print("\n".join(text))
    return 0


def _answers(engine: Engine, keypoints: dict, saved: Path | None) -> list[dict]:
    if saved is not None:
        try:
            answer = json.loads(saved.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read the answer {saved}: {exc}") from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("localities"), list):
            raise UserError(f"{saved} is not `policyrag ask --json` output (no localities list)")
        return [answer]
    from policyrag.answer.extractive import Answerer

    answerer = Answerer(engine)
    return [answerer.ask(q, by_locality=True).to_dict() for q in keypoint_questions(keypoints)]
