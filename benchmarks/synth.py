"""Synthetic corpora for the benchmarks: seed sentences recombined under other place names.

A synthetic report is a run of 3-8 consecutive sentences from one seed report, then another run
from another, ... until it is about as long as a seed (2,000-3,500 characters, about 10
chunks). The place names of the seeds (莲都, 丽水, 路桥, 温州, in either script) are replaced
by one of 16 other Zhejiang localities per report. Texts therefore read like real reports, and
BM25 sees realistic term statistics, but they repeat: there are at most 16 variants of each seed
sentence.

For the large sizes `build_synthetic_index` writes a real index through `policyrag.index.build`,
but skips what costs build time without changing query cost:
- vectors are random unit vectors (query latency of a flat inner-product index does not depend on
  the values; embedding 100k chunks with the packaged model would take over an hour on 2 cores);
- script folding and slogan mining over the whole corpus are skipped (the seeds' slogans are the
  lexicon);
- jieba tokenisation is memoised per sentence, which gives exactly the tokens of the whole chunk
  because jieba never joins characters across punctuation or line breaks.
"""

from __future__ import annotations

import hashlib
import random
from functools import cache
from pathlib import Path

import numpy as np

from policyrag.config import Settings
from policyrag.index import lifecycle as idx
from policyrag.index.lexical import slogans, tokenize
from policyrag.ingest.chunking import sentence_spans
from policyrag.ingest.documents import Document, load_documents

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"

SEED_PLACES = ("莲都", "蓮都", "丽水", "麗水", "路桥", "路橋", "温州", "溫州")
PLACES = (("龙泉", "龙泉市"), ("青田", "青田县"), ("缙云", "缙云县"), ("遂昌", "遂昌县"),
          ("松阳", "松阳县"), ("云和", "云和县"), ("庆元", "庆元县"), ("景宁", "景宁畲族自治县"),
          ("黄岩", "黄岩区"), ("椒江", "椒江区"), ("临海", "临海市"), ("温岭", "温岭市"),
          ("玉环", "玉环市"), ("天台", "天台县"), ("仙居", "仙居县"), ("三门", "三门县"))


def seed_documents() -> list[Document]:
    docs, errors = load_documents([SEEDS])
    if errors or not docs:
        raise SystemExit(f"cannot read the seeds in {SEEDS}: {errors}")
    return docs


def _sentences(doc: Document) -> list[str]:
    return [doc.text[s.start:s.end] for s in sentence_spans(doc.text)]


def _substitute(sentence: str, place: str) -> str:
    for name in SEED_PLACES:
        sentence = sentence.replace(name, place)
    return sentence


def synthetic_documents(seeds: list[Document], n_chunks: int, settings: Settings,
                        max_chars: int, seed: int = 7) -> list[Document]:
    """Reports whose chunks add up to at least `n_chunks`."""
    from policyrag.ingest.chunking import chunk_text

    rng = random.Random(seed)
    pools = [_sentences(d) for d in seeds]
    limit = min(settings.chunk_max_chars, max_chars)
    docs: list[Document] = []
    total = 0
    while total < n_chunks:
        short, full = rng.choice(PLACES)
        target = rng.randint(2000, 3500)
        parts: list[str] = []
        length = 0
        while length < target:
            pool = rng.choice(pools)
            start = rng.randrange(len(pool))
            for sentence in pool[start:start + rng.randint(3, 8)]:
                parts.append(_substitute(sentence, short))
                length += len(parts[-1]) + 1
        text = "\n".join(parts)
        n = len(docs)
        doc = Document(doc_id=f"syn{n:06d}", source=f"synthetic/syn{n:06d}.txt", text=text,
                       title=f"{short}工作会议", locality=full, locality_level="county",
                       date=f"{2020 + n % 5}-{1 + n % 12:02d}-{1 + n % 28:02d}",
                       content_hash=hashlib.sha256(text.encode()).hexdigest())
        docs.append(doc)
        total += len(chunk_text(doc.doc_id, text, limit, settings.chunk_overlap_chars))
    return docs


class RandomEmbedder:
    """Stands in for the real model at build time: same name, revision and size, random vectors."""

    def __init__(self, real, seed: int = 11) -> None:
        self.name, self.revision, self.dim = real.name, real.revision, real.dim
        self.max_chars = real.max_chars
        self.rng = np.random.default_rng(seed)

    def encode(self, texts, kind="passage", batch_size=32, progress=False) -> np.ndarray:
        v = self.rng.standard_normal((len(texts), self.dim), dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def build_synthetic_index(root: Path, n_chunks: int, real_embedder, seed: int = 7) -> dict:
    """A real index of about `n_chunks` synthetic chunks at `root`; returns what it holds."""
    settings = Settings()
    seeds = seed_documents()
    docs = synthetic_documents(seeds, n_chunks, settings, real_embedder.max_chars, seed)
    lexicon = slogans(d.text for d in seeds)

    @cache
    def sentence_tokens(sentence: str, lex: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(tokenize(sentence, lex))

    def fast_tokenize(text: str, lex: tuple[str, ...] = ()) -> list[str]:
        return [t for s in sentence_spans(text) for t in sentence_tokens(text[s.start:s.end], lex)]

    saved = idx.tokenize, idx.to_simplified, idx.slogans
    idx.tokenize, idx.to_simplified, idx.slogans = fast_tokenize, (lambda t: t), (lambda _: lexicon)
    try:
        idx.build(root, docs, RandomEmbedder(real_embedder, seed), settings, ["synthetic"])
    finally:
        idx.tokenize, idx.to_simplified, idx.slogans = saved
    gen = idx.store.current_generation(root)
    manifest = idx.Manifest.from_dict(idx.store.read_json(gen / "manifest.json"))
    return {"documents": manifest.documents, "chunks": manifest.chunks,
            "distinct_sentences": sentence_tokens.cache_info().currsize,
            "disk_mb": round(sum(f.stat().st_size for f in gen.iterdir()) / 1e6, 1)}
