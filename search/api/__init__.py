"""The search API (seed-design.md §5.2), under /api/v1/embeddings/ and /api/v1/search/."""
