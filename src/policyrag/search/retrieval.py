"""Queries to ranked hits: dense (FAISS), lexical (BM25) and their reciprocal-rank fusion."""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from policyrag.config import Settings
from policyrag.index import report_vectors
from policyrag.index.embedding import Embedder
from policyrag.index.lexical import glossary_terms, tokenize
from policyrag.index.lifecycle import Index
from policyrag.ingest.gazetteer import short_name, spelled_in, spelled_words
from policyrag.script import is_english, to_simplified
from policyrag.search import second_opinion
from policyrag.search.filtering import REPORT_TYPES, FilterError, Filters, PlacePlan

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
    spelled = spelled_words(query)
    if not any(len(w) >= 4 for w in spelled):  # no romanised name in it; spares pypinyin
        return query
    extra = [short_name(loc) for loc in index.localities()
             if short_name(loc) not in query and spelled_in(short_name(loc), spelled)]
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
        return self.index.view().rows(filters)

    def plan(self, query: str, filters: Filters | None = None, places: bool = True
             ) -> PlacePlan:
        """The filters a search will use: the user's, checked, narrowed to the places and
        the report year the question names unless `places` is False or the user chose those
        filters (see `IndexView.plan`)."""
        view = self.index.view()
        try:
            if filters is not None:
                view.validate(filters)
        except FilterError as exc:
            raise QueryError(str(exc)) from exc
        return view.plan(query, filters, places)

    def dense(self, query: str, n: int, rows: np.ndarray | None) -> list[tuple[int, float]]:
        vec = self.embedder.encode([to_simplified(query)], "query")
        n = min(n, self.index.vectors.ntotal if rows is None else len(rows))
        if n <= 0:
            return []
        return self.index.vectors.search(vec, n, rows, self.settings.ann_exact_rows,
                                         self.settings.ann_probe_share, self.settings.ann_refine,
                                         self.settings.search_threads)

    def report_dense(self, queries: list[str], n: int, rows: np.ndarray | None
                     ) -> list[Ranking]:
        """One list per query from the index's report vectors (index/report_vectors.py), over
        its report-type rows among `rows`, each passage scored by its closest sentence; none
        when it has no such vectors."""
        found = report_vectors.matrix(self.index)
        if found is None or not len(found.rows):
            return []
        encoder = report_vectors.query_encoder(found.model)
        keep = np.ones(len(found.rows), bool) if rows is None else np.isin(found.rows, rows)
        if encoder is None or not keep.any():
            return []
        ids = found.rows[keep]
        queries = [to_simplified(q) for q in queries]
        scores = found.best(encoder.encode(queries, "query"))[:, keep]
        return [[(int(ids[j]), float(row[j])) for j in np.argsort(-row, kind="stable")[:n]]
                for row in scores]

    def lexical(self, query: str, n: int, rows: np.ndarray | None) -> list[tuple[int, float]]:
        terms = " ".join([query, *glossary_terms(query)])
        scores = self.index.bm25().scores(tokenize(terms, self.index.lexicon))
        if rows is not None:
            kept = np.zeros_like(scores)
            kept[rows] = scores[rows]
            scores = kept
        return top_rows(scores, n)

    def search(self, query: str, k: int | None = None, filters: Filters | None = None,
               mode: str | None = None, places: bool = True) -> list[Hit]:
        """The k best passages; a place the question names narrows the search (see `plan`)."""
        plan = self.plan(query, filters, places)
        return self.ranked(plan.query or query, k, plan.filters, mode)

    def _checked(self, k: int | None, mode: str | None) -> tuple[int, str]:
        k = self.settings.top_k if k is None else k
        if k < 1:
            raise QueryError(f"k must be at least 1 (got {k})")
        mode = mode or self.settings.retrieval
        if mode not in MODES:
            raise QueryError(f"unknown retrieval mode {mode!r}; choose one of {', '.join(MODES)}")
        return k, mode

    def ranked(self, query: str, k: int | None, filters: Filters | None,
               mode: str | None) -> list[Hit]:
        """Search with exactly these filters (no place detection)."""
        k, mode = self._checked(k, mode)
        asked, query = query, prepare_query(query, self.index)
        rows = self.allowed_rows(filters)
        if rows is not None and not len(rows):
            return []
        depth = max(4 * k, self.settings.fusion_depth)
        n = depth if self.reranker is not None else k  # a reranker sees the deeper list
        chinese = self.translation(query)
        words = f"{query} {chinese}" if chinese else query
        if mode == "dense":
            ranked = self.dense(query, n, rows)
        elif mode == "lexical":
            ranked = self.lexical(words, n, rows)
        else:
            dense_weight = self.settings.dense_weight
            lists, weights = [self.dense(query, depth, rows)], [dense_weight]
            if chinese:
                lists.append(self.dense(chinese, depth, rows))
                weights.append(self.settings.translation_weight)
            if _names_no_place(filters) and self.settings.report_vectors:
                more = self.report_dense([query, *([chinese] if chinese else [])], depth, rows)
                lists, weights = lists + more, weights + [dense_weight] * len(more)
            lists.append(self.lexical(words, depth, rows))
            weights.append(self.settings.lexical_weight)
            ranked = self.prefer_reports(self.fuse(lists, weights), filters, dict(lists[-1]))
            # As asked: the place characters prepare_query adds would make EmbeddingGemma,
            # which weighs place names heavily, prefer any sentence that names the place.
            ranked = self.second_opinion(asked.strip(), ranked)[:n]
        if self.reranker is not None and ranked:
            scores = self.reranker.score(query, [self.index.chunks[i].text for i, _ in ranked])
            ranked = sorted(((i, float(s)) for (i, _), s in zip(ranked, scores, strict=True)),
                            key=lambda x: -x[1])[:k]
        return [self.hit(i, score) for i, score in ranked]

    def second_opinion(self, query: str, ranked: Ranking) -> Ranking:
        """An English question's first fused passages re-ordered with a second encoder's
        reading of it (search/second_opinion.py); other questions, or none loaded, as they are."""
        name = self.settings.english_rerank
        if not is_english(query) or name == self.embedder.name:  # already in the fusion
            return ranked
        model = second_opinion.encoder(name)
        if model is None:
            return ranked
        head = ranked[:self.settings.english_rerank_depth]
        texts = [self.index.chunks[i].text for i, _ in head]
        try:
            similarity = second_opinion.similarities(model, query, texts)
        except Exception as exc:  # noqa: BLE001 -- an optional step must not fail the search
            # Its ONNX run, or its vector cache on a full or read-only disk: the fused order
            # is still a good answer.
            warnings.warn(f"English question kept the fused order: the second encoder failed "
                          f"({type(exc).__name__}: {exc})", stacklevel=2)
            return ranked
        return second_opinion.reorder(ranked, similarity, self.settings.english_rerank_weight,
                                      self.settings.rrf_k)

    def translation(self, query: str) -> str | None:
        """Chinese search terms for an English question, from the generative model when one
        is available (cached on disk per question); None for Chinese questions."""
        if not self.settings.translate_queries or not is_english(query):
            return None
        from policyrag.search.translate import translate_query

        return translate_query(query, self.index.localities())

    def expand(self, query: str) -> str:
        """The prepared question plus, for an English one, its Chinese search terms."""
        query = prepare_query(query, self.index)
        chinese = self.translation(query)
        return f"{query} {chinese}" if chinese else query

    def fuse(self, lists: list[Ranking], weights: list[float]) -> Ranking:
        """The lists merged, each at its weight (`fusion`: RRF with k=`rrf_k`, or linear)."""
        if self.settings.fusion == "linear":
            return linear(lists, weights)
        return rrf(lists, self.settings.rrf_k, weights)

    def prefer_reports(self, fused: Ranking, filters: Filters | None,
                       bm25: dict[int, float]) -> Ranking:
        """Fused scores of report-type passages times `report_prior`, unless the user chose
        the document types. What a government said or plans is told by its own reports; in a
        collection that also holds news and regulations, a news story that merely shares the
        question's words should not push the report out (README, "How well it works"). A
        passage far ahead of every report on the question's words (`bm25`, its BM25 score) --
        the one text that holds a name the question asks for -- keeps its place too."""
        prior = self.settings.report_prior
        if prior == 1.0 or not fused or (filters is not None and filters.doc_types):
            return fused
        rows = np.fromiter((i for i, _ in fused), np.int64, len(fused))
        scores = np.fromiter((s for _, s in fused), np.float64, len(fused))
        reports = self.index.view().from_reports(rows)
        lexical = np.fromiter((bm25.get(int(i), 0.0) for i in rows), np.float64, len(rows))
        lead = (lexical > 0) & (lexical >= self.settings.report_prior_lead
                                * lexical[reports].max(initial=0.0))
        scores = np.where(reports | lead, scores * prior, scores)
        order = np.argsort(-scores, kind="stable")  # ties keep the fusion's order
        return [(int(rows[j]), float(scores[j])) for j in order]

    def search_by_locality(self, query: str, k: int | None = None,
                           filters: Filters | None = None, mode: str | None = None,
                           every: bool = False) -> dict[str | None, list[Hit]]:
        """Top-k passages per locality, in one pass over the index.

        Only report-type documents count unless `filters.doc_types` says otherwise: a
        regulation's clauses or a news item are not a locality's priorities. A locality is
        listed when its best passage scores at least a set share of the best passage anywhere
        (`listed_lexical_share` of BM25, or `listed_dense_share` of cosine when no word of the
        question occurs), or, with `every`, whenever it has reports. Reports with no known
        locality come under the key None. Localities come out by level (national first), then
        by how well they answer.
        """
        k, mode = self._checked(k, mode)
        base = filters or Filters()
        if base.doc_types is None:
            base = replace(base, doc_types=list(REPORT_TYPES))
        rows = self.allowed_rows(base)
        if rows is None:
            rows = np.arange(len(self.index.chunks), dtype=np.int64)
        if not len(rows):
            return {}
        query = prepare_query(query, self.index)
        chinese = self.translation(query)
        words = f"{query} {chinese}" if chinese else query
        view = self.index.view()
        group = view.doc_loc[view.chunk_doc[rows]]
        scored = []  # (scores, weight, which rows the list ranks at all)
        if mode in ("dense", "hybrid"):
            dense = self.dense_all(query, rows)
            scored.append((dense, self.settings.dense_weight, np.ones(len(rows), bool)))
        if mode in ("lexical", "hybrid"):
            lexical = self.lexical_all(words, rows)
            scored.append((lexical, self.settings.lexical_weight, lexical > 0))
        local = np.zeros(len(rows))
        for scores, weight, valid in scored:
            local += np.where(valid, weight / (self.settings.rrf_k + _ranks(scores, group)), 0.0)
        # Which localities answer: the words of the question, when its words occur anywhere;
        # else (an English question the glossary does not cover) the model's similarity.
        if mode == "dense" or (mode == "hybrid" and lexical.max() <= 0):
            best, share = dense, self.settings.listed_dense_share
        else:
            best, share = lexical, self.settings.listed_lexical_share
        best_by_group = np.full(len(view.localities) + 1, -np.inf)
        np.maximum.at(best_by_group, group, best)  # code -1 lands in the last slot
        answering = best_by_group >= share * best.max()
        listed = set(np.unique(group).tolist()) if every else \
            {g for g in np.unique(group).tolist() if answering[g]}
        keep = np.flatnonzero((_ranks(local, group) <= k) & (local > 0)
                              & np.isin(group, list(listed)))
        out: dict[int, list[tuple[int, float]]] = {}
        for pos in keep[np.lexsort((-local[keep], group[keep]))]:  # k per locality at most
            out.setdefault(int(group[pos]), []).append((int(rows[pos]), float(local[pos])))
        order = sorted(out, key=lambda g: (view.level_rank(g), -out[g][0][1]))
        return {(view.localities[g] if g >= 0 else None): [self.hit(i, s) for i, s in out[g]]
                for g in order}

    def dense_all(self, query: str, rows: np.ndarray) -> np.ndarray:
        """The query's similarity to every row in `rows` (exact, whatever the index type)."""
        vec = self.embedder.encode([to_simplified(query)], "query")[0]
        return self.index.vectors.take(rows) @ vec

    def lexical_all(self, query: str, rows: np.ndarray) -> np.ndarray:
        terms = " ".join([query, *glossary_terms(query)])
        return self.index.bm25().scores(tokenize(terms, self.index.lexicon))[rows]

    def hit(self, row: int, score: float) -> Hit:
        chunk = self.index.chunks[row]
        doc = self.index.documents[chunk.doc_id]
        return Hit(doc.doc_id, doc.source, doc.locality, doc.date, doc.display_title,
                   chunk.chunk_id, chunk.text, round(score, 6), chunk.start, chunk.end)


Ranking = list[tuple[int, float]]


def _names_no_place(filters: Filters | None) -> bool:
    """Nothing narrows the search to places or types: the question named none (with a place
    named, the packaged encoder already finds the passage, so the report vectors are not
    asked; README, "How well it works")."""
    return filters is None or not (filters.localities or filters.doc_ids or filters.levels
                                   or filters.doc_types)


def top_rows(scores: np.ndarray, n: int) -> Ranking:
    """The n best positive scores, best first (ties by row), without sorting every row: at a
    million chunks a full argsort took longer than the BM25 scoring itself."""
    rows = _above_sampled_cut(scores, n)
    if rows is None:
        rows = np.flatnonzero(scores > 0)
    if len(rows) > n:
        rows = rows[np.argpartition(-scores[rows], n - 1)[:n]]
    order = rows[np.lexsort((rows, -scores[rows]))]
    return [(int(i), float(scores[i])) for i in order]


def _above_sampled_cut(scores: np.ndarray, n: int, stride: int = 16) -> np.ndarray | None:
    """The rows scoring at least a cut that about 2n rows pass, the cut read off every
    `stride`-th score; None when fewer than n pass or it is not positive. Every row outside
    scores below the cut, so the n best are among these: partitioning a few hundred rows, not
    the hundreds of thousands a common word gives a positive score, saves most of the time."""
    if len(scores) < 64 * n:
        return None
    sample = scores[::stride]
    m = min(len(sample), 2 * n // stride + 2)
    cut = np.partition(sample, len(sample) - m)[len(sample) - m]
    if cut <= 0:
        return None
    rows = np.flatnonzero(scores >= cut)
    return rows if len(rows) >= n else None


def _ranks(scores: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Each item's rank (1 = best) among the items of its own group."""
    order = np.lexsort((-scores, group))
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])
    position = np.arange(len(order))
    first = starts[np.searchsorted(starts, position, side="right") - 1]
    ranks = np.empty(len(order), dtype=np.float64)
    ranks[order] = position - first + 1
    return ranks


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
