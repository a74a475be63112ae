"""`policyrag serve`: the web UI on the index (built from seeds/ first when there is none)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from policyrag.cli import UserError
from policyrag.display import quoted
from policyrag.engine import Engine


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="start the web UI",
                       description="Start the web UI (ask, compare localities, read cited "
                                   "passages, add and remove reports). Builds the index from "
                                   "seeds/ first when there is none.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s; 0.0.0.0 for every "
                        "interface)")
    p.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    p.set_defaults(func=cmd_serve)


def ensure_index(engine: Engine, seeds: Path, out: TextIO | None = None) -> bool:
    """Build the index from `seeds` when it is missing; True when one was built."""
    # Looked up at call time, so a redirected or captured stderr gets the progress.
    out = out or sys.stderr
    if engine.exists():
        return False
    if not seeds.is_dir():
        raise UserError(f"no index at {engine.root} and no seeds folder {seeds} to build one "
                        f"from; build one with: policyrag index build PATHS --index "
                        f"{engine.root}")
    print(f"policyrag: no index at {engine.root}; building it from {seeds}/ first ...",
          file=out, flush=True)
    t0 = time.monotonic()
    gen, errors = engine.build([seeds])
    for err in errors:
        print(f"skipped {quoted(err.path)}: {quoted(err.reason)}", file=out)
    m = engine.info()["manifest"]
    print(f"policyrag: built {engine.root} ({gen}): {m['documents']} reports, {m['chunks']} "
          f"chunks in {time.monotonic() - t0:.0f} s", file=out, flush=True)
    return True


def cmd_serve(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port} is not a port number (1-65535)")
    engine = Engine(args.index, args.model, progress=True)  # progress bars for the build
    ensure_index(engine, engine.settings.seeds_dir)
    engine.progress = False  # uploads in the UI show their own progress bar
    print(f"policyrag: loading {args.index} and the web UI ...", file=sys.stderr, flush=True)
    engine.info()  # open the index and load the model now, not on the first question
    from policyrag.app import serve

    try:
        serve(engine, args.host, args.port)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({exc}); is another "
                        "server running there? Try --port with another number") from exc
    return 0
