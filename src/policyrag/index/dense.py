"""The dense side of an opened index: the segments' FAISS indexes searched as one.

Small segments are concatenated into one flat index (exact); a big segment keeps its own IVF
index (ann.py) and is searched in place, its tombstoned rows masked out. A search takes the
top k of every part and merges them by score; rows are the index's global row numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import faiss
import numpy as np

from policyrag.index.ann import probes_for, refines, selector


@dataclass
class Part:
    index: faiss.Index  # flat or IVF, over the part's local ids
    rows: np.ndarray  # the global row of each local id; -1 for a tombstoned one
    vectors: np.ndarray  # (local ids, dim): the part's vectors, often a memory-mapped view
    approximate: bool = False  # an IVF index; else flat
    owner: object = None  # what `vectors` views the memory of, when not `index` itself
    live: np.ndarray = field(init=False)  # the local ids that are not tombstoned
    refine: bool = field(init=False)  # approximate scores (PQ codes), re-scored from `vectors`

    def __post_init__(self) -> None:
        self.live = np.flatnonzero(self.rows >= 0)
        self.refine = self.approximate and refines(self.index)


class DenseIndex:
    """Exact or approximate inner-product search over the live rows of every segment."""

    def __init__(self, parts: list[Part], dim: int) -> None:
        self.parts, self.d = parts, dim
        self.ntotal = sum(len(p.live) for p in parts)
        # global row -> (part, local id), for filters and for fetching vectors by row
        self._part = np.empty(self.ntotal, dtype=np.int32)
        self._local = np.empty(self.ntotal, dtype=np.int64)
        for j, part in enumerate(parts):
            self._part[part.rows[part.live]] = j
            self._local[part.rows[part.live]] = part.live

    @property
    def approximate(self) -> bool:
        return any(p.approximate for p in self.parts)

    def search(self, query: np.ndarray, k: int, rows: np.ndarray | None = None,
               exact_rows: int = 20_000, probe_share: float = 0.2,
               refine: int = 100) -> list[tuple[int, float]]:
        """The k rows (among `rows`, when given) most similar to `query`, best first. An IVF
        part probes `probe_share` of its lists; an IVF-Flat part scores its rows exactly when a
        filter leaves at most `exact_rows` of them; a PQ part re-scores its best
        max(`refine`, 2k) candidates exactly (and scores the rows exactly when a filter leaves
        no more than that)."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.d)
        found: list[tuple[float, int]] = []
        for j, part in enumerate(self.parts):
            local = part.live if rows is None else self._local[rows[self._part[rows] == j]]
            if len(local):
                found += self._search_part(part, query, k, local, exact_rows, probe_share,
                                           max(refine, 2 * k))
        found.sort(key=lambda x: -x[0])
        return [(row, score) for score, row in found[:k]]

    def _search_part(self, part: Part, query: np.ndarray, k: int, local: np.ndarray,
                     exact_rows: int, probe_share: float,
                     candidates: int) -> list[tuple[float, int]]:
        if part.refine:
            # Re-scoring reads as many flat rows as scoring this few exactly would.
            if len(local) <= candidates:
                return _exact(part, query, k, local)
            return _refined(part, query, k, local, probe_share, candidates)
        if part.approximate and len(local) <= exact_rows:
            # Few rows left by a filter: IVF's probed lists could hold fewer than k of them.
            return _exact(part, query, k, local)
        whole = len(local) == part.index.ntotal
        sel, _bits = (None, None) if whole else selector(part.index.ntotal, local)
        k = min(k, len(local))
        if not part.approximate:
            found = self._run(part, query, k, faiss.SearchParameters(sel=sel) if sel else None)
        else:
            nprobe = probes_for(part.index.nlist, probe_share)
            found = self._run(part, query, k, _ivf_params(sel, nprobe))
            if len(found) < k:
                # The probed lists held fewer than k of the rows a filter keeps: probe every
                # list; the selector still skips the other rows' distances.
                found = self._run(part, query, k, _ivf_params(sel, part.index.nlist))
        return found

    @staticmethod
    def _run(part: Part, query: np.ndarray, k: int,
             params: faiss.SearchParameters | None) -> list[tuple[float, int]]:
        scores, ids = part.index.search(query, k, params=params)
        return [(float(s), int(part.rows[i])) for i, s in zip(ids[0], scores[0], strict=True)
                if i >= 0]

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of global `rows`, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(self.parts) == 1 and len(self.parts[0].live) == len(self.parts[0].rows):
            return self.parts[0].vectors[self._local[rows]]
        out = np.empty((len(rows), self.d), dtype=np.float32)
        owner = self._part[rows]
        for j, part in enumerate(self.parts):
            at = np.flatnonzero(owner == j)
            if len(at):
                out[at] = part.vectors[self._local[rows[at]]]
        return out

    def matrix(self) -> np.ndarray:
        """All live vectors as one (n, dim) array: a view when one flat part holds them all."""
        if len(self.parts) == 1 and len(self.parts[0].live) == len(self.parts[0].rows):
            part = self.parts[0]
            if (part.rows == np.arange(len(part.rows))).all():
                return part.vectors
        return self.take(np.arange(self.ntotal))


def _exact(part: Part, query: np.ndarray, k: int, local: np.ndarray) -> list[tuple[float, int]]:
    scores = part.vectors[local] @ query[0]
    top = np.argsort(-scores, kind="stable")[:k]
    return [(float(scores[t]), int(part.rows[local[t]])) for t in top]


def _refined(part: Part, query: np.ndarray, k: int, local: np.ndarray, probe_share: float,
             candidates: int) -> list[tuple[float, int]]:
    """The PQ index's best `candidates` among `local`, re-scored from the flat vectors.

    Fast scan ignores ID selectors, so a filter (or tombstones) is applied to the candidates,
    fetched in the proportion of the rows it drops; a filter that leaves fewer than k of them
    in the probed lists is answered exactly."""
    n = part.index.ntotal
    keep = None
    if len(local) < n:
        keep = np.zeros(n, dtype=bool)
        keep[local] = True
        candidates = min(n, int(candidates * n / len(local)) + 1)
    params = faiss.SearchParametersIVF(nprobe=probes_for(part.index.nlist, probe_share))
    _, ids = part.index.search(query, min(candidates, n), params=params)
    ids = ids[0][ids[0] >= 0]
    if keep is not None:
        ids = ids[keep[ids]]
    if len(ids) < min(k, len(local)):
        return _exact(part, query, k, local)
    ids = np.sort(ids)  # in file order: the mapped pages are read forwards
    scores = part.vectors[ids] @ query[0]
    top = np.argsort(-scores, kind="stable")[:k]
    return [(float(scores[t]), int(part.rows[ids[t]])) for t in top]


def _ivf_params(sel: faiss.IDSelector | None, nprobe: int) -> faiss.SearchParametersIVF:
    return faiss.SearchParametersIVF(sel=sel, nprobe=nprobe) if sel else \
        faiss.SearchParametersIVF(nprobe=nprobe)
