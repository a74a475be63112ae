"""The dense side of an opened index: the segments' FAISS indexes searched as one.

Small segments are concatenated into one flat index (exact); a big segment keeps its own IVF
index (ann.py) and is searched in place, its tombstoned rows masked out; the candidates of a
PQ-coded one are re-scored exactly from its memory-mapped flat vectors. A search takes the
top k of every part (`search_threads` parts at a time) and merges them by score; rows are the
index's global row numbers.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from threading import Lock, Thread

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
        refined = [p for p in parts if p.refine]
        if refined:
            Thread(target=_map_in, args=(refined,), name="map-vectors", daemon=True).start()

    @property
    def approximate(self) -> bool:
        return any(p.approximate for p in self.parts)

    def search(self, query: np.ndarray, k: int, rows: np.ndarray | None = None,
               exact_rows: int = 20_000, probe_share: float = 0.2,
               refine: int = 100, threads: int = 1) -> list[tuple[int, float]]:
        """The k rows (among `rows`, when given) most similar to `query`, best first. An IVF
        part probes `probe_share` of its lists; an IVF-Flat part scores its rows exactly when a
        filter leaves at most `exact_rows` of them; a PQ part re-scores its best
        max(`refine`, 2k) candidates exactly (and scores the rows exactly when a filter leaves
        no more than that). With `threads` > 1 the parts are searched that many at a time
        (FAISS and numpy release the GIL)."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.d)
        candidates = max(refine, 2 * k)
        jobs = [(part, local) for part, local in zip(self.parts, self._locals(rows), strict=True)
                if len(local)]

        def one(job: tuple[Part, np.ndarray]) -> Found:
            return _search_part(job[0], query, k, job[1], exact_rows, probe_share, candidates)

        found = list(_pool(threads).map(one, jobs)) if threads > 1 and len(jobs) > 1 \
            else [one(job) for job in jobs]
        if not found:
            return []
        scores = np.concatenate([f[0] for f in found])
        at = np.concatenate([f[1] for f in found])
        top = np.lexsort((at, -scores))[:k]  # ties by row
        return [(int(at[t]), float(scores[t])) for t in top]

    def _locals(self, rows: np.ndarray | None) -> list[np.ndarray]:
        """Each part's local ids among global `rows` (all its live ones when None), grouped
        in one pass: a filter can keep most of a million rows."""
        if rows is None:
            return [p.live for p in self.parts]
        owner = self._part[rows]
        # Stable sort of small integers: a radix sort, linear in the rows.
        order = np.argsort(owner.astype(np.int16 if len(self.parts) < 2**15 else np.int32),
                           kind="stable")
        bounds = np.searchsorted(owner[order], np.arange(len(self.parts) + 1))
        local = self._local[rows[order]]
        return [local[bounds[j]:bounds[j + 1]] for j in range(len(self.parts))]


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


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    """One pool per thread count for the process: every index opened (each add or removal
    opens a new one) searches through it, rather than leaving threads behind."""
    with _POOLS_LOCK:
        if threads not in _POOLS:
            _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="dense-search")
        return _POOLS[threads]


def _map_in(parts: list[Part]) -> None:
    """Read one float of every page of the parts' memory-mapped flat vectors, so that the
    rows a search re-scores are mapped already: at first each re-scored row cost a page
    fault, often a read from disk (1M chunks: ~35 ms a query, ~1.4 ms once mapped). The
    pages stay file-backed and reclaimable, as the IVF-Flat lists a search scanned were.
    The thread holds the parts, so their memory outlives it."""
    for part in parts:
        step = max(1, PAGE // max(1, part.vectors.strides[0]))
        float(part.vectors[::step, 0].sum())


PAGE = 4096
Found = tuple[np.ndarray, np.ndarray]  # scores, best first, and their global rows


def _search_part(part: Part, query: np.ndarray, k: int, local: np.ndarray, exact_rows: int,
                 probe_share: float, candidates: int) -> Found:
    if part.refine:
        # Re-scoring reads as many flat rows as scoring this few exactly would.
        if len(local) <= candidates:
            return _best(part, query, k, local)
        return _refined(part, query, k, local, probe_share, candidates)
    if part.approximate and len(local) <= exact_rows:
        # Few rows left by a filter: IVF's probed lists could hold fewer than k of them.
        return _best(part, query, k, local)
    whole = len(local) == part.index.ntotal
    sel, _bits = (None, None) if whole else selector(part.index.ntotal, local)
    k = min(k, len(local))
    if not part.approximate:
        return _run(part, query, k, faiss.SearchParameters(sel=sel) if sel else None)
    nprobe = probes_for(part.index.nlist, probe_share)
    found = _run(part, query, k, _ivf_params(sel, nprobe))
    if len(found[0]) < k:
        # The probed lists held fewer than k of the rows a filter keeps: probe every list;
        # the selector still skips the other rows' distances.
        found = _run(part, query, k, _ivf_params(sel, part.index.nlist))
    return found


def _run(part: Part, query: np.ndarray, k: int, params: faiss.SearchParameters | None) -> Found:
    scores, ids = part.index.search(query, k, params=params)
    ok = ids[0] >= 0
    return scores[0][ok], part.rows[ids[0][ok]]


def _best(part: Part, query: np.ndarray, k: int, ids: np.ndarray) -> Found:
    """The k of local `ids` scoring best against the flat vectors, exactly."""
    scores = part.vectors[ids] @ query[0]
    top = np.argsort(-scores, kind="stable")[:k]
    return scores[top], part.rows[ids[top]]


def _refined(part: Part, query: np.ndarray, k: int, local: np.ndarray, probe_share: float,
             candidates: int) -> Found:
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
        return _best(part, query, k, local)
    return _best(part, query, k, np.sort(ids))  # in file order: mapped pages read forwards


def _ivf_params(sel: faiss.IDSelector | None, nprobe: int) -> faiss.SearchParametersIVF:
    return faiss.SearchParametersIVF(sel=sel, nprobe=nprobe) if sel else \
        faiss.SearchParametersIVF(nprobe=nprobe)
