"""The annotations' domain error: bad input, naming each field at fault (the API answers it as a 400)."""

from __future__ import annotations


class AnnotationError(ValueError):
    """`errors` maps each field (or a table's line) to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
