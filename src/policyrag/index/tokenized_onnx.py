"""An embedder for ONNX graphs that take token ids: the whole sentence-transformers pipeline
(transformer, pooling, dense layers, normalisation) exported as one graph, with the model
folder's own `tokenizer.json` read by the `tokenizers` library (no torch at run time).

Used for EmbeddingGemma-300M (`packaged:embeddinggemma`, see index/gemma_fetch.py), whose
queries and documents take different prompts.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from policyrag.index import vector_cache
from policyrag.index.embedding import (
    EmbedderError,
    Kind,
    _batches,
    _file_fingerprint,
    _normalise,
)

# One text per run, no padding: measured 187 ms of CPU per 200-token chunk against 203 ms in fours and
# 249 ms in sixteens (padding, and activations that outgrow the caches), one thread each.
MAX_BATCH = 1
# Vectors are written to the cache every this many texts: a killed build loses a minute at most.
FLUSH_EVERY = 64


@dataclass(frozen=True)
class Prompts:
    query: str
    passage: str


class TokenizedOnnxEmbedder:
    """ONNX graph with inputs `input_ids`, `attention_mask` and one output: sentence vectors."""

    def __init__(self, graph: Path, tokenizer: Path, name: str, prompts: Prompts,
                 max_tokens: int, max_chars: int = 400, fingerprint: str | None = None,
                 vector_cache: Path | None = None) -> None:
        for path in (graph, tokenizer):
            if not path.is_file():
                raise EmbedderError(f"{name}: {path} is missing")
        self.graph, self.tokenizer_path, self.name = graph, tokenizer, name
        self.prompts, self.max_tokens, self._max_chars = prompts, max_tokens, max_chars
        self._fingerprint = fingerprint
        # A folder for passage vectors kept across runs (index/vector_cache.py), or None.
        self.vector_cache = vector_cache

    @cached_property
    def session(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Both cores: one sentence at a time, the graph's matrix products split well.
        options.intra_op_num_threads = os.cpu_count() or 1
        # Idle threads sleep instead of spinning: on a shared machine spinning burns the CPU
        # the other thread (and everyone else) needs; measured ~10% less CPU per chunk.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(self.graph), options, providers=["CPUExecutionProvider"])

    @cached_property
    def tokenizer(self):
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.tokenizer_path))
        # Truncation keeps the closing special token inside the cap (post-processing adds it).
        tok.enable_truncation(self.max_tokens)
        pad = tok.token_to_id("<pad>")
        tok.enable_padding(pad_id=0 if pad is None else pad, pad_token="<pad>")
        return tok

    @cached_property
    def revision(self) -> str:
        # The token cap changes the vectors, so it is part of what an index was built with.
        base = self._fingerprint or _file_fingerprint(self.graph)
        return f"{base}-t{self.max_tokens}"

    @cached_property
    def dim(self) -> int:
        shape = self.session.get_outputs()[0].shape
        return int(shape[-1]) if isinstance(shape[-1], int) else int(self._run(["维度"]).shape[1])

    @property
    def max_chars(self) -> int:
        return self._max_chars

    def token_counts(self, texts: list[str], kind: Kind = "passage") -> list[int]:
        """Tokens each text takes with its prompt, before the cap (to choose the cap)."""
        from tokenizers import Tokenizer

        plain = Tokenizer.from_file(str(self.tokenizer_path))
        return [len(e.ids) for e in plain.encode_batch(self._prompted(texts, kind))]

    def encode(self, texts: list[str], kind: Kind = "passage", batch_size: int = 32,
               progress: bool = False) -> np.ndarray:
        texts = self._prompted(list(texts), kind)
        out = np.empty((len(texts), self.dim), np.float32)
        cache = self._cache() if kind == "passage" and len(texts) > 1 else None
        todo = list(range(len(texts)))
        if cache is not None:
            keys = [vector_cache.key(t) for t in texts]
            found = cache.get_many(keys)
            todo = [i for i in todo if keys[i] not in found]
            for i, k in enumerate(keys):
                if k in found:
                    out[i] = found[k]
        # In input order (one text per run, so nothing to pad): the cache fills document by
        # document, and an interrupted build has whole documents done.
        pending: list[tuple[bytes, np.ndarray]] = []
        done = 0
        batch_size = min(batch_size, MAX_BATCH)
        for batch in _batches([texts[i] for i in todo], batch_size, progress, "embedding"):
            rows = todo[done:done + len(batch)]
            out[rows] = self._run(batch)
            done += len(batch)
            if cache is not None:
                pending += [(keys[i], out[i]) for i in rows]
                if len(pending) >= FLUSH_EVERY:
                    cache.put_many(pending)
                    pending = []
        if cache is not None:
            cache.put_many(pending)
            cache.close()
        return _normalise(out)

    def _cache(self) -> vector_cache.VectorCache | None:
        if self.vector_cache is None:
            return None
        safe = re.sub(r"[^\w.-]+", "_", f"{self.name}-{self.revision}")
        return vector_cache.VectorCache(self.vector_cache / f"{safe}.sqlite", self.dim)

    def _prompted(self, texts: list[str], kind: Kind) -> list[str]:
        prompt = self.prompts.query if kind == "query" else self.prompts.passage
        return [prompt + t for t in texts]

    def _run(self, batch: list[str]) -> np.ndarray:
        encoded = self.tokenizer.encode_batch(batch)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        return self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
