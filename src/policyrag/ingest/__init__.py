"""Texts to documents to chunks: file formats, cleaning, metadata, chunking."""
