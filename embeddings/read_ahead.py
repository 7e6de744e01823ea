"""Reading the database ahead of its consumer, on a thread with its own connection.

Another connection sees committed rows only: callers read ahead only when they are not inside a
transaction (see in_transaction()).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.db import connection

from echoroo.read_ahead import made_ahead


def in_transaction() -> bool:
    return connection.in_atomic_block


def read_ahead_in_thread(produce: Callable[[], Iterator], depth: int) -> Iterator:
    """The items of produce(), read by a thread (with its own connection, closed at its end) up to `depth` ahead."""
    return made_ahead(produce, depth, name="read-ahead", on_exit=connection.close)
