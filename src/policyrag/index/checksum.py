"""Content checksums of a generation's files, and a cache of the ones already verified.

Opening an index checks every file against the checksum its manifest records, so that bytes
flipped in place (same size, still parseable) are refused instead of served. xxh3-128 reads at
memory speed; the cache keyed by each file's (size, mtime_ns, ctime_ns, inode) makes a warm
open skip even that. ctime cannot be set back by `touch`, so an edit is always seen as one.
`index verify` never trusts the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path

import xxhash

from policyrag.config import cache_dir

ALGORITHM = "xxh3_128"
BLOCK = 1 << 22


def file_checksum(path: Path) -> str:
    """`xxh3_128:<hex>`; manifests written before it hold bare sha256 hex digests."""
    digest = xxhash.xxh3_128()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            digest.update(block)
    return f"{ALGORITHM}:{digest.hexdigest()}"


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def matches(path: Path, recorded: str | None) -> bool:
    """Whether `path` holds what `recorded` (a manifest's checksum) says; False if none."""
    if not recorded:
        return False
    if recorded.startswith(f"{ALGORITHM}:"):
        return file_checksum(path) == recorded
    return _sha256(path) == recorded


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _cache_file(root: Path) -> Path:
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:24]
    return cache_dir() / "verified" / f"{key}.json"


def _load_cache(root: Path) -> dict:
    try:
        data = json.loads(_cache_file(root).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


def _save_cache(root: Path, files: dict) -> None:
    """Best effort: a read-only or full cache folder only costs the next open a re-check."""
    path = _cache_file(root)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"files": files}), "utf-8")
        os.replace(tmp, path)
    with contextlib.suppress(OSError):
        tmp.unlink()


def first_mismatch(root: Path, files: list[tuple[str, Path, str | None]]) -> str | None:
    """The label of the first (label, path, recorded checksum) whose content differs from its
    checksum, else None. Files verified before and not touched since (same stat stamp) are not
    re-read; the record is keyed by the path under `root`, so a segment that later manifests
    name again stays on record across commits."""
    cached = _load_cache(root)
    fresh: dict[str, list] = {}
    for label, path, want in files:
        if not want:
            continue  # an index from before checksums were recorded: nothing to compare
        key = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        stamp = _stamp(path)
        if cached.get(key) == [*stamp, want]:
            fresh[key] = cached[key]
            continue
        if not matches(path, want):
            return label
        fresh[key] = [*stamp, want]
    if fresh != cached:
        _save_cache(root, fresh)
    return None
