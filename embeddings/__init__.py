"""Embedding vectors of clips and sound events (pgvector halfvec), and their bulk storage."""
