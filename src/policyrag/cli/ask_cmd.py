"""`policyrag ask`, `summarize-doc` and `summarize`: cited answers, one report's priorities, and
batch reports."""

from __future__ import annotations

import argparse
import shutil
import sys
import textwrap
from pathlib import Path

from policyrag.answer.extractive import (
    ABSTRACTIVE,
    EXTRACTIVE,
    MODES,
    Answer,
    Answerer,
    Citation,
    Point,
)
from policyrag.cli import UserError, emit_json
from policyrag.cli.search_cmd import add_filter_args, filters_from
from policyrag.display import quoted_in_chinese
from policyrag.engine import Engine

BACKENDS = ("auto", "llama-cpp", "openai", "none")
SHOWN_CHARS = 220  # a point longer than this is cut in the human output (never in JSON)


def _answer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=MODES, default=EXTRACTIVE,
                   help="extractive (default): the report's own sentences; abstractive: a "
                        "generative model rewrites them in the question's language, keeping "
                        "the citation markers (falls back to extractive if no model)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="generative backend for --mode abstractive: auto (an OpenAI-compatible "
                        "server from POLICYRAG_OPENAI_BASE_URL, else the packaged local "
                        "model), llama-cpp, openai or none")
    p.add_argument("--max-tokens", type=int, default=200, metavar="N",
                   help="longest generated answer per locality, in tokens (default 200)")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                   help="with --mode abstractive, show each generated sentence on stderr as soon "
                        "as it passed the check against its sources (default: when stderr is a "
                        "terminal)")
    p.add_argument("--translate-points", action="store_true",
                   help="extractive mode: add an English rendering of each quoted Chinese point "
                        "(machine translation by the generative model, checked; about 2 s a "
                        "point on 2 cores)")
    p.add_argument("--reranker", metavar="DIR", default=None,
                   help="a local cross-encoder folder to rerank passages with (off by default: "
                        "no Chinese-capable reranker ships in a package)")


def _set_k_help(p: argparse.ArgumentParser, text: str) -> None:
    for action in p._actions:
        if action.dest == "k":
            action.help = text


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "ask", parents=[common], help="answer a question with cited points",
        description="Answer a question (simplified or traditional Chinese, or English) with the "
                    "report sentences that answer it, each citing document, chunk and "
                    "character offsets. --by-locality answers for each locality side by side.",
        epilog="Example: policyrag ask 各地区分别把哪些工作作为重点？ --by-locality")
    p.add_argument("question", help="the question")
    p.add_argument("--by-locality", action="store_true",
                   help="retrieve and answer separately for every locality (or each --locality)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _answer_args(p)
    add_filter_args(p)
    _set_k_help(p, "most points per locality (default 5; a whole list of priorities, up to 10, "
                   "for 'what were the priorities' questions)")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser(
        "summarize-doc", parents=[common], help="one report's main priorities, with citations",
        description="Summarise one report without a question: its own enumerations of "
                    "priorities (一是…, ——抓…, 要突出…) and its most central sentences.")
    p.add_argument("doc_id", metavar="DOC_ID", help="as listed by: policyrag index info")
    p.add_argument("-k", type=int, default=None, help="most points (default: the whole list)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _answer_args(p)
    p.set_defaults(func=cmd_summarize_doc)

    p = sub.add_parser(
        "summarize", parents=[common], help="answer a file of questions; write md/json/csv",
        description="Answer every question in FILE (one per line, or a JSON/YAML list) and "
                    "write report.md (citations as footnotes), answers.json (a list of `ask "
                    "--json` objects) and answers.csv (question, locality, point, doc_id, "
                    "quote). A failing question is reported; the rest still complete.")
    p.add_argument("--questions", required=True, type=Path, metavar="FILE")
    p.add_argument("--by-locality", action="store_true", help="answer per locality")
    p.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR",
                   help="output folder (default: %(default)s)")
    p.add_argument("--format", default="md,json,csv", metavar="md,json,csv",
                   help="which files to write (default: all three)")
    _answer_args(p)
    add_filter_args(p)
    _set_k_help(p, "most points per locality (as for ask)")
    p.set_defaults(func=cmd_summarize)


def _answerer(args: argparse.Namespace) -> tuple[Engine, Answerer]:
    from policyrag.search.retrieval import CrossEncoderReranker

    engine = Engine(args.index, args.model)
    reranker = CrossEncoderReranker(args.reranker) if args.reranker else None
    return engine, Answerer(engine, reranker=reranker,
                            retrieval=getattr(args, "retrieval", None))


def _rewriter(args: argparse.Namespace):
    from policyrag.answer.abstractive import Rewriter

    if args.max_tokens < 1:
        raise UserError("--max-tokens must be at least 1")
    return Rewriter(backend=args.backend, max_tokens=args.max_tokens)


def cmd_ask(args: argparse.Namespace) -> int:
    if args.k is not None and args.k < 1:
        raise UserError("-k must be at least 1")
    engine, answerer = _answerer(args)
    answer = answerer.ask(args.question, by_locality=args.by_locality, k=args.k,
                          filters=filters_from(args), places=not args.all_places)
    return _show(answer, engine, args)


def cmd_summarize_doc(args: argparse.Namespace) -> int:
    if args.k is not None and args.k < 1:
        raise UserError("-k must be at least 1")
    engine, answerer = _answerer(args)
    answer = answerer.summarize_document(args.doc_id, k=args.k)
    return _show(answer, engine, args)


def _show(answer: Answer, engine: Engine, args: argparse.Namespace) -> int:
    """Rewrite when abstractive was asked for, then print (the notice goes to stderr in JSON
    mode, so stdout stays one JSON object)."""
    if args.mode != ABSTRACTIVE and getattr(args, "translate_points", False):
        _render_in_english(answer)
    if args.mode == ABSTRACTIVE:
        stream = args.stream if args.stream is not None else sys.stderr.isatty()
        from policyrag.answer.abstractive import index_context

        answer = _rewriter(args).rewrite(answer, on_point=_StreamPrinter() if stream else None,
                                         **index_context(engine.index))
    if args.json:
        emit_json(answer.to_dict())
    else:
        print_answer(answer, engine)
    if answer.notice and args.json:
        print(f"policyrag: note: {answer.notice}", file=sys.stderr)
    return 0


def _render_in_english(answer: Answer) -> None:
    from policyrag.answer.abstractive import render_in_english
    from policyrag.answer.generate import GenerationUnavailable

    try:
        done = render_in_english(answer)
    except GenerationUnavailable as exc:
        extra = f"no English rendering of the points: {exc}"
        answer.notice = f"{answer.notice}; {extra}" if answer.notice else extra
        return
    total = sum(len(loc.points) for loc in answer.localities)
    if done < total:
        extra = (f"{total - done} of {total} points have no English rendering: it did not pass "
                 "the check against the Chinese")
        answer.notice = f"{answer.notice}; {extra}" if answer.notice else extra


class _StreamPrinter:
    """Prints checked sentences to stderr as they come; stdout keeps the final answer only."""

    def __init__(self) -> None:
        self._locality: object = ()

    def __call__(self, locality: str | None, point: Point) -> None:
        if self._locality == ():
            print("policyrag: writing the answer; each sentence appears once checked against "
                  "its sources:", file=sys.stderr)
        if locality != self._locality:
            self._locality = locality
            if locality:
                print(f"  == {locality}", file=sys.stderr)
        print(f"  {point.text}", file=sys.stderr, flush=True)


def cmd_summarize(args: argparse.Namespace) -> int:
    from policyrag.answer.reports import (
        QuestionsError,
        parse_formats,
        read_questions,
        run_batch,
        write_all,
    )

    try:
        formats = parse_formats(args.format)
        questions = read_questions(args.questions)
    except QuestionsError as exc:
        raise UserError(str(exc)) from exc
    if args.k is not None and args.k < 1:
        raise UserError("-k must be at least 1")
    from policyrag.answer.abstractive import index_context

    engine, answerer = _answerer(args)
    rewriter = _rewriter(args) if args.mode == ABSTRACTIVE else None

    def report(n: int, question: str, error: str) -> None:
        print(f"policyrag: question {n} failed ({question[:40]}): {error}", file=sys.stderr)

    outcomes = run_batch(answerer, questions, by_locality=args.by_locality, mode=args.mode,
                         k=args.k, filters=filters_from(args),
                         rewrite=(lambda a: rewriter.rewrite(a, **index_context(engine.index)))
                         if rewriter else None, on_error=report)
    titles = {d.doc_id: d.display_title for d in engine.index.documents.values()}
    written = write_all(outcomes, args.out, formats, mode=args.mode, titles=titles)
    failed = sum(o.answer is None for o in outcomes)
    notices = {o.answer.notice for o in outcomes if o.answer is not None and o.answer.notice}
    for notice in sorted(notices):
        print(f"policyrag: note: {notice}", file=sys.stderr)
    print(f"answered {len(outcomes) - failed} of {len(outcomes)} questions; wrote "
          + ", ".join(str(p) for p in written))
    return 1 if failed else 0


# ---------------------------------------------------------------- human output


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def print_answer(answer: Answer, engine: Engine | None = None) -> None:
    width = max(40, min(shutil.get_terminal_size((100, 20)).columns, 100) - 4)
    docs = engine.index.documents if engine is not None else {}
    head = answer.question if answer.question is not None else (
        f"main priorities of {answer.doc_id}")
    print(f"{head}  [{answer.mode}]")
    if answer.notice:
        print(f"note: {answer.notice}")
    if note := quoted_in_chinese(answer.question, answer.mode, _abstractive_switch()):
        print(f"note: {note}")
    if answer.scope:
        print(f"scope: {answer.scope}")
    if answer.mode == ABSTRACTIVE and answer.check:
        print(f"checked: {answer.check['sentences_kept']} of {answer.check['sentences_written']} "
              "generated sentences passed the check against their cited sources")
    if len(answer.localities) == 1 and answer.localities[0].locality is None \
            and answer.question and _sounds_per_locality(answer.question):
        print("tip: add --by-locality to answer for each locality side by side")
    for loc in answer.localities:
        titles = [docs[d].display_title for d in loc.doc_ids if d in docs]
        name = loc.locality or _one_place(loc.doc_ids, docs) or _unnamed(answer)
        print()
        print(f"== {name}" + (f" · {' / '.join(titles)}" if titles else "")
              + (f" ({', '.join(loc.doc_ids)})" if loc.doc_ids else ""))
        if not loc.points:
            print("   nothing in this locality's reports answers the question")
            continue
        sources: list[str] = []
        numbered: dict = {}
        single_doc = len(loc.doc_ids) == 1
        for n, p in enumerate(loc.points, 1):
            marks = ""
            for c in p.citations if answer.mode == ABSTRACTIVE else _merged(p.citations):
                if c not in numbered:
                    numbered[c] = len(numbered) + 1
                    where = c.chunk_id[len(c.doc_id):] if single_doc else c.chunk_id
                    quote = f" “{_shown(c.quote)[:50]}”" if answer.mode == ABSTRACTIVE else ""
                    # No-break spaces keep one source on one line when the list wraps.
                    sources.append(f"[{numbered[c]}]\u00a0{where}\u00a0{c.start}-{c.end}{quote}")
                marks += f"[{numbered[c]}]"
            # An abstractive point carries its markers in its text already.
            text = _shown(p.text) if answer.mode == ABSTRACTIVE else f"{_shown(p.text)} {marks}"
            lines = textwrap.wrap(text, width - 4) or [""]
            print(f"{n:>2}. {lines[0]}")
            for line in lines[1:]:
                print(f"    {line}")
            if p.translation:
                for line in textwrap.wrap(f"EN (machine translation): {p.translation}",
                                          width - 4):
                    print(f"    {line}")
        joiner = "\n    " if answer.mode == ABSTRACTIVE else " · "
        body = textwrap.wrap(joiner.join(sources), width - 4) if joiner == " · " else (
            [joiner.join(sources)])
        print("    sources (chunk, characters):" + ("" if len(body) > 1 else " " + body[0]))
        if len(body) > 1:
            for line in body:
                print(f"    {line}")
    sys.stdout.flush()


def _abstractive_switch() -> str | None:
    from policyrag.answer.generate import available_backend

    return "--mode abstractive" if available_backend() else None


def _one_place(doc_ids: list[str], docs: dict) -> str | None:
    """The locality all the quoted reports share (a question that names its place), if any."""
    places = {docs[d].locality for d in doc_ids if d in docs}
    return places.pop() if len(places) == 1 else None


def _unnamed(answer: Answer) -> str:
    if answer.doc_id is not None:
        return ""
    if len(answer.localities) == 1:
        return "All localities"
    return ("Locality unknown (set `locality` in a metadata.toml sidecar or the report's front "
            "matter to place these reports)")


def _merged(citations: list[Citation]) -> list[Citation]:
    """Adjacent sentences of one point shown as one source (JSON keeps them apart)."""
    out: list[Citation] = []
    for c in citations:
        last = out[-1] if out else None
        if last is not None and last.doc_id == c.doc_id and 0 <= c.start - last.end <= 1:
            out[-1] = Citation(last.doc_id, last.chunk_id, last.start, c.end, "")
        else:
            out.append(c)
    return out


def _sounds_per_locality(question: str) -> bool:
    q = question.lower()
    return any(w in question for w in ("各地", "分别", "分別", "各区", "各區", "各县", "各縣")) or \
        any(w in q for w in ("each locality", "each region", "every locality", "each city",
                             "localities"))
