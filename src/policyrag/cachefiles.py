"""Derived files in the cache folder, shared by processes: one writer at a time."""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

BLOCK = 8 << 20  # bytes read at a time from model files of a GB and more


@contextlib.contextmanager
def locked(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on `target.lock` (beside the file) for the block."""
    try:
        import fcntl
    except ImportError:  # Windows: writers still replace files by atomic rename
        yield
        return
    with open(target.with_name(target.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def byte_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar over `total` bytes on stderr, gone when done."""
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                disable=not enabled, file=sys.stderr, leave=False)


def copy_hashing(src: IO[bytes], out: IO[bytes] | None, digest, bar) -> int:
    """Copy `src` to `out` (when given) a block at a time, feeding `digest` and `bar` as it
    goes, so a joined model is hashed while it is written; returns the bytes read."""
    read = 0
    while block := src.read(BLOCK):
        digest.update(block)
        if out is not None:
            out.write(block)
        read += len(block)
        bar.update(len(block))
    return read


def sha256_of(path: Path, desc: str, progress: bool) -> str:
    """The sha256 of a (large) file, with a progress bar."""
    digest = hashlib.sha256()
    with path.open("rb") as src, byte_bar(path.stat().st_size, desc, progress) as bar:
        copy_hashing(src, None, digest, bar)
    return digest.hexdigest()
