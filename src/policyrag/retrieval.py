"""Queries to ranked hits: dense (FAISS), lexical (BM25) and their reciprocal-rank fusion."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

from .config import Settings
from .embedding import Embedder
from .gazetteer import romanisations, same_place, short_name
from .index import Index
from .lexical import glossary_terms, tokenize
from .script import to_simplified

MAX_QUERY_CHARS = 2000
MODES = ("dense", "lexical", "hybrid")


class QueryError(ValueError):
    pass


@dataclass
class Hit:
    doc_id: str
    source: str
    locality: str | None
    date: str | None
    title: str | None
    chunk_id: str
    text: str
    score: float
    start: int
    end: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Filters:
    localities: list[str] | None = None
    doc_ids: list[str] | None = None
    date_from: str | None = None
    date_to: str | None = None

    def admits(self, doc) -> bool:
        if self.localities and not any(same_place(q, doc.locality) for q in self.localities):
            return False
        if self.doc_ids and doc.doc_id not in self.doc_ids:
            return False
        # Dates compare as ISO strings; a report with no known date passes no date filter.
        if (self.date_from or self.date_to) and not (doc.date and doc.date[:1].isdigit()):
            return False
        if self.date_from and doc.date < self.date_from:
            return False
        return not (self.date_to and doc.date[: len(self.date_to)] > self.date_to)


class Reranker(Protocol):
    """Rescores (query, passage) pairs, higher is better; off unless one is given."""

    def score(self, query: str, passages: list[str]) -> list[float]: ...


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder loaded from a local folder only.

    No Chinese-capable cross-encoder is known to ship inside a PyPI package (see
    ../shared/MODELS.md), and models are never downloaded at run time, so this is opt-in:
    pass a folder holding e.g. bge-reranker-base.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise QueryError(f"reranker {self.path} is not a local model folder; no "
                             "Chinese-capable cross-encoder ships with policyrag, so reranking "
                             "is off unless you give one")
        self._model = None

    def score(self, query: str, passages: list[str]) -> list[float]:
        if self._model is None:
            from sentence_transformers import CrossEncoder

            self._model = CrossEncoder(str(self.path), device="cpu", local_files_only=True)
        pairs = [(to_simplified(query), to_simplified(p)) for p in passages]
        return [float(s) for s in self._model.predict(pairs)] if pairs else []


def prepare_query(query: str, index: Index) -> str:
    query = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", " ", query or "").strip()
    if not query:
        raise QueryError("the question is empty; type a few words, e.g. 招商引资 or "
                         "'how do localities attract investment?'")
    query = query[:MAX_QUERY_CHARS]
    # Romanised place names (Luqiao, Lishui) mean nothing to the Chinese text: add the
    # characters so both the model and BM25 see the place.
    lowered = re.sub(r"[^a-z]", "", query.lower())
    if len(lowered) < 4:  # no romanised name in it; spares loading pypinyin
        return query
    extra = [short_name(loc) for loc in index.localities()
             if short_name(loc) not in query
             and any(len(r) >= 4 and r in lowered for r in romanisations(short_name(loc)))]
    return query + (" " + " ".join(extra) if extra else "")


class Searcher:
    def __init__(self, index: Index, embedder: Embedder, settings: Settings | None = None,
                 reranker: Reranker | None = None):
        self.index = index
        self.embedder = embedder
        self.settings = settings or Settings()
        # Optional second stage over the fused candidates; None (the default) keeps RRF order.
        self.reranker = reranker

    def allowed_rows(self, filters: Filters | None) -> np.ndarray | None:
        if filters is None or filters == Filters():
            return None
        ok = {d.doc_id for d in self.index.documents.values() if filters.admits(d)}
        return np.asarray([i for i, c in enumerate(self.index.chunks) if c.doc_id in ok],
                          dtype=np.int64)

    def dense(self, query: str, n: int, rows: np.ndarray | None) -> list[tuple[int, float]]:
        vec = self.embedder.encode([to_simplified(query)], "query")
        params = None
        if rows is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(rows))
        n = min(n, self.index.vectors.ntotal if rows is None else len(rows))
        if n <= 0:
            return []
        scores, ids = self.index.vectors.search(vec, n, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def lexical(self, query: str, n: int, rows: np.ndarray | None) -> list[tuple[int, float]]:
        terms = " ".join([query, *glossary_terms(query)])
        scores = self.index.bm25().scores(tokenize(terms, self.index.lexicon))
        if rows is not None:
            mask = np.zeros_like(scores, dtype=bool)
            mask[rows] = True
            scores = np.where(mask, scores, 0.0)
        order = np.argsort(-scores)[:n]
        return [(int(i), float(scores[i])) for i in order if scores[i] > 0]

    def search(self, query: str, k: int | None = None, filters: Filters | None = None,
               mode: str | None = None) -> list[Hit]:
        k = k or self.settings.top_k
        if k < 1:
            raise QueryError("k must be at least 1")
        mode = mode or self.settings.retrieval
        if mode not in MODES:
            raise QueryError(f"unknown retrieval mode {mode!r}; choose one of {', '.join(MODES)}")
        query = prepare_query(query, self.index)
        rows = self.allowed_rows(filters)
        if rows is not None and not len(rows):
            return []
        depth = max(4 * k, 20)
        n = depth if self.reranker is not None else k  # a reranker sees the deeper list
        if mode == "dense":
            ranked = self.dense(query, n, rows)
        elif mode == "lexical":
            ranked = self.lexical(query, n, rows)
        else:
            lists = [self.dense(query, depth, rows), self.lexical(query, depth, rows)]
            weights = [self.settings.dense_weight, self.settings.lexical_weight]
            if self.settings.fusion == "linear":
                ranked = linear(lists, weights)[:n]
            else:
                ranked = rrf(lists, self.settings.rrf_k, weights)[:n]
        if self.reranker is not None and ranked:
            scores = self.reranker.score(query, [self.index.chunks[i].text for i, _ in ranked])
            ranked = sorted(((i, float(s)) for (i, _), s in zip(ranked, scores, strict=True)),
                            key=lambda x: -x[1])[:k]
        return [self.hit(i, score) for i, score in ranked]

    def search_by_locality(self, query: str, k: int | None = None,
                           filters: Filters | None = None, mode: str | None = None
                           ) -> dict[str, list[Hit]]:
        """Top-k per locality, so that one long report cannot crowd out the others.

        `filters.localities` (names as users write them) narrows the index's localities; the
        document and date filters apply within each locality.
        """
        base = filters or Filters()
        out: dict[str, list[Hit]] = {}
        for loc in self.index.localities():
            if base.localities and not any(same_place(w, loc) for w in base.localities):
                continue
            out[loc] = self.search(query, k, Filters([loc], base.doc_ids, base.date_from,
                                                     base.date_to), mode)
        return out

    def hit(self, row: int, score: float) -> Hit:
        chunk = self.index.chunks[row]
        doc = self.index.documents[chunk.doc_id]
        return Hit(doc.doc_id, doc.source, doc.locality, doc.date, doc.display_title,
                   chunk.chunk_id, chunk.text, round(score, 6), chunk.start, chunk.end)


Ranking = list[tuple[int, float]]


def _max_normalised(rankings: list[Ranking], weights: list[float]) -> dict[int, float]:
    """Each list's scores divided by its best score, weighted and summed per row."""
    total: dict[int, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        best = max((s for _, s in ranking), default=0.0)
        for row, score in ranking:
            total[row] = total.get(row, 0.0) + (w * score / best if best > 0 else 0.0)
    return total


def rrf(rankings: list[Ranking], k: int = 60,
        weights: list[float] | None = None) -> Ranking:
    """Reciprocal-rank fusion: each list adds w/(k + rank) for every item it ranks.

    Two lists that swap their top two items give both the same fused score; such ties go to the
    item with the higher normalised scores, so a far stronger match in one list wins.
    """
    weights = weights or [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for rank, (row, _) in enumerate(ranking, start=1):
            fused[row] = fused.get(row, 0.0) + w / (k + rank)
    tie_break = _max_normalised(rankings, weights)
    return sorted(fused.items(), key=lambda x: (-round(x[1], 9), -tie_break[x[0]]))


def linear(rankings: list[Ranking], weights: list[float]) -> Ranking:
    """Weighted sum of max-normalised scores."""
    return sorted(_max_normalised(rankings, weights).items(), key=lambda x: -x[1])
