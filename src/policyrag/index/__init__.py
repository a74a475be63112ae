"""Chunks to an index: embedding, BM25, FAISS segments, crash-safe storage."""
