"""Semantic retrieval that runs offline: a small sentence-embedding model from a package."""
