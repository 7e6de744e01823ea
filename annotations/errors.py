"""The annotations' domain error: bad input, naming each field at fault (the API answers it as a 400)."""

from __future__ import annotations

from echoroo.errors import DomainError


class AnnotationError(DomainError):
    """`errors` maps each field (or a table's line) to what is wrong with it."""
