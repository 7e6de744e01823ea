"""The REST API of the core domain, under /api/v1/."""
