"""Reading the database ahead of its consumer, on a thread with its own connection.

Another connection sees committed rows only: callers read ahead only when they are not inside a
transaction (see in_transaction()).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from django.db import connection

_DONE = object()


def in_transaction() -> bool:
    return connection.in_atomic_block


def read_ahead_in_thread(produce: Callable[[], Iterator], depth: int) -> Iterator:
    """The items of produce(), made by a thread up to `depth` ahead of the consumer."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in produce():
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, which raises it
            put(error)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=work, name="read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # The consumer stopped (done, cancelled, out of time, failed): the thread stops at its next item.
        stop.set()
        thread.join()
