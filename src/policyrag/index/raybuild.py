"""`policyrag index build --ray [ADDRESS]`: read → clean → chunk → embed as Ray Data over a
Ray cluster, adopted by the index in one atomic commit.

Three Ray Data stages (`map_batches`), the driver between them:

1. read + clean (tasks): each file's bytes, or each line of a JSON Lines collection, becomes a
   Document and its quoted slogans. The driver then does what needs every report and costs
   little: doc_ids in file order (as load_documents gives them), duplicates (as build does),
   and the index-wide slogan lexicon that BM25 tokens depend on (the union of the slogans
   stage 1 found).
2. chunk (tasks): each report becomes its chunk rows.
3. tokenise + embed (an actor pool, so each worker loads the model once): BM25 tokens and
   vectors of the chunks, in exactly the batches a single-process build forms, since the
   packaged int8 model's vectors depend on the rest of the batch.

Where data lives: files go to the workers as bytes and rows come back as arrays, both through
Ray's object store, and the driver writes the segment into the commit's temporary generation
folder and swaps the manifest, as a single-process build does. So the cluster needs no shared
filesystem: neither the reports nor the index folder need be visible from the workers, and an
index is never half-written by a worker that died. The price is that the driver holds the
reports' bytes and the index's vectors (2 kB a chunk with the 512-dim default model), as a
single-process build holds them. Every node needs policyrag[ray] installed, with the same
model; each worker checks that it has the model revision the driver has.

Through Ray Client (ray://HEAD:10001) a task on the cluster drives each stage, as Ray Data
cannot drive one from a client. Ray does the distribution: no scheduler, queue or RPC of ours.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from policyrag import __version__
from policyrag.config import Settings
from policyrag.index import lifecycle as idx
from policyrag.index import store
from policyrag.index.embedding import Embedder, load_embedder
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
    cols = collect(session, "read", items, workers)
    results = {int(seq): {"doc": doc, "error": error, "slogans": found}
               for seq, doc, error, found in zip(cols.get("seq", []), cols.get("doc", []),
                                                 cols.get("error", []), cols.get("slogans", []),
                                                 strict=True)}
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


class EmbedBatches:
    """Stage 3 on a worker (an actor, so the model loads once): BM25 tokens and vectors of
    chunk batches, by the function a single-process build uses.

    Each item is one batch exactly as a single-process build forms it (settings.batch_size
    chunks in index order), because the packaged int8 model's vectors depend on what else is
    in the batch (by up to 0.01): other batches would give other vectors.
    """

    def __init__(self, model: str, revision: str, version: str, settings: Settings,
                 lexicon: list[str], threads: int) -> None:
        if version != __version__:
            raise RayBuildError(f"this Ray worker has policyrag {__version__}, the driver "
                                f"{version}; install the same version on every node")
        self.embedder = load_embedder(model)
        if hasattr(self.embedder, "threads"):
            self.embedder.threads = threads
        if self.embedder.revision != revision:
            raise RayBuildError(f"this Ray worker ({socket.gethostname()}) has another revision "
                                f"of model {model!r} ({self.embedder.revision}, the driver "
                                f"{revision}); its vectors would not match")
        self.settings, self.lexicon = settings, lexicon

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list] = {"b": [], "i": [], "tokens": [], "vector": []}
        for b, ids, texts in zip(batch["b"], batch["ids"], batch["texts"], strict=True):
            chunks = [Chunk(i, "", 0, 0, t) for i, t in zip(json.loads(ids), json.loads(texts),
                                                           strict=True)]
            vectors, tokens = idx._embed_and_tokenize(chunks, self.embedder, self.settings,
                                                      False, self.lexicon)
            out["b"] += [int(b)] * len(chunks)
            out["i"] += range(len(chunks))
            out["tokens"] += [tokens[c.chunk_id] for c in chunks]
            out["vector"].append(np.asarray(vectors, dtype=np.float32))
        return {"b": np.array(out["b"], dtype=np.int64), "i": np.array(out["i"], dtype=np.int64),
                "tokens": np.array(out["tokens"], dtype=object),
                "vector": np.concatenate(out["vector"])}


@dataclass
class Embedded:
    chunks: list[Chunk]
    vectors: np.ndarray
    tokens: list[str]


def _blocks(n: int, workers: int, most: int = 64) -> tuple[int, int]:
    """(items per batch, blocks) for n items: several batches per worker, so that one slow
    batch does not leave the others idle."""
    per = max(1, min(most, -(-n // (workers * 4))))
    return per, max(1, -(-n // per))


def chunk_on_ray(session: Session, docs: list[Document], limit: int, overlap: int,
                 workers: int) -> list[Chunk]:
    """Stage 2: every report's chunks, in the order a build writes them."""
    items = [{"seq": i, "doc_id": d.doc_id, "text": d.text} for i, d in enumerate(docs)]
    cols = collect(session, "chunk", items, workers, limit=limit, overlap=overlap)
    if not cols:
        return []
    order = np.lexsort((cols["n"], cols["seq"]))
    return [Chunk(str(cid), docs[s].doc_id, int(a), int(e), docs[s].text[int(a):int(e)])
            for cid, s, a, e in zip(cols["chunk_id"][order], cols["seq"][order],
                                    cols["start"][order], cols["end"][order], strict=True)]


def embed_on_ray(session: Session, chunks: list[Chunk], embedder: Embedder,
                 settings: Settings, lexicon: list[str], workers: int) -> Embedded:
    """Stage 3: the chunks' BM25 tokens and vectors, in batches as a build makes them."""
    size = settings.batch_size
    items = [{"b": b, "ids": json.dumps([c.chunk_id for c in chunks[s:s + size]]),
              "texts": json.dumps([c.text for c in chunks[s:s + size]], ensure_ascii=False)}
             for b, s in enumerate(range(0, len(chunks), size))]
    if not items:
        return Embedded([], np.zeros((0, embedder.dim), np.float32), [])
    cols = collect(session, "embed", items, workers, model=embedder.name,
                   revision=embedder.revision, version=__version__, settings=settings,
                   lexicon=lexicon, threads=1)
    order = np.lexsort((cols["i"], cols["b"]))
    return Embedded(chunks, np.ascontiguousarray(cols["vector"][order], dtype=np.float32),
                    [str(t) for t in cols["tokens"][order]])


def _stage(ds, stage: str, per: int, workers: int, kwargs: dict):
    """The map_batches of one stage."""
    import ray.data

    if stage == "read":
        return ds.map_batches(read_batch, batch_size=per, batch_format="numpy", num_cpus=1)
    if stage == "chunk":
        return ds.map_batches(chunk_batch, batch_size=per, batch_format="numpy", num_cpus=1,
                              fn_kwargs=kwargs)
    return ds.map_batches(EmbedBatches, batch_size=per, batch_format="numpy", num_cpus=1,
                          compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers),
                          fn_constructor_kwargs=kwargs)


def pipeline(stage: str, items: list[dict], workers: int, kwargs: dict
             ) -> dict[str, np.ndarray]:
    """One stage run to its end as Ray Data: its output columns, concatenated."""
    import ray.data

    per, blocks = _blocks(len(items), workers, most=8 if stage == "embed" else 64)
    ds = _stage(ray.data.from_items(items, override_num_blocks=blocks), stage, per, workers,
                kwargs)
    parts = list(ds.iter_batches(batch_size=None, batch_format="numpy"))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}


def collect(session: Session, stage: str, items: list[dict], workers: int,
            **kwargs) -> dict[str, np.ndarray]:
    """`pipeline` here, or through Ray Client in a task on the cluster; a worker's failure
    told as what went wrong there."""
    from ray.exceptions import RayError

    if not items:
        return {}
    try:
        if session.client:
            driver = session.ray.remote(num_cpus=0)(pipeline)
            return session.ray.get(driver.remote(stage, items, workers, kwargs))
        return pipeline(stage, items, workers, kwargs)
    except RayError as exc:
        raise RayBuildError(_worker_failure(exc)) from None


def _worker_failure(exc: BaseException) -> str:
    """Our own message when a worker raised a RayBuildError (Ray wraps it, in a failed actor
    start several times over, keeping its text), else Ray's account of the failure."""
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
    seconds: dict[str, float]  # by stage: connect, read, chunk, embed, commit


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
          address: str | None = None, wait: float = 0.0) -> RayBuild:
    """A whole new index of the reports under `paths`, made on Ray; what a single-process
    build of the same reports makes (same doc_ids, chunks, tokens; vectors within float
    tolerance), committed the same way: one segment, one manifest swap."""
    clock = _Clock()
    session = connect(address)
    try:
        workers = _workers(session.ray)
        clock.lap("connect")
        docs, errors, found = load_on_ray(session, paths, workers)
        clock.lap("read")
        unique, dups = idx._dedupe(idx._absolute(docs), {})
        if not unique:
            raise idx.IndexError_(_nothing(paths, errors))
        lexicon = sorted({s for d in unique for s in found[d.doc_id]})
        manifest = idx._new_manifest(embedder, settings, [idx._source_key(str(p))
                                                          for p in paths])
        limit = min(settings.chunk_max_chars, embedder.max_chars)
        with store.writer_lock(root, wait):
            chunks = chunk_on_ray(session, unique, limit, settings.chunk_overlap_chars,
                                  workers)
            clock.lap("chunk")
            made = embed_on_ray(session, chunks, embedder, settings, lexicon, workers)
            clock.lap("embed")
            change = idx.adopt(root, manifest, unique, made.chunks, made.vectors, made.tokens,
                               lexicon, settings)
            clock.lap("commit")
        change.duplicates = dups
        return RayBuild(change, errors, workers, clock.laps)
    finally:
        session.close()


def _nothing(paths: list[Path], errors: list[ReadError]) -> str:
    from policyrag.engine import _nothing

    return _nothing("index", paths, errors)


def build_with_engine(engine: Engine, paths: list[Path], address: str | None,
                      wait: float = 0.0) -> tuple[str | None, list[ReadError]]:
    """`Engine.build` on Ray: the CLI's `policyrag index build --ray`."""
    from policyrag.engine import _duplicates

    embedder = engine._writer_embedder(engine.requested_model or engine.settings.model)
    done = build(engine.root, paths, embedder, engine.settings, address, wait)
    engine._committed(embedder)
    return done.change.generation, done.errors + _duplicates(done.change)
