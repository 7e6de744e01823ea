"""Pagination of the large tables: cursors, so no page ever costs a COUNT(*) or a deep OFFSET.

The small tables (datasets, sites, tags, model runs) keep the project default,
page numbers (REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"]).
"""

from rest_framework.pagination import CursorPagination


class OldestFirstCursorPagination(CursorPagination):
    """Pages in insertion order (recordings, clips and predictions are written in bulk, in order)."""

    # The primary key: unique and indexed, which a cursor needs to be stable and cheap.
    ordering = "id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000


class NewestFirstCursorPagination(OldestFirstCursorPagination):
    """Pages newest first (annotations: the latest work is what people look for)."""

    ordering = "-id"
