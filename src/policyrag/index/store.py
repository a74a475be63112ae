"""Crash-safe on-disk layout of an index: generation folders switched by one atomic rename.

    indexes/default/
        CURRENT               names the live generation, replaced atomically
        gen-000007/           manifest.json, and the segment this commit added, if any
                              (vectors.faiss, chunks.jsonl, documents.jsonl); a commit
                              that added several has the next ones in seg-0001/, ...
        .lock                 held by the one writer

A manifest names the segments of its index, which may lie in older generation folders (see
segments.py); garbage collection keeps every folder a kept manifest needs, and takes the
manifest out of one it keeps only for its segment.

A writer fills a temporary folder, fsyncs it, renames it to the next generation and only then
swaps CURRENT. A crash at any point leaves CURRENT naming a complete generation. Generations are
never changed once renamed into place, so a reader needs no lock: it reads CURRENT and loads that
folder (retrying if a writer's garbage collection removed it meanwhile; see index.open_index).

The next writer to take the lock removes what a killed writer left: `.tmp-*` folders, a stale
`CURRENT.tmp`, and generations newer than CURRENT (renamed into place but never made live).

Test hook: with POLICYRAG_TEST_PAUSE_AT=POINT in the environment, a writer prints
"policyrag: test pause at POINT" to stderr and sleeps when it reaches POINT (one of
PAUSE_POINTS), so that crash tests can kill -9 it there. It does nothing when the variable is
unset and is meant for tests only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

CURRENT = "CURRENT"
LOCK = ".lock"
GEN_PREFIX = "gen-"
MANIFEST = "manifest.json"
TMP_PREFIX = ".tmp-"

PAUSE_ENV = "POLICYRAG_TEST_PAUSE_AT"
# Where a writer can be paused: lock taken / half of a generation written / a whole generation
# written, not yet renamed / renamed, CURRENT not yet swapped / CURRENT swapped, old ones not
# yet collected.
PAUSE_POINTS = ("locked", "mid_write", "before_commit", "after_rename", "after_current")
# Reached only by a write of several segments (a streamed build or add): one segment written,
# the next not yet begun.
BETWEEN_SEGMENTS = "between_segments"


class IndexLocked(RuntimeError):
    pass


def test_pause(point: str) -> None:
    """The crash-test hook described in the module docstring."""
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted or point not in wanted.split(","):
        return
    sys.stderr.write(f"policyrag: test pause at {point} (pid {os.getpid()})\n")
    sys.stderr.flush()
    time.sleep(float(os.environ.get("POLICYRAG_TEST_PAUSE_SECONDS", "3600")))


test_pause.__test__ = False  # not a pytest test, despite the name


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


def read_current(root: Path) -> str | None:
    """The generation name CURRENT holds, whether or not that folder exists."""
    try:
        return (root / CURRENT).read_text("utf-8").strip() or None
    except FileNotFoundError:
        return None


def current_is_blank(root: Path) -> bool:
    """CURRENT exists but names nothing (emptied by hand or by a broken disk)."""
    try:
        return not (root / CURRENT).read_text("utf-8").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return False


def current_generation(root: Path) -> Path | None:
    name = read_current(root)
    if name is None:
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
                fh.close()
                raise
            if time.monotonic() >= deadline:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                fh.close()
                if wait > 0:
                    raise IndexLocked(f"{root} is still being written by {holder} after waiting "
                                      f"{wait:g} s; try again later, or pass a longer --wait"
                                      ) from None
                raise IndexLocked(f"{root} is being written by {holder}; try again when it has "
                                  "finished, or pass --wait SECONDS to queue behind it") from None
            time.sleep(0.1)
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        remove_leftovers(root)
        test_pause("locked")
        yield
    finally:
        fh.seek(0)
        fh.truncate()
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def remove_leftovers(root: Path) -> list[Path]:
    """What killed writers left behind. Only the lock holder may call this."""
    removed = list(root.glob(f"{TMP_PREFIX}*"))
    live = read_current(root)
    if live is not None and (root / live).is_dir():
        newest = _generation_number(root / live)
        removed += [g for g in generations(root) if _generation_number(g) > newest]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (root / f"{CURRENT}.tmp").unlink()
    return removed


def new_generation_dir(root: Path) -> Path:
    """A fresh temporary folder for the next generation; the caller fills it, then commits."""
    tmp = root / f"{TMP_PREFIX}{os.getpid()}-{time.time_ns()}"
    tmp.mkdir(parents=True)
    return tmp


def next_generation(root: Path) -> str:
    """The name the next commit will get. Only the lock holder may rely on it."""
    gens = generations(root)
    number = _generation_number(gens[-1]) + 1 if gens else 1
    return f"{GEN_PREFIX}{number:06d}"


Needs = Callable[[Path], "set[str] | None"]


def commit_generation(root: Path, tmp: Path, keep: int = 2, collect: bool = True,
                      needs: Needs | None = None, name: str | None = None) -> Path:
    """Make `tmp` the live generation; with `collect`, drop generations beyond `keep`, except
    the folders that `needs` says kept ones use. `name` is what next_generation said when the
    manifest in `tmp` was written (it names its own segment by it)."""
    test_pause("before_commit")
    inside = sorted(tmp.rglob("*"))  # a commit of several segments has them in subfolders
    for f in inside:
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
    for folder in [*(f for f in inside if f.is_dir()), tmp]:
        fsync_dir(folder)
    final = root / next_generation(root)
    if name is not None and final.name != name:
        raise RuntimeError(f"{root}: the next generation is {final.name}, not {name} as the "
                           "manifest says; was the writer lock bypassed?")
    os.rename(tmp, final)
    fsync_dir(root)
    test_pause("after_rename")
    marker_tmp = root / f"{CURRENT}.tmp"
    write_file_durably(marker_tmp, final.name.encode())
    os.replace(marker_tmp, root / CURRENT)
    fsync_dir(root)
    test_pause("after_current")
    if collect:
        collect_garbage(root, keep, needs)
    return final


def collect_garbage(root: Path, keep: int, needs: Needs | None = None) -> None:
    """Keep the live generation and the `keep - 1` before it; drop the rest. Holds the lock.

    `needs(gen)` names the generation folders whose files the manifest in `gen` uses (None
    when it cannot tell: then nothing is dropped). A dropped generation whose folder a kept one
    still uses loses only its manifest: it is no longer a state the index can go back to.
    """
    live = current_generation(root)
    if live is None:
        return
    older = [g for g in generations(root) if _generation_number(g) < _generation_number(live)]
    cut = len(older) - max(keep - 1, 0)
    dropped, kept = older[:max(cut, 0)], [*older[max(cut, 0):], live]
    used: set[str] = set()
    for gen in kept if needs else []:
        names = needs(gen) if (gen / MANIFEST).exists() else set()
        if names is None:
            return
        used |= names
    for gen in dropped:
        if gen.name in used:
            with contextlib.suppress(FileNotFoundError):
                (gen / MANIFEST).unlink()
                fsync_dir(gen)
        else:
            shutil.rmtree(gen, ignore_errors=True)
    remove_leftovers(root)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text("utf-8"))


def dump_jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def load_jsonl_lenient(path: Path) -> tuple[list[dict], list[str]]:
    """The rows that parse, and one message per line that does not (for salvaging)."""
    rows, bad = [], []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                bad.append(f"{path.name} line {number} is not valid JSON ({exc})")
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad.append(f"{path.name} line {number} is not a JSON object")
    return rows, bad


def load_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON Lines file; a broken line raises ValueError naming the file and line."""
    rows = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path.name} line {number} is not valid JSON ({exc})") from None
    return rows
