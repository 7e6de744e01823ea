"""The inference jobs API (seed-design.md §5.1), under /api/v1/inference/."""
