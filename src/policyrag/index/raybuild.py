"""`policyrag index build --ray [ADDRESS]`: read → clean → chunk → embed as Ray Data over a
Ray cluster, adopted by the index in one atomic commit.

Three Ray Data stages (`map_batches`), the driver between them:

1. read + clean (tasks): each file's bytes, or each line of a JSON Lines collection, becomes a
   Document and its quoted slogans. The driver then does what needs every report and costs
   little: doc_ids in file order (as load_documents gives them), duplicates (as build does),
   and the index-wide slogan lexicon that BM25 tokens depend on (the union of the slogans
   stage 1 found).
2. chunk (tasks): each report becomes its chunk rows.
3. tokenise + embed (tasks; each worker process loads the model once): BM25 tokens and
   vectors of the chunks, in exactly the batches a single-process build forms, since the
   packaged int8 model's vectors depend on the rest of the batch.

Where data lives: files go to the workers as bytes and rows come back as arrays, both through
Ray's object store, so the cluster needs no shared filesystem: neither the reports nor the
index folder need be visible from the workers. Stage 3's rows stream back in order; the driver
cuts them into segments where a single-process build cuts them (settings.segment_chunks, at a
report boundary), writes each into the commit's temporary generation folder as soon as it is
complete and lets it go, and at the end swaps the manifest once. So the driver holds the
reports' texts and chunk offsets (as stage 1 needs every report to settle doc_ids) and one
segment's vectors and tokens, never the whole index's; a build that fails or is killed before
the swap leaves the live index as it was. Every node needs policyrag[ray] installed, with the
same model; each worker checks that it has the model revision the driver has.

Through Ray Client (ray://HEAD:10001) an actor on the cluster drives each stage, as Ray Data
cannot drive one from a client, and hands its batches to the client one at a time. Ray does
the distribution: no scheduler, queue or RPC of ours.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from policyrag import __version__
from policyrag.config import Settings
from policyrag.index import lifecycle as idx
from policyrag.index import store, streaming
from policyrag.index.embedding import Embedder, load_embedder
from policyrag.index.progress import Bar, Bars, bars_for
from policyrag.index.segments import lexicon_digest
from policyrag.ingest.chunking import Chunk, chunk_text
from policyrag.ingest.documents import Document
from policyrag.ingest.readers import ReadError
from policyrag.ingest.split_read import plan, read_batch, settle

if TYPE_CHECKING:
    from policyrag.engine import Engine

INSTALL = "pip install 'policyrag[ray]'"
# How long the driver waits for ADDRESS to answer before saying it cannot connect (Ray's own
# connection attempts retry for half a minute or more).
CONNECT_SECONDS = 5.0
AUTH_HINT = ("If the cluster uses token authentication (clusters started by `ray start` do "
             "by default), set RAY_AUTH_MODE=token here and give its token (the head's "
             "~/.ray/auth_token, or RAY_AUTH_TOKEN; `ray get-auth-token` prints it)")


class RayBuildError(idx.IndexError_):
    """Ray is missing, the cluster cannot be reached, or a worker failed; the message says which."""


# ---- connecting ----------------------------------------------------------------------------

def _ray():
    try:
        import ray
        import ray.data  # noqa: F401  (the data extra)
    except ImportError:
        raise RayBuildError(f"--ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def split_address(value: str) -> tuple[str | None, list[Path]]:
    """`--ray VALUE` as (address, paths): `--ray seeds/` means a local instance and the path
    seeds/, since an address has a colon or is auto/local."""
    if not value:
        return None, []
    if value in ("auto", "local"):
        return (None if value == "local" else value), []
    if ":" in value and not Path(value).exists():
        return value, []
    return None, [Path(value)]


def _host_port(address: str) -> tuple[str, int] | None:
    """Where ADDRESS ("ray://host:10001" or "host:6379") listens; None for auto/local."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def _probe(address: str) -> None:
    where = _host_port(address)
    if where is None:
        return
    try:
        socket.create_connection(where, timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise RayBuildError(
            f"cannot connect to the Ray cluster at {address}: {where[0]}:{where[1]} does not "
            f"answer ({exc.strerror or exc}). Start one with `ray start --head` and give its "
            "address (ray://HEAD:10001 from another machine, HEAD:6379 or auto on a node of "
            "the cluster), or leave ADDRESS out to start a local Ray instance") from None


@dataclass
class Session:
    """A connection to Ray, and whether this build started it (then it also shuts it down)."""
    ray: Any
    started: bool
    # Through Ray Client (ray://): Ray Data cannot drive a pipeline from a client, so each
    # stage's pipeline is driven by a task on the cluster (see collect).
    client: bool = False

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()  # type: ignore[attr-defined]


def connect(address: str | None) -> Session:
    """Ray as already initialised in this process, the cluster at `address`, or a local
    instance with every core when `address` is None."""
    ray = _ray()
    if address:
        _probe(address)
    if ray.is_initialized():
        return Session(ray, False, _is_client(ray))
    try:
        # "local": a new instance even when `ray start` left one running here (--ray auto
        # joins that one).
        ray.init(address=address or "local", include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise RayBuildError(f"cannot connect to {where}: {exc}. {AUTH_HINT}") from None
    return Session(ray, True, _is_client(ray))


def _is_client(ray) -> bool:
    from ray.util.client import ray as client

    return client.is_connected()


# ---- stage 1: read + clean (split_read.py does the work) -----------------------------------

def load_on_ray(session: Session, paths: list[Path], workers: int
                ) -> tuple[list[Document], list[ReadError], dict[str, list[str]]]:
    """Stage 1: the reports under `paths`, read and cleaned by Ray workers."""
    entries, errors = plan(paths)
    items = [e.item for e in entries if e.item is not None]
    results: dict[int, dict] = {}
    for part in stream(session, "read", items, len(items), workers, {}) if items else ():
        results.update({int(seq): {"doc": doc, "error": error, "slogans": found}
                        for seq, doc, error, found in zip(part["seq"], part["doc"],
                                                          part["error"], part["slogans"],
                                                          strict=True)})
    return settle(entries, results, errors)


# ---- stage 2: chunk; stage 3: tokenise + embed ----------------------------------------------

def chunk_batch(batch: dict[str, np.ndarray], limit: int, overlap: int
                ) -> dict[str, np.ndarray]:
    """Stage 2 on a worker: reports to chunk rows (offsets; the driver has the texts)."""
    rows: list[tuple[int, int, str, int, int]] = []
    for seq, doc_id, text in zip(batch["seq"], batch["doc_id"], batch["text"], strict=True):
        rows += [(int(seq), n, c.chunk_id, c.start, c.end)
                 for n, c in enumerate(chunk_text(str(doc_id), str(text), limit, overlap))]
    cols = list(zip(*rows, strict=True)) or [(), (), (), (), ()]
    return {"seq": np.array(cols[0], dtype=np.int64), "n": np.array(cols[1], dtype=np.int64),
            "chunk_id": np.array(cols[2], dtype=object),
            "start": np.array(cols[3], dtype=np.int64), "end": np.array(cols[4], dtype=np.int64)}


# The model of each worker process, loaded by its first stage-3 task and kept for the next:
# stage 3 runs as tasks, not an actor pool, so that a worker that dies is simply retried (Ray
# Data's actors may be restarted, and Ray logs an ERROR for each one whose restart could fail:
# ray-project/ray#53727), and the model still loads once a process.
_MODELS: dict[tuple[str, str], Embedder] = {}


def _worker_embedder(model: str, revision: str, version: str, threads: int) -> Embedder:
    if version != __version__:
        raise RayBuildError(f"this Ray worker has policyrag {__version__}, the driver "
                            f"{version}; install the same version on every node")
    if (model, revision) not in _MODELS:
        embedder = load_embedder(model)
        if hasattr(embedder, "threads"):
            embedder.threads = threads
        if embedder.revision != revision:
            raise RayBuildError(f"this Ray worker ({socket.gethostname()}) has another revision "
                                f"of model {model!r} ({embedder.revision}, the driver "
                                f"{revision}); its vectors would not match")
        _MODELS[(model, revision)] = embedder
    return _MODELS[(model, revision)]


def embed_batch(batch: dict[str, np.ndarray], model: str, revision: str, version: str,
                settings: Settings, lexicon: list[str], threads: int) -> dict[str, np.ndarray]:
    """Stage 3 on a worker: BM25 tokens and vectors of chunk batches, by the function a
    single-process build uses.

    Each item is one batch exactly as a single-process build forms it (`embed_spans`), because
    the packaged int8 model's vectors depend on what else is in the batch (by up to 0.01):
    other batches would give other vectors.
    """
    embedder = _worker_embedder(model, revision, version, threads)
    out: dict[str, list] = {"k": [], "tokens": [], "vector": []}
    for k, ids, texts in zip(batch["k"], batch["ids"], batch["texts"], strict=True):
        chunks = [Chunk(i, "", 0, 0, t) for i, t in zip(json.loads(ids), json.loads(texts),
                                                       strict=True)]
        vectors, tokens = idx._embed_and_tokenize(chunks, embedder, settings, False, lexicon)
        out["k"] += range(int(k), int(k) + len(chunks))
        out["tokens"] += [tokens[c.chunk_id] for c in chunks]
        out["vector"].append(np.asarray(vectors, dtype=np.float32))
    return {"k": np.array(out["k"], dtype=np.int64),
            "tokens": np.array(out["tokens"], dtype=object),
            "vector": np.concatenate(out["vector"])}


@dataclass
class ChunkRows:
    """Every chunk's place, in the order a build writes them: offsets into the reports, whose
    texts the driver holds anyway, so that no chunk's text is held twice."""
    seq: np.ndarray  # the report's index
    chunk_id: np.ndarray
    start: np.ndarray
    end: np.ndarray

    def __len__(self) -> int:
        return len(self.seq)

    def chunks(self, docs: list[Document], a: int, b: int) -> list[Chunk]:
        """Chunks a..b-1, texts and all."""
        return [Chunk(str(cid), docs[s].doc_id, int(x), int(y), docs[s].text[int(x):int(y)])
                for cid, s, x, y in zip(self.chunk_id[a:b], self.seq[a:b], self.start[a:b],
                                        self.end[a:b], strict=True)]


def _per_batch(n: int, workers: int, stage: str) -> int:
    """Items per batch (and block) for n items: several batches per worker, so that one slow
    batch does not leave the others idle."""
    most = 8 if stage == "embed" else 64
    return max(1, min(most, -(-n // (workers * 4))))


def chunk_on_ray(session: Session, docs: list[Document], limit: int, overlap: int,
                 workers: int) -> ChunkRows:
    """Stage 2: every report's chunks, in the order a build writes them."""
    items = [{"seq": i, "doc_id": d.doc_id, "text": d.text} for i, d in enumerate(docs)]
    cols = collect(session, "chunk", items, workers, limit=limit, overlap=overlap)
    if not cols:
        return ChunkRows(*(np.zeros(0, np.int64),) * 4)
    order = np.lexsort((cols["n"], cols["seq"]))
    return ChunkRows(cols["seq"][order], cols["chunk_id"][order], cols["start"][order],
                     cols["end"][order])


def embed_spans(n: int, window: int, size: int) -> list[tuple[int, int]]:
    """The batches a single-process build embeds n chunks in (streaming.write): windows of
    `window` chunks cut from the whole stream, each embedded `size` chunks at a time."""
    return [(s, min(s + size, w + window, n)) for w in range(0, n, window)
            for s in range(w, min(w + window, n), size)]


def _embed_items(docs: list[Document], rows: ChunkRows, spans: list[tuple[int, int]]
                 ) -> Iterator[dict]:
    for a, b in spans:
        chunks = rows.chunks(docs, a, b)
        yield {"k": a, "ids": json.dumps([c.chunk_id for c in chunks]),
               "texts": json.dumps([c.text for c in chunks], ensure_ascii=False)}


class Segmenter:
    """Stage 3's rows, arriving in order, cut into segments as a single-process build cuts them
    (streaming.write): after each embedding window, the reports whose chunks are all embedded,
    once they hold `segment_chunks` chunks. Each goes to `write` and is let go."""

    def __init__(self, docs: list[Document], rows: ChunkRows, settings: Settings,
                 write: streaming.Write) -> None:
        self.docs, self.rows, self.write = docs, rows, write
        self.window, self.least = settings.embed_window, settings.segment_chunks
        counts = np.bincount(rows.seq, minlength=len(docs)) if len(rows) else \
            np.zeros(len(docs), np.int64)
        self.counts = counts.tolist()
        self.starts = (np.cumsum(counts) - counts).tolist()  # each report's first chunk
        self.held = streaming.Rows()
        self.done = self.taken = 0  # chunks embedded; reports handed to `held`
        self.segments = 0

    def add(self, k: int, vectors: np.ndarray, tokens: list[str]) -> None:
        """Rows k.. of the chunks (k is where the last call ended)."""
        if k != self.done:
            raise RayBuildError(f"stage 3 gave chunk {k} where chunk {self.done} was due")
        self.held.chunks += self.rows.chunks(self.docs, k, k + len(tokens))
        self.held.vectors.append(vectors)
        self.held.tokens += tokens
        before, self.done = self.done, k + len(tokens)
        # The reports a single-process build has read by now: those begun before this point.
        while self.taken < len(self.docs) and self.starts[self.taken] < self.done:
            self.held.docs.append((self.docs[self.taken], self.counts[self.taken]))
            self.taken += 1
        if self.done // self.window > before // self.window:  # a window completed
            self._flush(self.least)

    def finish(self) -> None:
        self.held.docs += [(d, n) for d, n in zip(self.docs[self.taken:],
                                                  self.counts[self.taken:], strict=True)]
        self.taken = len(self.docs)
        self._flush(0)

    def _flush(self, least: int) -> None:
        reports, n = self.held.ready()
        if reports and n >= least:
            self.write(*self.held.take(reports, n))
            self.segments += 1


def embed_on_ray(session: Session, docs: list[Document], rows: ChunkRows, embedder: Embedder,
                 settings: Settings, lexicon: list[str], workers: int,
                 segmenter: Segmenter, shown: Bar) -> None:
    """Stage 3: the chunks' BM25 tokens and vectors, in batches as a build makes them, handed
    to `segmenter` in order as they arrive.

    It runs as one Ray Data pipeline per stretch of about a segment's chunks (and at least 4
    batches a worker), so that the chunk texts sent to the workers are in the object store
    a stretch at a time, not all at once. Each worker process keeps its model between them."""
    spans = embed_spans(len(rows), settings.embed_window, settings.batch_size)
    stretch = max(-(-settings.segment_chunks // settings.batch_size), workers * 4)
    kwargs = {"model": embedder.name, "revision": embedder.revision, "version": __version__,
              "settings": settings, "lexicon": lexicon, "threads": 1}
    waiting: dict[int, dict[str, np.ndarray]] = {}  # batches that came early, by first row
    for g in range(0, len(spans), stretch):
        some = spans[g:g + stretch]
        for part in stream(session, "embed", _embed_items(docs, rows, some), len(some),
                           workers, kwargs):
            if not len(part["k"]):
                continue
            waiting[int(part["k"][0])] = part
            while segmenter.done in waiting:
                part = waiting.pop(segmenter.done)
                shown.update(len(part["k"]))
                segmenter.add(segmenter.done, np.ascontiguousarray(part["vector"], np.float32),
                              [str(t) for t in part["tokens"]])
    if segmenter.done != len(rows):
        raise RayBuildError(f"stage 3 gave {segmenter.done} of {len(rows)} chunks")
    segmenter.finish()


def _stage(ds, stage: str, per: int, kwargs: dict):
    """The map_batches of one stage."""
    if stage == "read":
        return ds.map_batches(read_batch, batch_size=per, batch_format="numpy", num_cpus=1)
    if stage == "chunk":
        return ds.map_batches(chunk_batch, batch_size=per, batch_format="numpy", num_cpus=1,
                              fn_kwargs=kwargs)
    return ds.map_batches(embed_batch, batch_size=per, batch_format="numpy", num_cpus=1,
                          fn_kwargs=kwargs)


def _put(ray, items: Iterable[dict], per: int) -> list:
    """`items` in the object store as Arrow blocks of `per`, made one at a time, so that the
    driver never holds all of them at once, converted (as ray.data.from_items would)."""
    import pyarrow as pa

    refs, group = [], []
    for item in items:
        group.append(item)
        if len(group) == per:
            refs.append(ray.put(pa.Table.from_pylist(group)))
            group = []
    if group:
        refs.append(ray.put(pa.Table.from_pylist(group)))
    return refs


def batches(stage: str, source: list, per: int, kwargs: dict
            ) -> Iterator[dict[str, np.ndarray]]:
    """One stage run as Ray Data over the blocks `source` (object refs, `per` items each):
    its output batches as they come, in order."""
    import ray.data

    ds = _stage(ray.data.from_arrow_refs(source), stage, per, kwargs)
    ds.context.execution_options.preserve_order = True
    yield from ds.iter_batches(batch_size=None, batch_format="numpy")


class Feed:
    """Through Ray Client, a stage's pipeline driven on the cluster (Ray Data cannot drive one
    from a client), its batches handed to the client one at a time."""

    def __init__(self, stage: str, source: list, per: int, kwargs: dict) -> None:
        self.batches = batches(stage, source, per, kwargs)

    def next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def stream(session: Session, stage: str, items: Iterable[dict], n: int, workers: int,
           kwargs: dict) -> Iterator[dict[str, np.ndarray]]:
    """A stage's output batches, here or through Ray Client; a worker's failure told as what
    went wrong there."""
    from ray.exceptions import RayError

    per = _per_batch(n, workers, stage)
    try:
        source = _put(session.ray, items, per)
        if not session.client:
            yield from batches(stage, source, per, kwargs)
            return
        feed = session.ray.remote(num_cpus=0)(Feed).remote(stage, source, per, kwargs)
        try:
            while (part := session.ray.get(feed.next.remote())) is not None:
                yield part
        finally:
            session.ray.kill(feed)
    except RayError as exc:
        raise RayBuildError(_worker_failure(exc)) from None


def collect(session: Session, stage: str, items: list[dict], workers: int,
            **kwargs) -> dict[str, np.ndarray]:
    """A stage's whole output, its columns concatenated."""
    if not items:
        return {}
    parts = list(stream(session, stage, items, len(items), workers, kwargs))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}


def _worker_failure(exc: BaseException) -> str:
    """Our own message when a worker raised a RayBuildError (Ray wraps it, at times several
    times over, keeping its text), else Ray's account of the failure."""
    text = str(exc)
    mark = f"{RayBuildError.__name__}: "
    if mark in text:
        return text[text.rindex(mark) + len(mark):].splitlines()[0]
    return f"the Ray build failed on a worker: {text}"


# ---- the build ------------------------------------------------------------------------------

@dataclass
class RayBuild:
    change: idx.Change
    errors: list[ReadError]
    workers: int  # CPUs of the cluster
    seconds: dict[str, float]  # by stage: connect, read, chunk, embed (and write), commit
    segments: int = 0


class _Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 2)
        self._last = now


def _workers(ray) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def build(root: Path, paths: list[Path], embedder: Embedder, settings: Settings,
          address: str | None = None, wait: float = 0.0,
          progress: bool | Bars = False) -> RayBuild:
    """A whole new index of the reports under `paths`, made on Ray; what a single-process
    build of the same reports makes (same doc_ids, chunks, tokens and segments; vectors
    within float tolerance), committed the same way: segments written into a new generation
    as their rows arrive, made live by one manifest swap."""
    clock = _Clock()
    session = connect(address)
    try:
        workers = _workers(session.ray)
        clock.lap("connect")
        docs, errors, found = load_on_ray(session, paths, workers)
        clock.lap("read")
        unique, dups = idx._dedupe(idx._absolute(docs), {})
        del docs
        if not unique:
            raise idx.IndexError_(_nothing(paths, errors))
        lexicon = sorted({s for d in unique for s in found[d.doc_id]})
        manifest = idx._new_manifest(embedder, settings, [idx._source_key(str(p))
                                                          for p in paths])
        limit = min(settings.chunk_max_chars, embedder.max_chars)
        with store.writer_lock(root, wait):
            rows = chunk_on_ray(session, unique, limit, settings.chunk_overlap_chars,
                                workers)
            clock.lap("chunk")
            change, segments = _write(root, session, manifest, unique, rows, embedder,
                                      settings, lexicon, workers, bars_for(progress), clock)
        change.duplicates = dups
        return RayBuild(change, errors, workers, clock.laps, segments)
    finally:
        session.close()


def _write(root: Path, session: Session, manifest: idx.Manifest, docs: list[Document],
           rows: ChunkRows, embedder: Embedder, settings: Settings, lexicon: list[str],
           workers: int, bars: Bars, clock: _Clock) -> tuple[idx.Change, int]:
    """Stage 3 into a new generation, one segment at a time, and its commit."""
    digest = lexicon_digest(lexicon)
    with idx.new_generation(root, manifest.dim, settings) as gen:
        segmenter = Segmenter(docs, rows, settings, lambda d, c, v, t: gen.write(
            idx.Batch(d, c, v, t, digest)))
        shown = bars(len(rows), "embedding", "chunk")
        try:
            embed_on_ray(session, docs, rows, embedder, settings, lexicon, workers,
                         segmenter, shown)
        finally:
            shown.close()
        clock.lap("embed")
        manifest.sources = sorted(set(manifest.sources) | {d.source for d in docs})
        manifest.lexicon = lexicon
        committed = gen.commit(manifest, [None], idx._fingerprint(docs),
                               settings.generations_kept)
        clock.lap("commit")
    return idx.Change(added=[d.doc_id for d in docs], generation=committed.name), \
        segmenter.segments


def _nothing(paths: list[Path], errors: list[ReadError]) -> str:
    from policyrag.engine import _nothing

    return _nothing("index", paths, errors)


def build_with_engine(engine: Engine, paths: list[Path], address: str | None,
                      wait: float = 0.0) -> tuple[str | None, list[ReadError]]:
    """`Engine.build` on Ray: the CLI's `policyrag index build --ray`."""
    from policyrag.engine import _duplicates

    embedder = engine._writer_embedder(engine.requested_model or engine.settings.model)
    done = build(engine.root, paths, embedder, engine.settings, address, wait,
                 engine.progress)
    engine._committed(embedder)
    return done.change.generation, done.errors + _duplicates(done.change)
