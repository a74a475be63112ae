"""Crash-safe on-disk layout of an index: generation folders switched by one atomic rename.

    indexes/default/
        CURRENT               names the live generation, replaced atomically
        gen-000007/           manifest.json, vectors.faiss, chunks.jsonl, documents.jsonl
        .lock                 held by the one writer

A writer fills a temporary folder, fsyncs it, renames it to the next generation and only then
swaps CURRENT. A crash at any point leaves CURRENT naming a complete generation.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

CURRENT = "CURRENT"
LOCK = ".lock"
GEN_PREFIX = "gen-"


class IndexLocked(RuntimeError):
    pass


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def current_generation(root: Path) -> Path | None:
    marker = root / CURRENT
    try:
        name = marker.read_text("utf-8").strip()
    except FileNotFoundError:
        return None
    gen = root / name
    return gen if gen.is_dir() else None


def _generation_number(path: Path) -> int:
    try:
        return int(path.name[len(GEN_PREFIX):])
    except ValueError:
        return -1


def generations(root: Path) -> list[Path]:
    found = [p for p in root.glob(f"{GEN_PREFIX}*") if p.is_dir() and _generation_number(p) >= 0]
    return sorted(found, key=_generation_number)


@contextlib.contextmanager
def writer_lock(root: Path, wait: float = 0.0) -> Iterator[None]:
    """One writer per index; `wait` seconds to queue behind another before giving up."""
    root.mkdir(parents=True, exist_ok=True)
    fh = (root / LOCK).open("a+")
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if time.monotonic() >= deadline:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                fh.close()
                raise IndexLocked(
                    f"{root} is being written by {holder}; wait for it to finish "
                    "(or pass --wait SECONDS) and try again") from None
            time.sleep(0.2)
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        yield
    finally:
        fh.seek(0)
        fh.truncate()
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def new_generation_dir(root: Path) -> Path:
    """A fresh temporary folder for the next generation; the caller fills it, then commits."""
    tmp = root / f".tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir(parents=True)
    return tmp


def commit_generation(root: Path, tmp: Path, keep: int = 2) -> Path:
    for f in tmp.iterdir():
        with f.open("rb") as fh:
            os.fsync(fh.fileno())
    fsync_dir(tmp)
    gens = generations(root)
    number = _generation_number(gens[-1]) + 1 if gens else 1
    final = root / f"{GEN_PREFIX}{number:06d}"
    os.rename(tmp, final)
    marker_tmp = root / f"{CURRENT}.tmp"
    write_file_durably(marker_tmp, final.name.encode())
    os.replace(marker_tmp, root / CURRENT)
    fsync_dir(root)
    collect_garbage(root, keep)
    return final


def collect_garbage(root: Path, keep: int) -> None:
    """Old generations past `keep`, and temporary folders of writers that died. Holds the lock."""
    live = current_generation(root)
    for gen in generations(root)[:-keep] if keep > 0 else []:
        if gen != live:
            shutil.rmtree(gen, ignore_errors=True)
    for tmp in root.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text("utf-8"))


def dump_jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def load_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
