"""Hits to answers: extractive points, checked abstractive rewriting, batch reports."""
