"""Writing batches in parallel, on threads each with its own connection (reading ahead: embeddings.read_ahead).

What another connection writes is outside the caller's transaction: callers use these only when
they are not inside one (see embeddings.read_ahead.in_transaction()).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from django.db import connection


class Writers:
    """`count` threads running submitted functions, each on its own connection, closed when the pool closes.

    With count 0 a function runs at once, here, on this connection (inside a transaction, say).
    """

    def __init__(self, count: int):
        self.count = count
        self._tasks: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._work, name=f"writer-{i}", daemon=True) for i in range(count)]
        for thread in self._threads:
            thread.start()

    def submit(self, function: Callable, *args) -> Future:
        future: Future = Future()
        if self.count:
            self._tasks.put((future, function, args))
        else:
            future.set_result(function(*args))
        return future

    def _work(self) -> None:
        try:
            while (task := self._tasks.get()) is not None:
                future, function, args = task
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(function(*args))
                    except BaseException as error:
                        future.set_exception(error)
        finally:
            connection.close()

    def close(self) -> None:
        """Wait for the functions submitted, then stop the threads."""
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> Writers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
