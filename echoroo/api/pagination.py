"""Pagination of the large tables: cursors, so no page ever costs a COUNT(*) or a deep OFFSET.

The small tables (datasets, sites, tags, model runs) keep the project default,
page numbers (REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"]).
"""

import re

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, models
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

# Digits only: int() would also take " 1", "1_0" and other scripts' digits.
INTEGER = re.compile(r"-?[0-9]{1,20}")


class OldestFirstCursorPagination(CursorPagination):
    """Pages in insertion order (recordings, clips and predictions are written in bulk, in order)."""

    # The primary key: unique and indexed, which a cursor needs to be stable and cheap.
    ordering = "id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000

    def paginate_queryset(self, queryset, request, view=None):
        order = self.get_ordering(request, queryset, view)[0]
        self.position_field = queryset.model._meta.get_field(order.lstrip("-"))
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        # DRF answers a cursor it cannot decode with 404 and lets any position through to the
        # query, where "nan" or a NUL byte is a server error: a cursor is something the client
        # sent, so a bad one is the client's 400, and its position must be a value of the field.
        try:
            cursor = super().decode_cursor(request)
        except NotFound as error:
            raise invalid_cursor("it is not one this API gave out") from error
        if cursor is not None and cursor.position is not None:
            position_of(self.position_field, cursor.position)
        return cursor


class NewestFirstCursorPagination(OldestFirstCursorPagination):
    """Pages newest first (annotations: the latest work is what people look for)."""

    ordering = "-id"


def invalid_cursor(why: str) -> ValidationError:
    return ValidationError({"cursor": [f"Invalid cursor: {why}. Use the next or previous link of a page."]})


def position_of(field: models.Field, position: str) -> object:
    """The cursor's position as a value of the ordering field, or a 400 saying why it is not one."""
    if "\x00" in position:
        raise invalid_cursor("its position contains a NUL byte")
    if isinstance(field, models.IntegerField | models.AutoField):
        low, high = connection.ops.integer_field_range(field.get_internal_type())
        if not INTEGER.fullmatch(position) or not low <= int(position) <= high:
            raise invalid_cursor(f"its position {position[:40]!r} is not an integer id")
        return int(position)
    try:
        return field.to_python(position)
    except DjangoValidationError as error:
        raise invalid_cursor(f"its position {position[:40]!r} is not a valid {field.name}") from error
