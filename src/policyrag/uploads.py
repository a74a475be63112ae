"""Reports uploaded through the web UI: checked, indexed, and only then kept in the library.

    <index>/uploads/<content hash>/<file name>    one folder per content: two users' files of
                                                  the same name never meet
    <index>/uploads/.incoming/<random>/...         staging; gone once the upload is settled

A file is refused on its size (from stat, before a byte is read) and suffix. The rest are
copied to a staging folder and indexed as if they already lay at their final place; only the
ones the index then holds are moved there. Whatever was refused, failed, or was a duplicate
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from policyrag.engine import Engine
from policyrag.index.lifecycle import Change
from policyrag.index.progress import Bar, Bars, Told
from policyrag.ingest.readers import Notice

UPLOADS_DIR = "uploads"
INCOMING = ".incoming"
# A staging folder this old belongs to a server that died mid-upload.
STALE_SECONDS = 3600

Progress = Callable[[float, str], None]
# Where each stage of the writer fills the page's progress bar.
STAGES = {"reading reports": (0.3, 0.4), "embedding": (0.4, 0.95)}


@dataclass
class Upload:
    change: Change | None = None
    # notices (duplicates, renamed ids) and files that did not read, by the uploaded name
    notices: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # before reading: size or type


def uploads_dir(engine: Engine) -> Path:
    return engine.root / UPLOADS_DIR


def _digest(path: Path) -> str:
    h = xxhash.xxh3_128()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}".rstrip("0").rstrip(".")


def check(paths: list[Path], suffixes: list[str], limit: int) -> tuple[list[Path], list[str]]:
    """The uploads that may be read, and a reason for each one refused, from stat alone."""
    ok, refused = [], []
    for p in paths:
        size = p.stat().st_size
        if p.suffix.lower() not in suffixes:
            refused.append(f"{p.name}: only {', '.join(suffixes)} files can be added")
        elif size > limit:
            refused.append(f"{p.name}: {_mb(size)} MB, over the {_mb(limit)} MB limit for one "
                           "upload (a server setting: POLICYRAG_UPLOAD_MAX_MB)")
        else:
            ok.append(p)
    return ok, refused


def _clear_stale(incoming: Path) -> None:
    with contextlib.suppress(OSError):
        for old in incoming.iterdir():
            if time.time() - old.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(old, ignore_errors=True)


def add_uploads(engine: Engine, paths: list[Path], suffixes: list[str], *, wait: float = 30.0,
                progress: Progress | None = None) -> Upload:
    """Index `paths` (the server's temporary copies of uploaded files) into the library."""
    say = progress or (lambda fraction, what: None)
    accepted, refused = check(paths, suffixes, engine.settings.upload_max_bytes)
    result = Upload(refused=refused)
    if not accepted:
        return result
    library = uploads_dir(engine).resolve()
    incoming = library / INCOMING
    _clear_stale(incoming)
    stage = incoming / uuid.uuid4().hex
    placed: dict[str, tuple[Path, Path, str]] = {}  # staged path -> (staged, final, name)
    try:
        for i, p in enumerate(accepted):
            say(0.05 + 0.2 * i / len(accepted), f"Copying {p.name}")
            digest = _digest(p)
            staged = stage / digest / p.name
            staged.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, staged)
            placed[str(staged)] = (staged, library / digest / p.name, p.name)
        say(0.3, f"Embedding and indexing {len(placed)} report(s)")
        change, errors = engine.add([s for s, _, _ in placed.values()], wait,
                                    sources={k: str(final) for k, (_, final, _) in
                                             placed.items()}, progress=_told(say))
        result.change = change
        for err in errors:
            name = placed[str(err.path)][2] if str(err.path) in placed else err.path.name
            (result.notices if isinstance(err, Notice) else result.skipped).append(
                f"{name}: {err.reason}")
        indexed = {d.source for d in engine.index.documents.values()}
        for staged, final, _ in placed.values():
            if str(final) in indexed and not final.exists():
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, final)
        say(1.0, "Done")
        return result
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _told(say: Progress) -> Bars:
    """The writer's progress (reports read; chunks embedded, of how many, how fast, the time
    left) as lines on the page's progress bar."""
    def bars(total: int | None, what: str, unit: str) -> Bar:
        low, high = STAGES.get(what, (0.3, 0.95))
        return Told(total, what, unit,
                    lambda line, done: say(low + (high - low) * (done or 0.0), line))
    return bars


def forget(engine: Engine, source: str) -> None:
    """Delete the stored copy of an uploaded report that left the index (others stay)."""
    library = uploads_dir(engine).resolve()
    path = Path(source)
    if library not in path.parents:
        return
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # its content-hash folder, once empty
