"""Lexical retrieval: BM25 over jieba tokens of simplified text.

Place names and the reports' own quoted slogans (“双招双引”, “七优享”) are added to the
segmenter's dictionary so that they stay whole tokens instead of being cut into common words.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from .script import to_simplified

_QUOTED = re.compile(r"[“\"「『]([\u4e00-\u9fff\d]{2,8})[”\"」』]")
_TOKEN_OK = re.compile(r"[\u4e00-\u9fff\w]")
STOPWORDS = frozenset(
    "的 了 和 与 及 是 在 为 以 对 把 将 要 等 中 上 下 也 都 而 并 或 之 其 这 那 有 就 着 于 由 "  # noqa: SIM905
    "被 从 到 向 让 使 各 个 们 更 又 还 再 很 所 以来 进一步 全面 加快 推进 推动 坚持 深入 "
    "什么 如何 怎么 哪些 怎样 吗 呢 the a an of to and in for on is are what how which".split()
)


def slogans(texts: Iterable[str]) -> list[str]:
    """Short quoted phrases of a corpus: its own policy terms."""
    found = {m.group(1) for t in texts for m in _QUOTED.finditer(to_simplified(t))}
    return sorted(found)


@lru_cache(maxsize=8)
def _tokenizer(lexicon: tuple[str, ...]):
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tk = jieba.Tokenizer()
    tk.initialize()
    from .gazetteer import places

    for p in places():
        tk.add_word(p.short, freq=2000)
        tk.add_word(p.name, freq=2000)
    for word in lexicon:
        tk.add_word(word, freq=5000)
    return tk


def tokenize(text: str, lexicon: tuple[str, ...] = ()) -> list[str]:
    tk = _tokenizer(lexicon)
    tokens = (t.strip().lower() for t in tk.lcut(to_simplified(text), HMM=True))
    return [t for t in tokens if t and _TOKEN_OK.search(t) and t not in STOPWORDS]


class BM25:
    """Okapi BM25 (rank_bm25's scorer) over pre-tokenised chunks."""

    def __init__(self, tokenized: list[list[str]]) -> None:
        from rank_bm25 import BM25Okapi

        self.size = len(tokenized)
        # rank_bm25 divides by the corpus size, so an empty corpus gets no scorer.
        self._bm25 = BM25Okapi(tokenized) if tokenized and any(tokenized) else None

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        if self._bm25 is None or not query_tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(query_tokens), dtype=np.float32)
