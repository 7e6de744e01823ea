"""Similarity search over stored embeddings: by vector, by clip, or by an uploaded audio snippet."""
