"""txtai and a plain LangChain FAISS store over the same chunks with the same embedder.

Both get a thin wrapper around policyrag's packaged embedder (no hub download), which, like
policyrag, folds text to simplified Chinese before embedding, so every system embeds exactly the
same strings into exactly the same vectors; differences in recall come from what each does around
the model (policyrag adds place-name expansion to queries, and BM25 in hybrid mode).
"""

from __future__ import annotations

import time

import numpy as np

from policyrag.script import to_simplified


class TimedEmbedder:
    """Wraps an Embedder and adds up the time spent inside `encode`."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.name, self.revision, self.dim = inner.name, inner.revision, inner.dim
        self.max_chars = inner.max_chars

    def encode(self, texts, kind="passage", batch_size=32, progress=False) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self.inner.encode(texts, kind, batch_size, progress)
        finally:
            self.seconds += time.perf_counter() - start


def folded_encoder(embedder: TimedEmbedder):
    def transform(texts):
        return embedder.encode([to_simplified(t if isinstance(t, str) else t[1]) for t in texts])
    return transform


class TxtaiStore:
    name = "txtai"

    @staticmethod
    def load() -> None:
        import txtai  # noqa: F401  (pulls in torch and transformers)

    def __init__(self, embedder: TimedEmbedder, chunks: list[tuple[str, str]]) -> None:
        from txtai import Embeddings

        self.chunks = chunks
        self.embeddings = Embeddings(method="external", transform=folded_encoder(embedder),
                                     content=False, backend="faiss")
        self.embeddings.index([(i, text, None) for i, (_, text) in enumerate(chunks)])

    def search(self, query: str, n: int) -> list[tuple[str, str]]:
        return [self.chunks[int(i)] for i, _ in self.embeddings.search(query, n)]


class LangchainFaissStore:
    name = "langchain-faiss"

    @staticmethod
    def load() -> None:
        import langchain_community.vectorstores  # noqa: F401

    def __init__(self, embedder: TimedEmbedder, chunks: list[tuple[str, str]]) -> None:
        from langchain_community.vectorstores import FAISS
        from langchain_core.embeddings import Embeddings

        transform = folded_encoder(embedder)

        class Wrapped(Embeddings):
            def embed_documents(self, texts):
                return transform(texts).tolist()

            def embed_query(self, text):
                return transform([text])[0].tolist()

        self.store = FAISS.from_texts([t for _, t in chunks], Wrapped(),
                                      metadatas=[{"doc_id": d} for d, _ in chunks])

    def search(self, query: str, n: int) -> list[tuple[str, str]]:
        return [(d.metadata["doc_id"], d.page_content)
                for d in self.store.similarity_search(query, k=n)]
